"""Drift report on synthetic churn traffic, with the real Evidently 0.7 (no mocks)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.settings import PROJECT_ROOT, Settings
from models.churn.spec import SPEC as CHURN
from monitoring import (
    PSI_BINNING,
    DriftSummary,
    build_drift_report,
    classify_psi,
)

FEATURE_COLUMNS = CHURN.feature_names
PREDICTION_COLUMNS = CHURN.output_columns

SEGMENTS = ["budget", "regular", "premium"]
REFERENCE_MIX = (0.5, 0.35, 0.15)


def churn_frame(
    n: int,
    seed: int,
    spend_factor: float = 1.0,
    segment_mix: tuple[float, float, float] = REFERENCE_MIX,
    live: bool = False,
) -> pd.DataFrame:
    """Features plus model outputs; ``live`` adds the extra columns of logged traffic."""
    rng = np.random.default_rng(seed)
    orders = rng.poisson(3.0, n)
    aov = rng.gamma(4.0, 12.5, n)
    days = rng.integers(0, 60, n)
    logit = -1.5 + 0.06 * days - 0.25 * orders
    probability = 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame(
        {
            "total_orders_30d": orders.astype(int),
            "total_spend_30d": orders * aov * spend_factor,
            "avg_order_value": aov,
            "days_since_last_order": days.astype(int),
            "customer_segment": rng.choice(SEGMENTS, n, p=segment_mix),
            "lifetime_value": rng.lognormal(6.0, 0.5, n),
            "probability": probability,
            "prediction": (probability >= 0.5).astype(int),
        }
    )
    if live:
        frame["timestamp"] = pd.date_range("2026-05-01", periods=n, freq="min", tz="UTC")
        frame["customer_id"] = np.arange(1_000_000, 1_000_000 + n)  # would drift if used
        frame["model_version"] = "7"
    return frame


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return Settings(storage={"state_dir": tmp_path_factory.mktemp("state")})


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return churn_frame(2000, seed=1)


@pytest.fixture(scope="module")
def stable(reference, settings) -> DriftSummary:
    return build_drift_report(CHURN, reference, churn_frame(2000, seed=2, live=True), settings)


@pytest.fixture(scope="module")
def shifted(reference, settings) -> DriftSummary:
    current = churn_frame(2000, seed=3, spend_factor=1.8, segment_mix=(0.2, 0.35, 0.45), live=True)
    return build_drift_report(CHURN, reference, current, settings, name="shifted")


def test_same_distribution_has_no_significant_drift(stable):
    assert stable.significant is False
    assert [c.column for c in stable.features] == list(FEATURE_COLUMNS)
    assert [c.column for c in stable.prediction] == list(PREDICTION_COLUMNS)
    for column in stable.features + stable.prediction:
        assert column.level in ("none", "moderate"), column
        assert 0 <= column.psi < 0.25, column
    assert (stable.reference_rows, stable.current_rows) == (2000, 2000)


def test_shifted_spend_and_segment_mix_is_significant(shifted):
    assert shifted.significant is True
    levels = {c.column: c.level for c in shifted.features}
    assert levels["total_spend_30d"] == "significant"
    assert levels["customer_segment"] == "significant"
    assert {c.column for c in shifted.top_drifted(2)} == {"total_spend_30d", "customer_segment"}
    top = shifted.top_drifted()
    assert len(top) == 3 and top[0].psi >= top[1].psi >= top[2].psi
    for column in ("total_orders_30d", "avg_order_value", "days_since_last_order"):
        assert levels[column] == "none"


def test_psi_is_evidentlys_value(shifted):
    evidently = json.loads(shifted.json_path.read_text())
    value_drift = [
        m["config"] | {"value": m["value"]}
        for m in evidently["metrics"]
        if m["config"]["type"] == "evidently:metric_v2:ValueDrift"
    ]
    assert {m["method"] for m in value_drift} == {"psi"}
    by_column = {m["column"]: m["value"] for m in value_drift}
    assert set(by_column) == set(FEATURE_COLUMNS + PREDICTION_COLUMNS)  # extra columns ignored
    for column in shifted.features + shifted.prediction:
        assert column.psi == by_column[column.column]
        assert isinstance(column.psi, float)


def test_files_written_and_binning_named(stable, settings):
    out = settings.storage.reports_dir / "drift" / "churn"  # each model's reports apart
    for path in (stable.html_path, stable.json_path, stable.summary_path):
        assert path.parent == out and path.is_file() and path.stat().st_size > 0
        assert path.name.startswith("drift_") and "Z." in path.name  # UTC timestamp
    summary = json.loads(stable.summary_path.read_text())
    assert summary["psi_binning"] == stable.psi_binning == PSI_BINNING
    assert "sturges" in summary["psi_binning"] and "equal-width" in summary["psi_binning"]
    assert summary["significant"] is False
    assert summary["thresholds"] == {"moderate": 0.1, "significant": 0.25}
    assert [f["column"] for f in summary["features"]] == list(FEATURE_COLUMNS)
    assert summary["json_path"] == str(stable.json_path)
    assert summary == stable.to_dict()
    assert "sturges" in stable.html_path.read_text(encoding="utf-8")  # Evidently text widget


def test_out_dir_and_name(reference, settings, tmp_path):
    summary = build_drift_report(
        CHURN,
        reference,
        reference.sample(300, random_state=0),
        settings,
        out_dir=tmp_path / "here",
        name="daily",
    )
    assert summary.html_path.parent == tmp_path / "here"
    assert summary.summary_path.name.startswith("daily_")
    assert summary.summary_path.name.endswith("Z.summary.json")


@pytest.mark.parametrize(
    ("psi", "level"),
    [
        (0.0, "none"),
        (0.0999, "none"),
        (0.1, "moderate"),
        (0.2499, "moderate"),
        (0.25, "significant"),
        (3.0, "significant"),
    ],
)
def test_classify_psi_boundaries(psi, level):
    assert classify_psi(psi, CHURN) == level


def test_classify_psi_follows_the_spec():
    spec = replace(CHURN, psi_moderate=0.2, psi_significant=0.3)
    assert classify_psi(0.15, spec) == "none"
    assert classify_psi(0.25, spec) == "moderate"
    assert classify_psi(0.3, spec) == "significant"
    with pytest.raises(ValueError, match="NaN"):
        classify_psi(math.nan, spec)


def test_the_report_grades_with_the_specs_thresholds(reference, tmp_path):
    spec = replace(CHURN, psi_moderate=0.01, psi_significant=0.02)
    current = churn_frame(2000, seed=3, spend_factor=1.8, segment_mix=(0.2, 0.35, 0.45))
    summary = build_drift_report(
        spec, reference, current, Settings(storage={"state_dir": tmp_path})
    )
    assert (summary.psi_moderate, summary.psi_significant) == (0.01, 0.02)
    assert json.loads(summary.summary_path.read_text())["thresholds"] == {
        "moderate": 0.01,
        "significant": 0.02,
    }
    for column in summary.features:
        assert column.level == classify_psi(column.psi, spec)


def test_too_few_current_rows(reference, tmp_path):
    settings = Settings(storage={"state_dir": tmp_path})
    current = churn_frame(settings.monitoring.drift_min_rows - 1, seed=4)
    with pytest.raises(ValueError, match="drift_min_rows"):
        build_drift_report(CHURN, reference, current, settings)
    assert not (settings.storage.reports_dir / "drift").exists()


def test_missing_feature_column(reference, tmp_path):
    settings = Settings(storage={"state_dir": tmp_path})
    current = churn_frame(500, seed=5).drop(columns=["avg_order_value"])
    with pytest.raises(ValueError, match="avg_order_value"):
        build_drift_report(CHURN, reference, current, settings)


def test_empty_column(reference, tmp_path):
    current = churn_frame(500, seed=6)
    current["lifetime_value"] = np.nan
    with pytest.raises(ValueError, match="lifetime_value"):
        build_drift_report(CHURN, reference, current, Settings(storage={"state_dir": tmp_path}))


def test_import_has_no_side_effects(tmp_path):
    code = (
        "import sys, monitoring, monitoring.drift; "
        "assert 'evidently' not in sys.modules, 'evidently imported eagerly'"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={
            "PYTHONPATH": str(PROJECT_ROOT),
            "PYTHONDONTWRITEBYTECODE": "1",
            "CHURN_STATE_DIR": str(tmp_path / "s"),
        },
    )
    assert done.returncode == 0, done.stderr
    assert list(Path(tmp_path).iterdir()) == []
