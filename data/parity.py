"""Train/serve parity: the online vector of a customer must equal the offline one.

For a sample of customers of the latest snapshot, the feature vector served online is
compared, feature by feature, with the point-in-time vector Feast builds offline for the
same time. Customers whose online row is newer than the snapshot (pushed since) are
reported apart: they are fresher, not wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.settings import Settings
from data import delta_tables
from data.store import (
    get_feature_store,
    get_online_features,
    get_training_frame,
    unknown_customers,
)


@dataclass(frozen=True)
class Mismatch:
    customer_id: int
    feature: str
    online: object
    offline: object


@dataclass(frozen=True)
class ParityReport:
    as_of: str
    customers: tuple[int, ...]
    mismatches: tuple[Mismatch, ...]
    missing_online: tuple[int, ...]
    pushed_since: tuple[int, ...] = field(default=())
    features: tuple[str, ...] = field(default=())

    @property
    def checked(self) -> int:
        return len(self.customers)

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.missing_online

    def summary(self) -> str:
        lines = [
            f"parity as of {self.as_of}: {self.checked} customers x {len(self.features)} "
            f"features, {len(self.mismatches)} mismatches, {len(self.missing_online)} missing "
            f"online, {len(self.pushed_since)} pushed since (skipped)"
        ]
        lines += [
            f"  customer {m.customer_id} {m.feature}: online={m.online!r} offline={m.offline!r}"
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
    """Compare online and offline vectors of ``feature_service`` for ``sample`` customers.

    The customers are drawn from the latest customer snapshot; every feature the service
    serves (whichever view holds it) is compared.
    """
    days = delta_tables.partition_dates(settings.storage.customer_features_path, "snapshot_date")
    if not days:
        raise RuntimeError("no customer snapshots yet: run feature_pipeline first")
    last = days[-1]
    latest = delta_tables.read_table(
        settings.storage.customer_features_path,
        columns=["customer_id", "event_timestamp"],
        filters=[("snapshot_date", "=", last.isoformat())],
    )
    customers = latest["customer_id"].to_numpy()
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(customers, size=min(sample, len(customers)), replace=False))
    as_of = latest["event_timestamp"].max()  # the snapshot's own stamp, whenever computed
    store = get_feature_store(settings)
    entity_rows = pd.DataFrame({"customer_id": chosen, "event_timestamp": as_of})
    offline = get_training_frame(store, entity_rows, feature_service)
    online = get_online_features(
        store, chosen.tolist(), feature_service, include_event_timestamps=True
    )
    columns = [c for c in online.columns if c != "customer_id" and not c.endswith("__ts")]
    unknown = set(unknown_customers(online))
    mismatches, missing, pushed = [], [], []
    for (_, off), (_, on) in zip(offline.iterrows(), online.iterrows(), strict=True):
        customer = int(off["customer_id"])
        if customer in unknown:
            missing.append(customer)
            continue
        online_at = max(_utc(on[f"{c}__ts"]) for c in columns)
        if online_at > as_of:
            pushed.append(customer)
            continue
        mismatches += [
            Mismatch(customer, c, on[c], off[c]) for c in columns if not _same(on[c], off[c])
        ]
    return ParityReport(
        as_of.isoformat(),
        tuple(int(c) for c in chosen),
        tuple(mismatches),
        tuple(missing),
        tuple(pushed),
        tuple(columns),
    )
