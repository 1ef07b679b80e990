"""Monitoring: drift of live traffic against the training reference (Evidently 0.7, PSI)."""

from monitoring.drift import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    NUMERICAL_FEATURES,
    PREDICTION_COLUMNS,
    PSI_BINNING,
    ColumnDrift,
    DriftSummary,
    build_drift_report,
    classify_psi,
)

__all__ = [
    "CATEGORICAL_FEATURES",
    "FEATURE_COLUMNS",
    "NUMERICAL_FEATURES",
    "PREDICTION_COLUMNS",
    "PSI_BINNING",
    "ColumnDrift",
    "DriftSummary",
    "build_drift_report",
    "classify_psi",
]
