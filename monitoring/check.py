"""The monitoring job: logged live traffic vs the champion's training reference.

Each run compares the predictions logged since the previous run (the first run: the
last ``drift_window_hours``) with the reference the champion was trained and evaluated
on, and says whether the drift is significant enough to retrain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from mlflow.artifacts import download_artifacts

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


def _state_path(settings: Settings, spec: ModelSpec) -> Path:
    return settings.storage.reports_dir / "drift" / spec.name / "last_check.json"


def current_window_start(settings: Settings, spec: ModelSpec, now: datetime) -> datetime:
    """Where this run's window starts: the end of the previous run's window."""
    path = _state_path(settings, spec)
    if path.exists():
        return datetime.fromisoformat(json.loads(path.read_text())["window_end"])
    return now - timedelta(hours=settings.monitoring.drift_window_hours)


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


def run_drift_check(spec: ModelSpec, settings: Settings) -> DriftCheck:
    """Build the spec's drift report for the current window; say whether to retrain."""
    now = datetime.now(UTC)
    since = current_window_start(settings, spec, now)
    current = read_predictions(settings, spec, since=since)
    current = current[current["logged_at"] < now]
    window = TimeWindow(since, now)
    if len(current) < settings.monitoring.drift_min_rows:
        reason = (
            f"only {len(current)} predictions logged since {since:%Y-%m-%d %H:%M} UTC "
            f"(need {settings.monitoring.drift_min_rows}): no verdict, window kept open"
        )
        return DriftCheck(window, len(current), significant=False, reason=reason)
    champion_version, reference = load_reference(settings, spec)
    summary = build_drift_report(spec, reference, current, settings)
    assert summary.snapshot_path is not None
    add_drift_snapshot(spec, settings, summary.snapshot_path)  # Evidently UI's project
    reason = (
        "significant drift in "
        + ", ".join(c.column for c in summary.top_drifted() if c.level == "significant")
        if summary.significant
        else "no feature reached the significant PSI threshold"
    )
    path = _state_path(settings, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"window_end": now.isoformat(), "summary": str(summary.summary_path)})
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
