"""The Evidently 0.7 side of the drift report (imported lazily by :mod:`monitoring.drift`).

Importing Evidently takes seconds, so :mod:`monitoring.drift` imports this module only
inside :func:`monitoring.drift.build_drift_report`; DAG parsing and the service stay fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.core.container import MetricContainer
from evidently.legacy.renderers.html_widgets import text_widget
from evidently.presets import DataDriftPreset

PSI = "psi"
VALUE_DRIFT_TYPE = "evidently:metric_v2:ValueDrift"


class ReportNote(MetricContainer):
    """A text widget in the report's HTML, placed where it stands in the metric list.

    Evidently 0.7 renders only widgets into the HTML (a Report's metadata and tags go to
    ``snapshot.dumps()`` but are not shown), so a metric container that computes nothing
    and renders Evidently's own ``text_widget`` is how a sentence gets into the page.
    """

    title: str = ""
    text: str = ""

    def __init__(self, title: str, text: str) -> None:
        self.title = title
        self.text = text
        super().__init__(include_tests=False)

    def generate_metrics(self, context: Any) -> Sequence[Any]:
        return []

    def render(self, context: Any, child_widgets: Any = None) -> list[Any]:
        return [text_widget(title=self.title, text=self.text)]


def _psi_preset(columns: Sequence[str], threshold: float) -> DataDriftPreset:
    """PSI on every column; Evidently flags a column at ``threshold`` and the dataset
    as soon as one column is flagged (drift_share = 1 / number of columns)."""
    return DataDriftPreset(
        columns=list(columns),
        num_method=PSI,
        cat_method=PSI,
        num_threshold=threshold,
        cat_threshold=threshold,
        drift_share=1 / len(columns),
    )


def run_psi_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numerical: Sequence[str],
    categorical: Sequence[str],
    features: Sequence[str],
    predictions: Sequence[str],
    threshold: float,
    notes: dict[str, str],
    metadata: dict[str, str],
    timestamp: datetime,
    name: str,
) -> Any:
    """Run one Evidently Report (feature drift, then prediction drift); return the snapshot."""
    definition = DataDefinition(
        numerical_columns=list(numerical),
        categorical_columns=list(categorical),
    )
    items: list[Any] = [ReportNote("PSI binning", notes["binning"])]
    items += [ReportNote("Feature drift", notes["features"]), _psi_preset(features, threshold)]
    if predictions:
        items += [
            ReportNote("Prediction drift", notes["prediction"]),
            _psi_preset(predictions, threshold),
        ]
    report = Report(items, metadata=metadata, tags=["drift", PSI], include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(current, data_definition=definition),  # CURRENT first
        Dataset.from_pandas(reference, data_definition=definition),
        timestamp=timestamp,
        name=name,
    )
    return snapshot


def psi_by_column(snapshot_dict: dict[str, Any]) -> dict[str, float]:
    """Each column's PSI from the parsed ``snapshot.json()`` (ValueDrift metric results)."""
    values: dict[str, float] = {}
    for metric in snapshot_dict["metrics"]:
        config = metric.get("config", {})
        if config.get("type") == VALUE_DRIFT_TYPE and config.get("method") == PSI:
            values[config["column"]] = float(metric["value"])  # numpy float -> float
    return values
