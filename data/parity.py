"""Train/serve parity: the online vector of an entity must equal the offline one.

For a sample of the entities of a feature service's newest rows (its own tables, keyed by
its own join key: :mod:`data.entities`), the feature vector served online is compared,
feature by feature, with the point-in-time vector Feast builds offline for the same time.
Entities whose online row is newer than those rows (pushed since) are reported apart: they
are fresher, not wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.settings import Settings
from core.spec import EntityId
from data.entities import entity_listing, newest_entities
from data.store import (
    get_feature_store,
    get_online_features,
    get_training_frame,
    unknown_entities,
)


@dataclass(frozen=True)
class Mismatch:
    entity: EntityId
    feature: str
    online: object
    offline: object


@dataclass(frozen=True)
class ParityReport:
    as_of: str
    entity_key: str
    entities: tuple[EntityId, ...]
    mismatches: tuple[Mismatch, ...]
    missing_online: tuple[EntityId, ...]
    pushed_since: tuple[EntityId, ...] = field(default=())
    features: tuple[str, ...] = field(default=())

    @property
    def checked(self) -> int:
        return len(self.entities)

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.missing_online

    def summary(self) -> str:
        lines = [
            f"parity as of {self.as_of}: {self.checked} {self.entity_key}s x {len(self.features)} "
            f"features, {len(self.mismatches)} mismatches, {len(self.missing_online)} missing "
            f"online, {len(self.pushed_since)} pushed since (skipped)"
        ]
        lines += [
            f"  {self.entity_key} {m.entity} {m.feature}: online={m.online!r} offline={m.offline!r}"
            for m in self.mismatches[:50]
        ]
        if self.missing_online:
            lines.append(f"  missing online: {list(self.missing_online[:50])}")
        return "\n".join(lines)


def _same(online: object, offline: object) -> bool:
    if isinstance(offline, str) or isinstance(online, str):
        return online == offline
    if online is None or offline is None or pd.isna(online) or pd.isna(offline):
        return (online is None or pd.isna(online)) and (offline is None or pd.isna(offline))
    return math.isclose(float(online), float(offline), rel_tol=1e-9, abs_tol=1e-9)


def _utc(value: object) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp


def check_parity(
    settings: Settings, feature_service: str, sample: int = 200, seed: int = 0
) -> ParityReport:
    """Compare online and offline vectors of ``feature_service`` for ``sample`` entities.

    The entities are drawn from the newest rows of the tables behind the service's views;
    every feature the service serves (whichever view holds it) is compared.
    """
    store = get_feature_store(settings)
    listing = entity_listing(store, feature_service)
    newest = newest_entities(listing)
    if newest.as_of is None:
        raise RuntimeError(f"no rows in {listing.table_names} yet: run feature_pipeline first")
    key = listing.join_key
    rng = np.random.default_rng(seed)
    candidates = newest.keys.to_numpy()
    chosen = np.sort(rng.choice(candidates, size=min(sample, len(candidates)), replace=False))
    as_of = newest.as_of  # the newest rows' own stamp, whenever computed
    entity_rows = pd.DataFrame({key: chosen, "event_timestamp": as_of})
    offline = get_training_frame(store, entity_rows, feature_service)
    online = get_online_features(
        store, chosen.tolist(), feature_service, include_event_timestamps=True, entity_key=key
    )
    columns = [c for c in online.columns if c != key and not c.endswith("__ts")]
    unknown = set(unknown_entities(online, key))
    mismatches, missing, pushed = [], [], []
    # Both frames keep the order of ``chosen``; its Python values name the entities.
    rows = zip(chosen.tolist(), offline.iterrows(), online.iterrows(), strict=True)
    for entity, (_, off), (_, on) in rows:
        if entity in unknown:
            missing.append(entity)
            continue
        online_at = max(_utc(on[f"{c}__ts"]) for c in columns)
        if online_at > as_of:
            pushed.append(entity)
            continue
        mismatches += [
            Mismatch(entity, c, on[c], off[c]) for c in columns if not _same(on[c], off[c])
        ]
    return ParityReport(
        as_of.isoformat(),
        key,
        tuple(chosen.tolist()),
        tuple(mismatches),
        tuple(missing),
        tuple(pushed),
        tuple(columns),
    )
