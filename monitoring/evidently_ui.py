"""The monitoring runs' snapshots in Evidently's own UI: one project per model spec.

The workspace is Evidently's local one (``settings.storage.evidently_workspace_dir``),
served by ``make evidently-ui`` (``evidently ui --workspace ...``). Each project gets a
dashboard the first time it is opened here:

- **Drift**: PSI per feature over time, and the share of drifted features and outputs, from each
  monitoring run's drift snapshot (tag ``drift``);
- **Live quality**: the gate metric on matured labels per period, champion and
  challenger, the error (1 - accuracy, or the MAE) and the periods of a performance
  alert (tag ``alert``), from one snapshot per scored period (tag ``quality``), whose
  Evidently test of the gate metric against ``live_threshold`` fails on a bad period.

Labels keep maturing, so a period is rescored by later runs: its snapshot is replaced
when its label count changed, and added once otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.settings import Settings
from core.spec import ModelSpec

if TYPE_CHECKING:
    from evidently.sdk.models import DashboardModel
    from evidently.ui.workspace import Project, Workspace

    from monitoring.performance import PerformanceAlert, PeriodQuality

DRIFT, QUALITY, ALERT = "drift", "quality", "alert"
VARIANTS = ("champion", "challenger")


def open_workspace(settings: Settings) -> Workspace:
    """Evidently's local workspace of the platform (created when missing)."""
    from evidently.ui.workspace import Workspace

    path = settings.storage.evidently_workspace_dir
    path.mkdir(parents=True, exist_ok=True)
    return Workspace.create(str(path))


def model_project(workspace: Workspace, spec: ModelSpec) -> Project:
    """The spec's project, created with its dashboard on first use."""
    for project in workspace.search_project(spec.name):
        if project.name == spec.name:
            return project
    project = workspace.create_project(spec.name, description=spec.description)
    workspace.save_dashboard(project.id, dashboard_of(spec))
    return project


def dashboard_of(spec: ModelSpec) -> DashboardModel:
    """The spec's panels: PSI per feature, live gate metric, error, alert periods.

    Built whole and saved once: ``ProjectDashboard.add_panel`` on an existing tab lists
    the panel twice in Evidently 0.7.23.
    """
    from evidently.sdk.models import DashboardModel, DashboardTabModel, PanelMetric
    from evidently.sdk.panels import bar_plot_panel, line_plot_panel

    gate = _metric_type(spec, spec.gate_metric)
    error = "Accuracy" if spec.task == "classification" else "MAE"
    drift = [
        line_plot_panel(
            title="PSI per feature",
            description="Evidently's PSI of each feature, live traffic vs the training reference",
            values=[
                PanelMetric(
                    legend=c, metric="ValueDrift", metric_labels={"column": c}, tags=[DRIFT]
                )
                for c in spec.feature_names
            ],
        ),
        line_plot_panel(
            title="Share of drifted columns",
            description=f"Columns at PSI >= {spec.psi_significant}: features, and model outputs",
            values=[
                # The report holds one DataDriftPreset per group; its `columns` tell them apart.
                PanelMetric(
                    legend=legend,
                    metric="DriftedColumnsCount",
                    metric_labels={"value_type": "share", "columns": str(list(columns))},
                    tags=[DRIFT],
                )
                for legend, columns in (
                    ("features", spec.feature_names),
                    ("model outputs", spec.output_columns),
                )
            ],
        ),
    ]
    # One panel per variant: Evidently 0.7.23's local storage draws only the first of several
    # series of one metric in a panel (and would merge them into one line).
    quality = [
        line_plot_panel(
            title=f"Live {spec.gate_metric} on matured labels: {variant}",
            description=f"Per period; the alert threshold is {spec.live_threshold}",
            values=[PanelMetric(legend=variant, metric=gate, tags=[QUALITY, variant])],
        )
        for variant in VARIANTS
    ] + [
        line_plot_panel(
            title=(
                f"Accuracy (1 - error rate): {variant}"
                if error == "Accuracy"
                else f"MAE (the error): {variant}"
            ),
            values=[
                PanelMetric(
                    legend=variant,
                    metric=error,
                    tags=[QUALITY, variant],
                    # MAE comes as a mean and a standard deviation: the mean is the error.
                    metric_labels={"value_type": "mean"} if error == "MAE" else {},
                )
            ],
        )
        for variant in VARIANTS
    ]
    quality += [
        bar_plot_panel(
            title="Performance alerts",
            description=f"Periods of a performance-drift alert ({spec.alert_periods} in a row)",
            values=[PanelMetric(legend="alert", metric=gate, tags=[QUALITY, ALERT])],
        ),
    ]
    return DashboardModel(
        tabs=[
            DashboardTabModel(title="Drift", panels=[p.id for p in drift]),
            DashboardTabModel(title="Live quality", panels=[p.id for p in quality]),
        ],
        panels=drift + quality,
    )


def _metric_type(spec: ModelSpec, name: str) -> str:
    from monitoring._evidently_quality import METRICS

    return METRICS[spec.task][name][0].__name__


def add_drift_snapshot(spec: ModelSpec, settings: Settings, snapshot_json: Path) -> str:
    """Add a drift report (its saved Evidently snapshot) to the spec's project; its id."""
    workspace = open_workspace(settings)
    project = model_project(workspace, spec)
    return str(workspace.add_run(project.id, _load(snapshot_json, [DRIFT])).id)


def add_quality_snapshots(
    spec: ModelSpec,
    settings: Settings,
    periods: Sequence[PeriodQuality],
    alerts: Iterable[PerformanceAlert],
) -> int:
    """Add (or replace, when rescored on more labels) each scored period's snapshot.

    Periods in an alert are tagged ``alert``. Returns how many snapshots were written.
    """
    in_alert = {
        (p.model_version, p.variant, p.period_start) for alert in alerts for p in alert.periods
    }
    workspace = open_workspace(settings)
    project = model_project(workspace, spec)
    existing = {}
    for snapshot_id in workspace.list_runs(project.id):
        stored = workspace.get_run(project.id, snapshot_id)
        if stored is not None and QUALITY in stored.tags:
            existing[_period_key(stored.metadata)] = (snapshot_id, stored)
    written = 0
    for quality in periods:
        if quality.snapshot_path is None:
            continue
        alert = (quality.model_version, quality.variant, quality.period_start) in in_alert
        key = (str(quality.model_version), quality.variant, quality.period_start.isoformat())
        if key in existing:
            snapshot_id, stored = existing[key]
            same = stored.metadata.get("labelled") == str(quality.labelled)
            if same and (ALERT in stored.tags) == alert:
                continue
            workspace.delete_run(project.id, snapshot_id)
        workspace.add_run(project.id, _load(Path(quality.snapshot_path), [ALERT] if alert else []))
        written += 1
    return written


def _period_key(metadata: dict[str, Any]) -> tuple[str, str, str]:
    return (
        str(metadata.get("model_version")),
        str(metadata.get("variant")),
        str(metadata.get("period_start")),
    )


def _load(path: Path, tags: list[str]) -> Any:
    """A saved snapshot with ``tags`` added (Evidently's snapshot model carries them)."""
    from evidently.core.report import Snapshot

    data = json.loads(path.read_text(encoding="utf-8"))
    data["tags"] = sorted({*data.get("tags", []), *tags})
    return Snapshot.load_dict(data)
