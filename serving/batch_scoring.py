"""Batch inference: every known entity of a model scored as of a date by its champion.

The entities are the model's own: every key with a row on or before that day in the
tables behind its feature service's views (:mod:`data.entities`), with the spec's key name
and type, so a model on its own table (its own landing source, string ids) is scored on
its own entities. The features are Feast's point-in-time values at the end of that day,
from the configured offline store (DuckDB on the Delta tables by default;
``CHURN_FEAST_OFFLINE_STORE=ray`` runs the retrieval on Ray): what the online store held
then.
The champion scores them with the code the service uses (:class:`serving.model.LoadedModel`),
so a row equals what ``/predict`` would have answered for that entity at that time. Rows
go to the Delta table ``<model>_batch_scores``, partitioned by ``score_date`` and
``model_version``; each carries the model, its version and the feature service. A rerun
of a date replaces that date's rows, whichever version scored them before, in one Delta
transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from pathlib import Path

import numpy as np
import pandas as pd

from core import clock
from core.settings import Settings
from core.spec import ModelSpec
from data import delta_tables
from data.entities import entities_as_of, listing_of
from data.store import get_feature_store, get_training_frame
from models.registry import CHAMPION, alias_version
from serving.model import load_version

PARTITIONS = ["score_date", "model_version"]
CHUNK_ROWS = 200_000  # entity rows per point-in-time join: bounds the join's memory


@dataclass(frozen=True)
class BatchScores:
    """One batch-scoring run: what was scored, by which version, and where it went."""

    model: str
    score_date: str
    as_of: str
    model_version: int
    feature_service: str
    scored: int
    unknown: int  # known entities with no feature value at that time (not scored)
    table_path: str
    table_version: int
    seconds: float
    rows_per_second: float


def batch_scores_path(settings: Settings, spec: ModelSpec) -> Path:
    """The Delta table of ``spec``'s batch scores."""
    return settings.storage.delta_table_path(f"{spec.name}_batch_scores")


def end_of_day(day: date) -> datetime:
    """The last instant of ``day`` (UTC) that Feast's point-in-time join treats as "as of"."""
    return datetime.combine(day + timedelta(days=1), day_time.min, tzinfo=UTC) - timedelta(
        microseconds=1
    )


def score_frame(spec: ModelSpec, settings: Settings, day: date) -> tuple[pd.DataFrame, int, int]:
    """The rows of ``day``'s scores, the champion version and the unknown entities."""
    version = alias_version(settings, spec.registered_model, CHAMPION)
    if version is None:
        raise RuntimeError(f"{spec.registered_model} has no champion to score with")
    model = load_version(settings, spec, version, CHAMPION)
    as_of = end_of_day(day)
    store = get_feature_store(settings)
    listing = listing_of(store, spec)
    entities = entities_as_of(listing, as_of)
    if entities.empty:
        raise RuntimeError(
            f"no {spec.name} entity has features on or before {day} in "
            f"{listing.table_names}: nothing to score"
        )
    features = list(spec.feature_names)
    parts, unknown = [], 0
    for start in range(0, len(entities), CHUNK_ROWS):
        chunk = entities.iloc[start : start + CHUNK_ROWS].to_numpy()
        rows = pd.DataFrame({spec.entity_key: chunk, "event_timestamp": as_of})
        frame = get_training_frame(store, rows, spec.feature_service)
        missing = frame[features].isna().all(axis=1)
        unknown += int(missing.sum())
        frame = frame[~missing].reset_index(drop=True)
        # None, not NaN, for a missing value: the form the online store answers in.
        values = frame[features].astype(object).where(frame[features].notna(), None)
        records = values.to_dict("records")
        scores, decisions = model.score_rows(records)
        out = pd.DataFrame({spec.entity_key: listing.keys(frame[spec.entity_key])})
        if spec.task == "classification":
            out[spec.output] = np.asarray(decisions, dtype=bool)
            out["probability"] = np.asarray(scores, dtype="float64")
        else:
            out[spec.output] = np.asarray(scores, dtype="float64")
        for name in features:
            out[name] = frame[name]
        parts.append(out)
    scored = pd.concat(parts, ignore_index=True)
    scored["model_name"] = spec.registered_model
    scored["feature_service"] = spec.feature_service
    scored["as_of"] = pd.Timestamp(as_of)
    scored["scored_at"] = pd.Timestamp(clock.now(settings))
    scored["score_date"] = day.isoformat()
    scored["model_version"] = np.int64(version)
    return scored, version, unknown


def score_batch(spec: ModelSpec, settings: Settings, day: date) -> BatchScores:
    """Score every known entity as of the end of ``day`` with the champion (module doc)."""
    started = time.perf_counter()
    frame, version, unknown = score_frame(spec, settings, day)
    path = batch_scores_path(settings, spec)
    # Replaces the day's rows, whichever version scored them before.
    table_version = delta_tables.replace_partitions(path, frame, "score_date", PARTITIONS)
    seconds = time.perf_counter() - started
    return BatchScores(
        model=spec.name,
        score_date=day.isoformat(),
        as_of=end_of_day(day).isoformat(),
        model_version=version,
        feature_service=spec.feature_service,
        scored=len(frame),
        unknown=unknown,
        table_path=str(path),
        table_version=table_version,
        seconds=round(seconds, 3),
        rows_per_second=round(len(frame) / seconds, 1) if seconds else 0.0,
    )
