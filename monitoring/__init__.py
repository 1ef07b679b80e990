"""Monitoring: drift of live traffic against the training reference (Evidently 0.7, PSI)."""

from monitoring.drift import (
    PSI_BINNING,
    ColumnDrift,
    DriftSummary,
    build_drift_report,
    classify_psi,
)

__all__ = ["PSI_BINNING", "ColumnDrift", "DriftSummary", "build_drift_report", "classify_psi"]
