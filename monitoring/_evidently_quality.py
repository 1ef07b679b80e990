"""Evidently 0.7's own quality metrics on one period's labelled predictions.

Imported lazily by :mod:`monitoring.performance` (importing Evidently takes seconds).
Each period is one Evidently ``Report`` run: its snapshot carries the period's time, tags
(``quality``, the variant, the version) and, when the spec sets a ``live_threshold``, an
Evidently test of the gate metric against it, so Evidently's UI shows the failed periods.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
from evidently import BinaryClassification, DataDefinition, Dataset, Regression, Report
from evidently.core.report import Snapshot
from evidently.metrics import MAE, RMSE, Accuracy, F1Score, Precision, Recall, RocAuc
from evidently.tests import gte, lte

from core.spec import ModelSpec

# A classifier's period is described twice: its served decisions (the labels the service
# answered, at the model's own decision threshold) for F1, precision, recall and accuracy,
# and its probabilities for ROC AUC. Given both in one definition, Evidently would take the
# label metrics from the probabilities cut at 0.5, which is not what the service decided.
DECISIONS, SCORES = "decisions", "scores"


# Each task's metrics by the names the specs use, with the classification they read.
METRICS: dict[str, dict[str, tuple[type, str | None]]] = {
    "classification": {
        "f1": (F1Score, DECISIONS),
        "precision": (Precision, DECISIONS),
        "recall": (Recall, DECISIONS),
        "accuracy": (Accuracy, DECISIONS),
        "roc_auc": (RocAuc, SCORES),
    },
    "regression": {"mae": (MAE, None), "rmse": (RMSE, None)},
}


def quality_metrics(spec: ModelSpec, frame: pd.DataFrame) -> dict[str, Any]:
    """The spec's task's metrics, the gate metric tested against ``live_threshold``."""
    made = {}
    for name, (metric, classification) in METRICS[spec.task].items():
        if name == "roc_auc" and frame[spec.label].nunique() != 2:
            continue  # ROC AUC is undefined on one class
        options: dict[str, Any] = {"classification_name": classification} if classification else {}
        if name == spec.gate_metric and spec.live_threshold is not None:
            bound = gte if spec.greater_is_better else lte
            options["tests"] = [bound(spec.live_threshold)]
        made[name] = metric(**options)
    return made


def period_quality(
    spec: ModelSpec,
    frame: pd.DataFrame,
    timestamp: datetime,
    tags: list[str],
    metadata: dict[str, str],
) -> tuple[dict[str, float], Snapshot]:
    """The metric values of one period's labelled predictions, and Evidently's snapshot."""
    if spec.task == "classification":
        definition = DataDefinition(
            classification=[
                BinaryClassification(
                    name=DECISIONS, target=spec.label, prediction_labels="prediction"
                ),
                BinaryClassification(
                    name=SCORES, target=spec.label, prediction_probas="probability"
                ),
            ]
        )
        data = frame
    else:
        definition = DataDefinition(
            regression=[Regression(target=spec.label, prediction="prediction")]
        )
        data = frame.astype({"prediction": "float64"})
    metrics = quality_metrics(spec, frame)
    dataset = Dataset.from_pandas(
        data[[spec.label, *(c for c in ("prediction", "probability") if c in data)]],
        data_definition=definition,
    )
    report = Report(list(metrics.values()), tags=tags, metadata=metadata)
    snapshot = report.run(dataset, None, timestamp=timestamp.replace(tzinfo=None))
    values = {}
    for name, result in zip(metrics, snapshot.dict()["metrics"], strict=True):
        value = result["value"]
        values[name] = float(value["mean"] if isinstance(value, dict) else value)
    return values, snapshot
