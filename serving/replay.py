"""Replay past days of traffic through the service's own routing, models and log.

Live labels take a horizon to mature (30 days for churn), so the days a monitoring run
can judge lie in the past. A replay answers, for each past day, what the service would
have answered then: a sample of that day's active customers, their features as of that
day from Feast's offline store (point in time, as the online store held them), the
variant :func:`serving.routing.choose_variant` gives each, scored by the version each
alias points at now, and appended to the model's prediction log at that day's time. The
demo replays days to show labels maturing, a live A/B verdict and a rollback in minutes;
a user can replay a shadow period the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from core.settings import Settings
from core.spec import ModelSpec
from data import delta_tables
from data.store import get_feature_store, get_training_frame
from models.registry import CHALLENGER, CHAMPION, alias_version
from serving.model import LoadedModel, load_version
from serving.prediction_log import PredictionRecord, open_prediction_log
from serving.routing import choose_variant


@dataclass(frozen=True)
class ReplayedTraffic:
    """What one replay logged: predictions per day and per (variant, version)."""

    model: str
    days: list[str]
    logged: int
    by_variant: dict[str, int] = field(default_factory=dict)


def active_customers_on(orders: pd.DataFrame, day: date, window_days: int = 30) -> np.ndarray:
    """Customers with an order in the ``window_days`` up to and including ``day``."""
    end = pd.Timestamp(day + timedelta(days=1), tz="UTC")
    recent = orders[
        (orders["order_timestamp"] < end)
        & (orders["order_timestamp"] >= end - pd.Timedelta(days=window_days))
    ]
    return np.sort(recent["customer_id"].unique())


def replay_days(
    spec: ModelSpec,
    settings: Settings,
    days: Sequence[date],
    per_day: int,
    seed: int,
    ab_mode: str = "off",
    challenger_weight: float = 0.0,
) -> ReplayedTraffic:
    """Log ``per_day`` predictions on each of ``days`` as the service would have made them.

    ``ab_mode`` and ``challenger_weight`` route as the service's settings of the same
    names do. Each prediction is logged at noon of its day (plus one second per customer).
    """
    models = {CHAMPION: _load(spec, settings, CHAMPION)}
    if ab_mode == "split" and challenger_weight > 0:
        models[CHALLENGER] = _load(spec, settings, CHALLENGER)
    orders = delta_tables.read_table(
        settings.storage.raw_orders_path, columns=["customer_id", "order_timestamp"]
    )
    rng = np.random.default_rng(seed)
    entity_rows = []
    for day in days:
        active = active_customers_on(orders, day)
        chosen = rng.choice(active, size=min(per_day, len(active)), replace=False)
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        entity_rows += [(int(c), noon + timedelta(seconds=i)) for i, c in enumerate(chosen)]
    rows = pd.DataFrame(entity_rows, columns=[spec.entity_key, "event_timestamp"])
    frame = get_training_frame(get_feature_store(settings), rows, spec.feature_service)
    frame = frame.dropna(subset=list(spec.feature_names)).reset_index(drop=True)
    frame["variant"] = [
        choose_variant(c, ab_mode, challenger_weight, settings.serving.ab_salt)
        for c in frame[spec.entity_key]
    ]
    records: list[PredictionRecord] = []
    by_variant: dict[str, int] = {}
    classifier = spec.task == "classification"
    for variant, part in frame.groupby("variant"):
        model = models.get(str(variant), models[CHAMPION])
        features = part[list(spec.feature_names)].to_dict("records")
        values, decisions = model.score_rows(features)
        for j, (customer, at) in enumerate(
            zip(part[spec.entity_key], part["event_timestamp"], strict=True)
        ):
            records.append(
                PredictionRecord(
                    at.to_pydatetime(), int(customer), model.version, model.alias, features[j],
                    float(values[j]) if classifier else None,
                    int(decisions[j]) if classifier and decisions is not None else float(values[j]),
                )
            )  # fmt: skip
        key = f"{model.alias} v{model.version}"
        by_variant[key] = by_variant.get(key, 0) + len(part)
    log = open_prediction_log(settings, spec)
    try:
        log.append(sorted(records, key=lambda r: r.logged_at))
    finally:
        log.close()
    return ReplayedTraffic(
        model=spec.name,
        days=[d.isoformat() for d in days],
        logged=len(records),
        by_variant=by_variant,
    )


def _load(spec: ModelSpec, settings: Settings, alias: str) -> LoadedModel:
    version = alias_version(settings, spec.registered_model, alias)
    if version is None:
        raise RuntimeError(f"{spec.registered_model} has no {alias!r} alias to replay with")
    return load_version(settings, spec, version, alias)
