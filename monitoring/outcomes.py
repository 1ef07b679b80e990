"""Logged predictions joined with their outcomes, as of each prediction's time.

Each prediction the service logged (customer, time, served model version and variant,
features, outputs) gets its label once the label is known, from the model spec's
``outcomes`` (for churn: whether the customer ordered in the 30 days after the
prediction's time, read from the raw orders in the lake). Never today's label: a
customer predicted twice gets two outcomes, each over its own 30 days. A prediction
whose outcome is not due yet is left out and counted as pending, never as a negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from core.settings import Settings
from core.spec import ModelSpec
from serving.prediction_log import read_predictions


@dataclass(frozen=True)
class LabelledPredictions:
    """Predictions with a known outcome (``frame``: the log's columns plus the label)."""

    frame: pd.DataFrame
    logged: int
    matured: int

    @property
    def pending(self) -> int:
        """Predictions whose outcome is not known yet."""
        return self.logged - self.matured


def join_outcomes(
    spec: ModelSpec, predictions: pd.DataFrame, settings: Settings, as_of: datetime
) -> LabelledPredictions:
    """``predictions`` (a prediction log frame) with the label of those whose outcome is
    known at ``as_of``."""
    if spec.outcomes is None:
        raise ValueError(f"{spec.name}: the spec declares no outcomes (ModelSpec.outcomes)")
    if predictions.empty:
        return LabelledPredictions(predictions.assign(**{spec.label: []}), 0, 0)
    keys = pd.DataFrame(
        {"customer_id": predictions["customer_id"], "predicted_at": predictions["logged_at"]}
    )
    outcomes = spec.outcomes(keys, settings, as_of)
    labelled = predictions.merge(
        outcomes.rename(columns={"predicted_at": "logged_at"}),
        on=["customer_id", "logged_at"],
        how="inner",
    )
    return LabelledPredictions(labelled, logged=len(predictions), matured=len(labelled))


def labelled_predictions(
    spec: ModelSpec, settings: Settings, as_of: datetime, since: datetime | None = None
) -> LabelledPredictions:
    """The model's predictions made before ``as_of`` (and since ``since``) with the outcomes
    known at ``as_of``."""
    log = read_predictions(settings, spec, since)
    log = log[log["logged_at"] < as_of].reset_index(drop=True)
    return join_outcomes(spec, log, settings, as_of)
