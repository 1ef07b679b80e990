"""One monitoring run's live-quality step and its retraining decision.

:func:`run_quality_check` joins the model's logged predictions to their outcomes,
scores each (version, variant, period) and applies the performance-drift rule; the
scores go to ``<state>/reports/performance/<model>/quality.json`` (rewritten each run:
the periods are recomputed from the whole log, as labels keep maturing).
The same run applies the automatic-rollback rule (:mod:`monitoring.rollback`).
:func:`decide_retraining` gathers every reason a run found (significant drift, a
performance alert, the spec's cadence) into one request for the retraining policy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from core.settings import Settings
from core.spec import ModelSpec
from core.steps import to_xcom
from models.registry import CHAMPION
from monitoring.ab_verdict import ABVerdict, promote_on_live_verdict
from monitoring.alerts import raise_alerts
from monitoring.evidently_ui import add_quality_snapshots
from monitoring.outcomes import labelled_predictions
from monitoring.performance import (
    PerformanceAlert,
    PeriodQuality,
    performance_alert,
    quality_by_period,
)
from monitoring.retraining import (
    RetrainDecision,
    RetrainRequest,
    request_retraining,
    retrain_history,
)
from monitoring.rollback import RollbackCheck, apply_rollback


@dataclass(frozen=True)
class LiveQualityCheck:
    """Live quality of one model on matured labels, and the alerts it raised."""

    model: str
    logged: int
    matured: int
    pending: int
    periods: list[PeriodQuality] = field(default_factory=list)
    alerts: list[PerformanceAlert] = field(default_factory=list)
    # Raised by this run on the champion: what asks for a retrain. An alert recorded by an
    # earlier run, or one on a challenger (the candidate is bad, not the data), does not.
    new_champion_alerts: list[PerformanceAlert] = field(default_factory=list)
    rollback: RollbackCheck | None = None
    ab_verdict: ABVerdict | None = None
    report_path: str | None = None
    mlflow_run_id: str | None = None

    @property
    def champion_moved(self) -> str | None:
        """Why this check moved ``champion`` (the live verdict or a rollback), else None."""
        if self.rollback is not None and self.rollback.rolled_back:
            return f"rolled back: {self.rollback.reason}"
        if self.ab_verdict is not None and self.ab_verdict.decision == "challenger_better":
            return f"live A/B verdict promoted v{self.ab_verdict.challenger_version}"
        return None


def run_quality_check(
    spec: ModelSpec, settings: Settings, as_of: datetime, drift_html: str | None = None
) -> LiveQualityCheck:
    """Score the model's live predictions whose labels matured by ``as_of`` (the run's
    time) per period; raise the spec's alerts.

    Each scored period's Evidently snapshot goes to the model's project in Evidently's UI
    (alert periods tagged); the MLflow run of the check logs the quality JSON and links
    ``drift_html``, the same monitoring run's drift report. A spec without ``outcomes``
    has no live labels: it is monitored for drift only.
    """
    if spec.outcomes is None:
        return LiveQualityCheck(model=spec.name, logged=0, matured=0, pending=0)
    folder = settings.storage.reports_dir / "performance" / spec.name
    labelled = labelled_predictions(spec, settings, as_of)
    periods = quality_by_period(
        spec, labelled.frame, settings.monitoring.quality_period, save_to=folder / "periods"
    )
    check = LiveQualityCheck(
        model=spec.name,
        logged=labelled.logged,
        matured=labelled.matured,
        pending=labelled.pending,
        periods=periods,
        alerts=performance_alert(spec, periods),
    )
    new = raise_alerts(check.alerts, settings, as_of)  # recorded once, sent to the webhook if set
    check = replace(
        check,
        new_champion_alerts=[a for a in new if a.variant == CHAMPION],  # logged under its alias
        rollback=apply_rollback(spec, periods, settings, as_of),
        ab_verdict=promote_on_live_verdict(spec, labelled.frame, settings),
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "quality.json"
    path.write_text(json.dumps(to_xcom(check), indent=2))
    check = replace(check, report_path=str(path))
    add_quality_snapshots(spec, settings, check.periods, check.alerts)
    if periods:
        check = replace(check, mlflow_run_id=log_quality(spec, check, settings, drift_html))
    return check


def log_quality(
    spec: ModelSpec, check: LiveQualityCheck, settings: Settings, drift_html: str | None = None
) -> str:
    """One MLflow run per check, in the model's monitoring experiment (apart from its
    training runs: ``spec.monitoring_experiment``); each period's metrics are
    logged against the served version's MLflow 3 logged model (``model_id``), stepped by
    day, so the version's page shows its live quality over time. The run holds the
    quality JSON and, when given, the drift report's HTML (``monitoring/drift_report.html``,
    its path also tagged as ``monitoring.drift_report``)."""
    import mlflow

    from models.tracking import configure_mlflow, ensure_experiment

    client = configure_mlflow(settings)
    # Named on the run: the process's active experiment (its training runs') stays as it is.
    experiment_id = ensure_experiment(client, settings, spec.monitoring_experiment)
    model_ids: dict[int, str | None] = {}
    with mlflow.start_run(run_name=f"monitor-{spec.name}", experiment_id=experiment_id) as run:
        mlflow.set_tags(
            {
                "monitoring.kind": "live_quality",
                "monitoring.model": spec.name,
                "monitoring.alerts": str(len(check.alerts)),
                "monitoring.rolled_back": str(bool(check.rollback and check.rollback.rolled_back)),
            }
        )
        mlflow.log_metrics({"logged": check.logged, "matured": check.matured})
        for quality in check.periods:
            if not quality.counted:
                continue
            if quality.model_version not in model_ids:
                version = client.get_model_version(
                    spec.registered_model, str(quality.model_version)
                )
                model_ids[quality.model_version] = version.model_id
            metrics = {f"live_{quality.variant}_{k}": v for k, v in quality.metrics.items()}
            metrics[f"live_{quality.variant}_mean_prediction"] = quality.mean_prediction
            mlflow.log_metrics(
                metrics,
                step=int(quality.period_start.timestamp() // 86400),
                timestamp=int(quality.period_start.timestamp() * 1000),
                model_id=model_ids[quality.model_version],
            )
        if check.report_path:
            mlflow.log_artifact(check.report_path, artifact_path="monitoring")
        if drift_html:
            mlflow.set_tag("monitoring.drift_report", drift_html)
            mlflow.log_artifact(drift_html, artifact_path="monitoring")
    return run.info.run_id


def retraining_request(
    spec: ModelSpec,
    settings: Settings,
    drift_reason: str | None,
    alerts: list[PerformanceAlert],
    now: datetime,
) -> RetrainRequest | None:
    """One request carrying every reason found, or None when there is none.

    The kind names the strongest reason: performance drift, then drift, then the schedule.
    """
    reasons: list[tuple[str, str]] = [("performance", alert.reason()) for alert in alerts]
    if drift_reason:
        reasons.append(("drift", drift_reason))
    if spec.retrain_cadence_days:
        accepted = [d.request.requested_at for d in retrain_history(spec, settings) if d.accepted]
        if not accepted or now - max(accepted) >= timedelta(days=spec.retrain_cadence_days):
            reasons.append(("schedule", f"scheduled: every {spec.retrain_cadence_days} days"))
    if not reasons:
        return None
    return RetrainRequest(
        model=spec.name,
        kind=reasons[0][0],  # type: ignore[arg-type]
        reason="; ".join(reason for _, reason in reasons),
        requested_at=now,
    )


def decide_retraining(
    spec: ModelSpec,
    settings: Settings,
    drift_reason: str | None,
    alerts: list[PerformanceAlert],
    active_runs: int,
    as_of: datetime,
) -> RetrainDecision | None:
    """The policy's decision on this run's reasons at ``as_of`` (the run's time; None:
    nothing asked for a retrain)."""
    request = retraining_request(spec, settings, drift_reason, alerts, as_of)
    if request is None:
        return None
    return request_retraining(request, spec, settings, active_runs)
