"""Evidently 0.7's own quality metrics on one period's labelled predictions.

Imported lazily by :mod:`monitoring.performance` (importing Evidently takes seconds).
"""

from __future__ import annotations

import pandas as pd
from evidently import BinaryClassification, DataDefinition, Dataset, Regression, Report
from evidently.metrics import MAE, RMSE, Accuracy, F1Score, Precision, Recall, RocAuc


def classification_quality(frame: pd.DataFrame, label: str) -> dict[str, float]:
    """F1, precision, recall, ROC AUC and accuracy of ``prediction`` / ``probability``."""
    definition = DataDefinition(
        classification=[
            BinaryClassification(
                target=label, prediction_labels="prediction", prediction_probas="probability"
            )
        ]
    )
    metrics = {
        "f1": F1Score(),
        "precision": Precision(),
        "recall": Recall(),
        "accuracy": Accuracy(),
    }
    if frame[label].nunique() == 2:  # ROC AUC is undefined on one class
        metrics["roc_auc"] = RocAuc()
    return _run(frame, definition, metrics)


def regression_quality(frame: pd.DataFrame, label: str) -> dict[str, float]:
    """MAE and RMSE of ``prediction`` against ``label``."""
    definition = DataDefinition(regression=[Regression(target=label, prediction="prediction")])
    return _run(frame, definition, {"mae": MAE(), "rmse": RMSE()})


def _run(frame: pd.DataFrame, definition: DataDefinition, metrics: dict) -> dict[str, float]:
    data = frame.astype({"prediction": "float64"}) if "probability" not in frame else frame
    dataset = Dataset.from_pandas(data, data_definition=definition)
    snapshot = Report(list(metrics.values())).run(dataset, None)
    values = {}
    for (name, _), result in zip(metrics.items(), snapshot.dict()["metrics"], strict=True):
        value = result["value"]
        values[name] = float(value["mean"] if isinstance(value, dict) else value)
    return values
