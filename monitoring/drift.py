"""Feature and prediction drift of logged live traffic against the training reference.

:func:`build_drift_report` runs one Evidently 0.7 ``Report`` with ``DataDriftPreset``
using PSI on every column (numerical and categorical), reads each column's PSI out of
Evidently's result (never recomputed here), grades it with the settings thresholds and
saves Evidently's HTML and JSON next to our own summary JSON.

Verdict: ``DriftSummary.significant`` is True when any FEATURE column reaches
``settings.psi_significant``. Prediction drift (``probability``, ``prediction``) is
computed, graded and reported, but does not alone make the verdict: with the features
stable, a moved output points at the model or its serving, not at the data, and is for a
person to read rather than a reason to retrain.

PSI binning (Evidently's, not a decile PSI): see :data:`PSI_BINNING`.

Importing this module has no side effects and does not import Evidently (slow); the
Evidently code lives in :mod:`monitoring._evidently_report`, imported on first use.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.schema import CATEGORICAL_FEATURES, FEATURE_COLUMNS, NUMERIC_FEATURES
from core.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

# The model's features, as the feature pipeline defines them.
NUMERICAL_FEATURES: tuple[str, ...] = NUMERIC_FEATURES
PREDICTION_COLUMNS: tuple[str, ...] = ("probability", "prediction")
# How Evidently should type the model outputs: the churn probability is numerical,
# the 0/1 label categorical.
NUMERICAL_PREDICTIONS: tuple[str, ...] = ("probability",)
CATEGORICAL_PREDICTIONS: tuple[str, ...] = ("prediction",)

LEVELS: tuple[str, ...] = ("none", "moderate", "significant")

PSI_BINNING = (
    "PSI as computed by Evidently 0.7 (DataDriftPreset, method 'psi'; binning in "
    "evidently.legacy.calculations.stattests.utils.get_binned_data): a numerical column "
    "with more than 20 distinct reference values is cut into equal-width bins spanning "
    "reference and current combined, the number of bins set by numpy's 'sturges' rule; "
    "every other column (categorical, or numerical with at most 20 distinct reference "
    "values, such as the 0/1 prediction) gets one bin per distinct value (relative "
    "frequencies). Missing and infinite values are dropped first. Empty bins are floored "
    "at 0.0001 (at the smallest non-empty share / 1e6 when that share is at most 0.0001). "
    "PSI = sum((ref - cur) * ln(ref / cur)). This is not a decile (10-quantile) PSI; the "
    "two give different values on the same data."
)

VERDICT_RULE = (
    "significant is true when any feature column has PSI >= psi_significant; prediction "
    "drift is reported and graded but does not alone decide."
)


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    psi: float
    level: str  # "none" | "moderate" | "significant"

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "psi": self.psi, "level": self.level}


@dataclass(frozen=True)
class DriftSummary:
    """What :func:`build_drift_report` found and where it wrote it.

    ``html_path`` and ``json_path`` are Evidently's own HTML and JSON (``snapshot.json()``);
    ``summary_path`` is the JSON of :meth:`to_dict`.
    """

    features: tuple[ColumnDrift, ...]
    prediction: tuple[ColumnDrift, ...]
    significant: bool
    reference_rows: int
    current_rows: int
    html_path: Path
    json_path: Path
    psi_binning: str
    summary_path: Path
    created_at: datetime
    psi_moderate: float
    psi_significant: float

    def top_drifted(self, n: int = 3) -> list[ColumnDrift]:
        """The ``n`` FEATURE columns with the highest PSI, highest first."""
        return sorted(self.features, key=lambda c: (-c.psi, c.column))[:n]

    def to_dict(self) -> dict[str, Any]:
        return {
            "significant": self.significant,
            "verdict_rule": VERDICT_RULE,
            "thresholds": {"moderate": self.psi_moderate, "significant": self.psi_significant},
            "features": [c.to_dict() for c in self.features],
            "prediction": [c.to_dict() for c in self.prediction],
            "top_drifted": [c.column for c in self.top_drifted()],
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "psi_method": "evidently",
            "evidently_version": version("evidently"),
            "psi_binning": self.psi_binning,
            "created_at": self.created_at.isoformat(),
            "html_path": str(self.html_path),
            "json_path": str(self.json_path),
            "summary_path": str(self.summary_path),
        }


def classify_psi(psi: float, settings: Settings) -> str:
    """``none`` below ``psi_moderate``, ``moderate`` below ``psi_significant``, else
    ``significant``. A NaN PSI has no level: ValueError."""
    if math.isnan(psi):
        raise ValueError("PSI is NaN: no drift level")
    if psi < settings.psi_moderate:
        return "none"
    if psi < settings.psi_significant:
        return "moderate"
    return "significant"


def _check_inputs(reference: pd.DataFrame, current: pd.DataFrame, settings: Settings) -> None:
    required = FEATURE_COLUMNS + PREDICTION_COLUMNS
    for label, frame in (("reference", reference), ("current", current)):
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise ValueError(f"{label} data lacks column(s) {missing}; need {list(required)}")
    if len(reference) == 0:
        raise ValueError("reference data has no rows")
    if len(current) < settings.drift_min_rows:
        raise ValueError(
            f"current data has {len(current)} rows, fewer than drift_min_rows="
            f"{settings.drift_min_rows}: no drift verdict"
        )
    for label, frame in (("reference", reference), ("current", current)):
        for column in required:
            values = frame[column]
            usable = values.notna()
            if column not in CATEGORICAL_FEATURES + CATEGORICAL_PREDICTIONS:
                usable &= ~values.isin([np.inf, -np.inf])
            if not usable.any():
                raise ValueError(f"column {column!r} of {label} data has no usable value")


def build_drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    settings: Settings,
    out_dir: Path | None = None,
    name: str = "drift",
) -> DriftSummary:
    """Compare ``current`` (logged live traffic) with ``reference`` (training features plus
    the model's outputs) with Evidently's PSI, grade each column and save the reports.

    Only :data:`FEATURE_COLUMNS` and :data:`PREDICTION_COLUMNS` are used; other columns
    (timestamp, customer_id, model_version, ...) are ignored. Writes, into ``out_dir``
    (default ``settings.reports_dir / "drift"``), ``<name>_<UTC time>.html`` and
    ``.evidently.json`` (Evidently's) and ``.summary.json`` (:meth:`DriftSummary.to_dict`).

    Raises ValueError when a required column is missing or empty, or when ``current`` has
    fewer than ``settings.drift_min_rows`` rows.
    """
    if not name or "/" in name or "\\" in name:
        raise ValueError(f"name {name!r} must be a plain file-name stem")
    _check_inputs(reference, current, settings)

    from monitoring._evidently_report import psi_by_column, run_psi_report

    created_at = datetime.now(UTC)
    columns = list(FEATURE_COLUMNS + PREDICTION_COLUMNS)
    snapshot = run_psi_report(
        reference[columns].reset_index(drop=True),
        current[columns].reset_index(drop=True),
        numerical=NUMERICAL_FEATURES + NUMERICAL_PREDICTIONS,
        categorical=CATEGORICAL_FEATURES + CATEGORICAL_PREDICTIONS,
        features=FEATURE_COLUMNS,
        predictions=PREDICTION_COLUMNS,
        threshold=settings.psi_significant,
        notes={
            "binning": PSI_BINNING,
            "features": (
                f"PSI per feature column; Evidently flags a column at PSI >= "
                f"{settings.psi_significant} (psi_significant). Our levels: none below "
                f"{settings.psi_moderate}, moderate below {settings.psi_significant}, "
                f"significant from there. {VERDICT_RULE}"
            ),
            "prediction": (
                "PSI of the model outputs (probability numerical, prediction categorical). "
                "Reported for reading; it does not alone decide the drift verdict."
            ),
        },
        metadata={
            "psi_binning": PSI_BINNING,
            "psi_moderate": str(settings.psi_moderate),
            "psi_significant": str(settings.psi_significant),
        },
        timestamp=created_at.replace(tzinfo=None),
        name=name,
    )
    evidently_json = snapshot.json()  # numpy values made JSON-safe by Evidently
    psi = psi_by_column(json.loads(evidently_json))
    absent = [c for c in columns if c not in psi]
    if absent:
        raise RuntimeError(f"Evidently returned no PSI for {absent}")

    def grade(names: tuple[str, ...]) -> tuple[ColumnDrift, ...]:
        return tuple(ColumnDrift(c, psi[c], classify_psi(psi[c], settings)) for c in names)

    features = grade(FEATURE_COLUMNS)
    out = Path(out_dir) if out_dir is not None else settings.reports_dir / "drift"
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{name}_{created_at:%Y%m%dT%H%M%S.%f}Z"
    summary = DriftSummary(
        features=features,
        prediction=grade(PREDICTION_COLUMNS),
        significant=any(c.level == "significant" for c in features),
        reference_rows=len(reference),
        current_rows=len(current),
        html_path=out / f"{stem}.html",
        json_path=out / f"{stem}.evidently.json",
        psi_binning=PSI_BINNING,
        summary_path=out / f"{stem}.summary.json",
        created_at=created_at,
        psi_moderate=settings.psi_moderate,
        psi_significant=settings.psi_significant,
    )
    snapshot.save_html(str(summary.html_path))  # Evidently writes only for a str path
    summary.json_path.write_text(evidently_json, encoding="utf-8")
    summary.summary_path.write_text(json.dumps(summary.to_dict(), indent=2), encoding="utf-8")
    return summary
