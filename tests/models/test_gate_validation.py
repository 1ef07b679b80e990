"""The gate's decision is MLflow's model validation with the spec's MetricThreshold."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.settings import Settings
from models.churn.spec import SPEC as CHURN
from models.next_spend.spec import SPEC as NEXT_SPEND
from models.promotion import gate_threshold, validate_gate

SETTINGS = Settings()


def test_a_first_version_must_reach_the_floor():
    assert validate_gate(CHURN, 0.76, None, SETTINGS) == (True, None)
    passed, message = validate_gate(CHURN, 0.70, None, SETTINGS)
    assert not passed and "f1 value threshold check failed" in message and "0.75" in message
    # Lower is better for RMSE: the floor is a ceiling.
    assert validate_gate(NEXT_SPEND, 540.0, None, SETTINGS)[0]
    assert not validate_gate(NEXT_SPEND, 560.0, None, SETTINGS)[0]
    overridden = Settings(gate_min_scores={"churn": 0.2})
    assert validate_gate(CHURN, 0.30, None, overridden)[0]
    assert gate_threshold(CHURN, True, overridden).threshold == 0.2


def test_a_challenger_must_beat_the_champion_by_the_specs_change():
    assert validate_gate(CHURN, 0.40, 0.38, SETTINGS)[0]
    tie, message = validate_gate(CHURN, 0.38, 0.38, SETTINGS)
    assert not tie and "minimum absolute change check failed" in message
    assert validate_gate(NEXT_SPEND, 500.0, 520.0, SETTINGS)[0]
    assert not validate_gate(NEXT_SPEND, 530.0, 520.0, SETTINGS)[0]

    demanding = replace(CHURN, gate_min_relative_change=0.05)
    passed, message = validate_gate(demanding, 0.40, 0.39, SETTINGS)  # needs 0.4095
    assert not passed and "relative change" in message
    assert validate_gate(demanding, 0.42, 0.39, SETTINGS)[0]
    cheaper = replace(NEXT_SPEND, gate_min_relative_change=0.1)
    assert not validate_gate(cheaper, 480.0, 520.0, SETTINGS)[0]  # needs <= 468
    assert validate_gate(cheaper, 460.0, 520.0, SETTINGS)[0]


def test_the_threshold_is_mlflows_own():
    threshold = gate_threshold(replace(CHURN, gate_min_relative_change=0.02), False, SETTINGS)
    assert threshold.greater_is_better is True
    assert (threshold.min_absolute_change, threshold.min_relative_change) == (1e-9, 0.02)
    assert gate_threshold(NEXT_SPEND, False, SETTINGS).greater_is_better is False
    with pytest.raises(Exception, match="between 0 and 1"):
        gate_threshold(replace(CHURN, gate_min_relative_change=2.0), False, SETTINGS)
