"""Feature and prediction drift of logged live traffic against the training reference.

:func:`build_drift_report` runs one Evidently 0.7 ``Report`` with ``DataDriftPreset``
using PSI on every column (numerical and categorical), reads each column's PSI out of
Evidently's result (never recomputed here), grades it with the spec's thresholds and
saves Evidently's HTML and JSON next to our own summary JSON. The columns, their types and
the thresholds are the model spec's.

Verdict: ``DriftSummary.significant`` is True when any FEATURE column reaches
the spec's ``psi_significant``. Prediction drift (``probability``, ``prediction``) is
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
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core import clock
from core.settings import Settings
from core.spec import ModelSpec

if TYPE_CHECKING:
    import pandas as pd


def numerical_outputs(spec: ModelSpec) -> tuple[str, ...]:
    """Model outputs Evidently should treat as numbers: a probability, a predicted value."""
    return ("probability",) if spec.task == "classification" else ("prediction",)


def categorical_outputs(spec: ModelSpec) -> tuple[str, ...]:
    """Model outputs Evidently should treat as categories: a classifier's 0/1 decision."""
    return ("prediction",) if spec.task == "classification" else ()


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
    "significant is true when any feature column has PSI >= the model spec's psi_significant; "
    "prediction "
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
    snapshot_path: Path | None = None  # Evidently's full snapshot, loadable (Snapshot.load)

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
            "snapshot_path": str(self.snapshot_path) if self.snapshot_path else None,
        }


def classify_psi(psi: float, spec: ModelSpec) -> str:
    """``none`` below the spec's ``psi_moderate``, ``moderate`` below its
    ``psi_significant``, else ``significant``. A NaN PSI has no level: ValueError."""
    if math.isnan(psi):
        raise ValueError("PSI is NaN: no drift level")
    if psi < spec.psi_moderate:
        return "none"
    if psi < spec.psi_significant:
        return "moderate"
    return "significant"


def _check_inputs(
    spec: ModelSpec, reference: pd.DataFrame, current: pd.DataFrame, settings: Settings
) -> None:
    required = spec.feature_names + spec.output_columns
    categorical = spec.categorical_features + categorical_outputs(spec)
    for label, frame in (("reference", reference), ("current", current)):
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise ValueError(f"{label} data lacks column(s) {missing}; need {list(required)}")
    if len(reference) == 0:
        raise ValueError("reference data has no rows")
    if len(current) < settings.monitoring.drift_min_rows:
        raise ValueError(
            f"current data has {len(current)} rows, fewer than drift_min_rows="
            f"{settings.monitoring.drift_min_rows}: no drift verdict"
        )
    for label, frame in (("reference", reference), ("current", current)):
        for column in required:
            values = frame[column]
            usable = values.notna()
            if column not in categorical:
                usable &= ~values.isin([np.inf, -np.inf])
            if not usable.any():
                raise ValueError(f"column {column!r} of {label} data has no usable value")


def build_drift_report(
    spec: ModelSpec,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    settings: Settings,
    out_dir: Path | None = None,
    name: str = "drift",
    as_of: datetime | None = None,
) -> DriftSummary:
    """Compare ``current`` (logged live traffic) with ``reference`` (training features plus
    the model's outputs) with Evidently's PSI, grade each column and save the reports.

    Only the spec's features and outputs are used; other columns
    (timestamp, customer_id, model_version, ...) are ignored. Writes, into ``out_dir``
    (default ``settings.storage.reports_dir / "drift"``), ``<name>_<UTC time>.html`` and
    ``.evidently.json`` (Evidently's results), ``.snapshot.json`` (Evidently's full
    snapshot, for its UI's workspace) and ``.summary.json`` (:meth:`DriftSummary.to_dict`).
    ``as_of`` dates the snapshot (default: the platform clock's now; a monitoring run
    passes its own time).

    Raises ValueError when a required column is missing or empty, or when ``current`` has
    fewer than ``settings.monitoring.drift_min_rows`` rows.
    """
    if not name or "/" in name or "\\" in name:
        raise ValueError(f"name {name!r} must be a plain file-name stem")
    _check_inputs(spec, reference, current, settings)

    from monitoring._evidently_report import psi_by_column, run_psi_report

    created_at = as_of or clock.now(settings)
    features_, outputs = spec.feature_names, spec.output_columns
    columns = list(features_ + outputs)
    snapshot = run_psi_report(
        reference[columns].reset_index(drop=True),
        current[columns].reset_index(drop=True),
        numerical=spec.numeric_features + numerical_outputs(spec),
        categorical=spec.categorical_features + categorical_outputs(spec),
        features=features_,
        predictions=outputs,
        threshold=spec.psi_significant,
        notes={
            "binning": PSI_BINNING,
            "features": (
                f"PSI per feature column of {spec.name}; Evidently flags a column at PSI >= "
                f"{spec.psi_significant} (psi_significant). Our levels: none below "
                f"{spec.psi_moderate}, moderate below {spec.psi_significant}, "
                f"significant from there. {VERDICT_RULE}"
            ),
            "prediction": (
                f"PSI of the model outputs ({', '.join(outputs)}). "
                "Reported for reading; it does not alone decide the drift verdict."
            ),
        },
        metadata={
            "model": spec.name,
            "psi_binning": PSI_BINNING,
            "psi_moderate": str(spec.psi_moderate),
            "psi_significant": str(spec.psi_significant),
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
        return tuple(ColumnDrift(c, psi[c], classify_psi(psi[c], spec)) for c in names)

    features = grade(features_)
    out = (
        Path(out_dir) if out_dir is not None else settings.storage.reports_dir / "drift" / spec.name
    )
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{name}_{created_at:%Y%m%dT%H%M%S.%f}Z"
    summary = DriftSummary(
        features=features,
        prediction=grade(outputs),
        significant=any(c.level == "significant" for c in features),
        reference_rows=len(reference),
        current_rows=len(current),
        html_path=out / f"{stem}.html",
        json_path=out / f"{stem}.evidently.json",
        psi_binning=PSI_BINNING,
        summary_path=out / f"{stem}.summary.json",
        created_at=created_at,
        psi_moderate=spec.psi_moderate,
        psi_significant=spec.psi_significant,
        snapshot_path=out / f"{stem}.snapshot.json",
    )
    assert summary.snapshot_path is not None
    summary.snapshot_path.write_text(snapshot.dumps(), encoding="utf-8")
    snapshot.save_html(str(summary.html_path))  # Evidently writes only for a str path
    summary.json_path.write_text(evidently_json, encoding="utf-8")
    summary.summary_path.write_text(json.dumps(summary.to_dict(), indent=2), encoding="utf-8")
    return summary
