"""The monitoring job: logged live traffic vs the champion's training reference.

Each run compares the predictions whose own timestamps fall in its window (its data
interval, see :func:`monitoring_window`) with the reference the champion was trained and
evaluated on, and says whether the drift is significant enough to retrain. The window is
judged by event time, never by when a prediction reached the log, so replayed and late
traffic are judged with the interval they belong to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from mlflow.artifacts import download_artifacts

from core.clock import as_utc
from core.settings import Settings
from core.spec import ModelSpec
from core.steps import TimeWindow
from models.registry import CHAMPION
from models.tracking import configure_mlflow
from monitoring.drift import ColumnDrift, build_drift_report
from monitoring.evidently_ui import add_drift_snapshot
from serving.prediction_log import read_predictions

REFERENCE_ARTIFACT = "monitoring/reference.parquet"


def load_reference(
    settings: Settings, spec: ModelSpec, alias: str = CHAMPION
) -> tuple[int, pd.DataFrame]:
    """The reference frame logged with the run of the version behind ``alias``."""
    client = configure_mlflow(settings)
    version = client.get_model_version_by_alias(spec.registered_model, alias)
    path = download_artifacts(run_id=version.run_id, artifact_path=REFERENCE_ARTIFACT)
    return int(version.version), pd.read_parquet(path)


def monitoring_window(
    settings: Settings,
    as_of: datetime,
    interval: tuple[datetime | None, datetime | None] = (None, None),
    conf: dict[str, Any] | None = None,
) -> TimeWindow:
    """The window a monitoring run judges.

    ``conf``'s ``window_start`` and ``window_end`` (ISO-8601) when given: a backfill of
    late or replayed traffic. Otherwise the run's data ``interval`` when it has a length.
    Otherwise (a manual or asset-triggered run, a daily trigger) the last
    ``drift_window_hours`` before ``as_of``, the run's time.
    """
    conf = conf or {}
    if conf.get("window_start") and conf.get("window_end"):
        start = as_utc(datetime.fromisoformat(str(conf["window_start"])))
        end = as_utc(datetime.fromisoformat(str(conf["window_end"])))
        if end <= start:
            raise ValueError(f"window_end {end} is not after window_start {start}")
        return TimeWindow(start, end)
    start, end = interval
    if start is not None and end is not None and as_utc(end) > as_utc(start):
        return TimeWindow(as_utc(start), as_utc(end))
    return TimeWindow(as_of - timedelta(hours=settings.monitoring.drift_window_hours), as_of)


@dataclass(frozen=True)
class DriftCheck:
    """One monitoring run's verdict, in one shape whether or not there was a verdict.

    Without enough logged predictions there is no report: ``features`` and ``prediction``
    are empty, the paths and ``reference_model_version`` None, and ``reason`` says why.
    """

    window: TimeWindow
    current_rows: int
    significant: bool
    reason: str
    reference_model_version: int | None = None
    features: list[ColumnDrift] = field(default_factory=list)
    prediction: list[ColumnDrift] = field(default_factory=list)
    top_drifted: list[str] = field(default_factory=list)
    psi_binning: str | None = None
    html_path: str | None = None
    json_path: str | None = None
    summary_path: str | None = None


def run_drift_check(spec: ModelSpec, settings: Settings, window: TimeWindow) -> DriftCheck:
    """Build the spec's drift report on the predictions made in ``window``; say whether to
    retrain."""
    current = read_predictions(settings, spec, since=window.start)
    current = current[current["logged_at"] < window.end]
    if len(current) < settings.monitoring.drift_min_rows:
        reason = (
            f"only {len(current)} predictions made in {window.start:%Y-%m-%d %H:%M} .. "
            f"{window.end:%Y-%m-%d %H:%M} UTC (need {settings.monitoring.drift_min_rows}): "
            "no verdict for this interval"
        )
        return DriftCheck(window, len(current), significant=False, reason=reason)
    champion_version, reference = load_reference(settings, spec)
    summary = build_drift_report(spec, reference, current, settings, as_of=window.end)
    assert summary.snapshot_path is not None
    add_drift_snapshot(spec, settings, summary.snapshot_path)  # Evidently UI's project
    reason = (
        "significant drift in "
        + ", ".join(c.column for c in summary.top_drifted() if c.level == "significant")
        if summary.significant
        else "no feature reached the significant PSI threshold"
    )
    return DriftCheck(
        window,
        len(current),
        significant=summary.significant,
        reason=reason,
        reference_model_version=champion_version,
        features=list(summary.features),
        prediction=list(summary.prediction),
        top_drifted=[c.column for c in summary.top_drifted()],
        psi_binning=summary.psi_binning,
        html_path=str(summary.html_path),
        json_path=str(summary.json_path),
        summary_path=str(summary.summary_path),
    )
