"""One monitoring run's live-quality step and its retraining decision.

:func:`run_quality_check` joins the model's logged predictions to their outcomes,
scores each (version, variant, period) and applies the performance-drift rule; the
scores go to ``<state>/reports/performance/<model>/quality.json`` (rewritten each run:
the periods are recomputed from the whole log, as labels keep maturing).
:func:`decide_retraining` gathers every reason a run found (significant drift, a
performance alert, the spec's cadence) into one request for the retraining policy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from core.settings import Settings
from core.spec import ModelSpec
from core.steps import to_xcom
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


@dataclass(frozen=True)
class LiveQualityCheck:
    """Live quality of one model on matured labels, and the alerts it raised."""

    model: str
    logged: int
    matured: int
    pending: int
    periods: list[PeriodQuality] = field(default_factory=list)
    alerts: list[PerformanceAlert] = field(default_factory=list)
    report_path: str | None = None


def run_quality_check(spec: ModelSpec, settings: Settings) -> LiveQualityCheck:
    """Score the model's matured live predictions per period; raise the spec's alerts."""
    labelled = labelled_predictions(spec, settings)
    periods = quality_by_period(spec, labelled.frame, settings.monitoring.quality_period)
    check = LiveQualityCheck(
        model=spec.name,
        logged=labelled.logged,
        matured=labelled.matured,
        pending=labelled.pending,
        periods=periods,
        alerts=performance_alert(spec, periods),
    )
    folder = settings.storage.reports_dir / "performance" / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "quality.json"
    path.write_text(json.dumps(to_xcom(check), indent=2))
    return LiveQualityCheck(**{**check.__dict__, "report_path": str(path)})


def retraining_request(
    spec: ModelSpec,
    settings: Settings,
    drift_reason: str | None,
    alerts: list[PerformanceAlert],
    now: datetime | None = None,
) -> RetrainRequest | None:
    """One request carrying every reason found, or None when there is none.

    The kind names the strongest reason: performance drift, then drift, then the schedule.
    """
    now = now or datetime.now(UTC)
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
) -> RetrainDecision | None:
    """The policy's decision on this run's reasons (None: nothing asked for a retrain)."""
    request = retraining_request(spec, settings, drift_reason, alerts)
    if request is None:
        return None
    return request_retraining(request, spec, settings, active_runs)
