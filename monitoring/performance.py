"""Live model quality per period on matured labels, and the performance-drift alert.

Each (served version, variant, period) of labelled predictions (see
:mod:`monitoring.outcomes`) is scored with Evidently's own metrics: F1, precision, recall,
ROC AUC and accuracy for a classifier; MAE and RMSE for a regression. Alongside, the
error (concept drift: the share of wrong decisions, or the MAE) and the mean prediction
(prediction drift) per period. :func:`performance_alert` applies the spec's rule: the gate
metric worse than ``live_threshold`` for ``alert_periods`` consecutive periods, where a
period with fewer than ``min_period_labels`` labels neither counts nor breaks the streak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from core.spec import ModelSpec


@dataclass(frozen=True)
class PeriodQuality:
    """Live quality of one served version and variant over one period."""

    model: str
    model_version: int
    variant: str
    period_start: datetime
    period_end: datetime
    labelled: int
    mean_prediction: float
    metrics: dict[str, float] = field(default_factory=dict)  # empty: too few labels
    snapshot_path: str | None = None  # the period's Evidently snapshot (JSON), when saved

    @property
    def counted(self) -> bool:
        """Whether the period had enough labels to be scored."""
        return bool(self.metrics)

    @property
    def error(self) -> float | None:
        """Share of wrong decisions (classification) or MAE (regression); None if not scored."""
        if "accuracy" in self.metrics:
            return 1.0 - self.metrics["accuracy"]
        return self.metrics.get("mae")


@dataclass(frozen=True)
class PerformanceAlert:
    """The gate metric was worse than the spec's threshold for enough periods in a row."""

    model: str
    model_version: int
    variant: str
    metric: str
    threshold: float
    periods: tuple[PeriodQuality, ...]

    def reason(self) -> str:
        values = ", ".join(
            f"{p.period_start:%Y-%m-%d} {p.metrics[self.metric]:.3f}" for p in self.periods
        )
        return (
            f"performance drift: {self.model} v{self.model_version} ({self.variant}) "
            f"{self.metric} worse than {self.threshold} for {len(self.periods)} periods: {values}"
        )


def quality_by_period(
    spec: ModelSpec, labelled: pd.DataFrame, period: str = "1D", save_to: Path | None = None
) -> list[PeriodQuality]:
    """Score each (version, variant, period) of ``labelled`` with Evidently's metrics.

    ``labelled`` is :attr:`monitoring.outcomes.LabelledPredictions.frame`; ``period`` a
    pandas frequency (``"1D"``: UTC days). Periods with fewer than the spec's
    ``min_period_labels`` labels are listed without metrics. With ``save_to``, each scored
    period's Evidently snapshot is saved there (``PeriodQuality.snapshot_path``;
    ``Snapshot.load`` reads it back).
    """
    if labelled.empty:
        return []
    from monitoring._evidently_quality import period_quality

    length = pd.Timedelta(pd.tseries.frequencies.to_offset(period))
    frame = labelled.assign(period_start=labelled["logged_at"].dt.floor(period))
    if save_to is not None:
        save_to.mkdir(parents=True, exist_ok=True)
    results = []
    for (version, variant, start), group in frame.groupby(
        ["model_version", "variant", "period_start"], sort=True
    ):
        metrics: dict[str, float] = {}
        snapshot_path = None
        if len(group) >= spec.min_period_labels:
            metrics, snapshot = period_quality(
                spec,
                group,
                timestamp=start.to_pydatetime(),
                tags=["quality", str(variant), f"v{version}"],
                metadata={
                    "model_version": str(version),
                    "variant": str(variant),
                    "period_start": start.isoformat(),
                    "labelled": str(len(group)),
                },
            )
            if save_to is not None:
                path = save_to / f"v{version}_{variant}_{start:%Y%m%dT%H%M}.snapshot.json"
                path.write_text(snapshot.dumps(), encoding="utf-8")
                snapshot_path = str(path)
        results.append(
            PeriodQuality(
                model=spec.name,
                model_version=int(version),
                variant=str(variant),
                period_start=start.to_pydatetime(),
                period_end=(start + length).to_pydatetime(),
                labelled=len(group),
                mean_prediction=float(group["prediction"].mean()),
                metrics=metrics,
                snapshot_path=snapshot_path,
            )
        )
    return results


def performance_alert(spec: ModelSpec, periods: Sequence[PeriodQuality]) -> list[PerformanceAlert]:
    """The alerts the spec's rule raises, one per (version, variant) whose streak is long enough.

    Each series runs in time order: a scored period worse than ``live_threshold`` extends
    the streak, a scored period at or better than it resets it, a period without enough
    labels is skipped. The alert carries the last ``alert_periods`` bad periods.
    """
    if spec.live_threshold is None:
        return []
    series: dict[tuple[int, str], list[PeriodQuality]] = {}
    for quality in sorted(periods, key=lambda p: p.period_start):
        series.setdefault((quality.model_version, quality.variant), []).append(quality)
    alerts = []
    for (version, variant), qualities in series.items():
        streak: list[PeriodQuality] = []
        for quality in qualities:
            if not quality.counted:
                continue
            if spec.worse_than(quality.metrics[spec.gate_metric], spec.live_threshold):
                streak.append(quality)
            else:
                streak = []
        if len(streak) >= spec.alert_periods:
            alerts.append(
                PerformanceAlert(
                    model=spec.name,
                    model_version=version,
                    variant=variant,
                    metric=spec.gate_metric,
                    threshold=spec.live_threshold,
                    periods=tuple(streak[-spec.alert_periods :]),
                )
            )
    return alerts
