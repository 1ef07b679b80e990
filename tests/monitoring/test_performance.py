"""Live quality per period with Evidently's metrics, and the performance-drift streak."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, mean_absolute_error, roc_auc_score

from models.churn.spec import SPEC as CHURN
from models.next_spend.spec import SPEC as NEXT_SPEND
from monitoring.performance import performance_alert, quality_by_period

DAY0 = datetime(2026, 6, 1, tzinfo=UTC)
SPEC = replace(CHURN, live_threshold=0.5, alert_periods=3, min_period_labels=30)


def day_of_predictions(day: int, kind: str, rows: int = 40, version: int = 1) -> pd.DataFrame:
    """One day of labelled churn predictions: all right ("good"), all wrong ("bad")."""
    rng = np.random.default_rng(day)
    label = np.arange(rows) % 2
    prediction = label if kind == "good" else 1 - label
    return pd.DataFrame(
        {
            "logged_at": [DAY0 + timedelta(days=day, minutes=int(m)) for m in range(rows)],
            "customer_id": rng.integers(1, 1000, rows),
            "model_version": version,
            "variant": "champion",
            "probability": np.where(prediction == 1, 0.9, 0.1),
            "prediction": prediction,
            "churned": label,
        }
    )


def periods(*kinds: str) -> list:
    frames = [
        day_of_predictions(day, kind, rows=5 if kind == "sparse" else 40)
        for day, kind in enumerate(kinds)
    ]
    return quality_by_period(SPEC, pd.concat(frames, ignore_index=True))


def test_quality_per_period_is_evidentlys_and_matches_the_definitions():
    rng = np.random.default_rng(0)
    frame = day_of_predictions(0, "good", rows=200)
    flip = rng.random(200) < 0.3  # 30% wrong decisions
    frame["prediction"] = np.where(flip, 1 - frame["churned"], frame["churned"])
    frame["probability"] = np.clip(frame["prediction"] * 0.6 + rng.random(200) * 0.4, 0, 1)
    (quality,) = quality_by_period(SPEC, frame)
    assert quality.labelled == 200 and quality.counted
    assert quality.metrics["f1"] == pytest.approx(f1_score(frame["churned"], frame["prediction"]))
    assert quality.metrics["roc_auc"] == pytest.approx(
        roc_auc_score(frame["churned"], frame["probability"])
    )
    assert quality.error == pytest.approx(flip.mean())
    assert quality.mean_prediction == pytest.approx(frame["prediction"].mean())
    assert (quality.period_start, quality.period_end) == (DAY0, DAY0 + timedelta(days=1))


def test_a_classifiers_quality_is_of_its_served_decisions_not_of_probabilities_cut_at_half():
    """A churn model decides at its own threshold (here 0.2): its live F1, precision,
    recall and accuracy are those of the decisions it served."""
    rng = np.random.default_rng(1)
    frame = day_of_predictions(0, "good", rows=300)
    frame["probability"] = np.clip(frame["churned"] * 0.2 + rng.random(300) * 0.25, 0, 1)
    frame["prediction"] = (frame["probability"] >= 0.2).astype(int)
    assert frame["probability"].max() < 0.5  # cut at 0.5, nothing would be a churner
    (quality,) = quality_by_period(SPEC, frame)
    decided = frame["prediction"]
    assert quality.metrics["f1"] == pytest.approx(f1_score(frame["churned"], decided))
    assert quality.metrics["f1"] > 0.5
    assert quality.error == pytest.approx((decided != frame["churned"]).mean())
    assert quality.metrics["roc_auc"] == pytest.approx(
        roc_auc_score(frame["churned"], frame["probability"])
    )


def test_regression_quality_is_mae_and_rmse():
    rng = np.random.default_rng(1)
    spend = rng.random(100) * 500
    frame = pd.DataFrame(
        {
            "logged_at": [DAY0 + timedelta(minutes=m) for m in range(100)],
            "customer_id": np.arange(100),
            "model_version": 2,
            "variant": "challenger",
            "prediction": spend + rng.normal(0, 40, 100),
            "spend_next_30d": spend,
        }
    )
    (quality,) = quality_by_period(NEXT_SPEND, frame)
    mae = mean_absolute_error(frame["spend_next_30d"], frame["prediction"])
    assert quality.metrics["mae"] == pytest.approx(mae)
    rmse = np.sqrt(np.mean((frame["spend_next_30d"] - frame["prediction"]) ** 2))
    assert quality.metrics["rmse"] == pytest.approx(rmse)
    assert quality.error == pytest.approx(mae)
    assert (quality.model_version, quality.variant) == (2, "challenger")


def test_n_minus_one_bad_periods_do_not_alert_and_n_do():
    assert performance_alert(SPEC, periods("good", "bad", "bad")) == []
    (alert,) = performance_alert(SPEC, periods("good", "bad", "bad", "bad"))
    assert [p.period_start.day for p in alert.periods] == [2, 3, 4]
    assert all(p.metrics["f1"] == 0.0 for p in alert.periods)
    assert "f1 worse than 0.5 for 3 periods" in alert.reason()
    # A good period breaks the streak: the alert is about the current state.
    assert performance_alert(SPEC, periods("bad", "bad", "bad", "good")) == []


def test_a_period_with_too_few_labels_neither_counts_nor_breaks_the_streak():
    sparse = periods("bad", "bad", "sparse")
    assert not sparse[2].counted and sparse[2].labelled == 5
    assert performance_alert(SPEC, sparse) == []  # it does not count as the third
    (alert,) = performance_alert(SPEC, periods("bad", "sparse", "bad", "bad"))
    assert [p.period_start.day for p in alert.periods] == [1, 3, 4]  # nor break it


def test_each_served_version_has_its_own_streak():
    frames = [day_of_predictions(d, "bad", version=1) for d in range(3)]
    frames += [day_of_predictions(d, "good", version=2) for d in range(3)]
    alerts = performance_alert(SPEC, quality_by_period(SPEC, pd.concat(frames)))
    assert [(a.model_version, len(a.periods)) for a in alerts] == [(1, 3)]


def test_a_lower_is_better_metric_alerts_when_above_its_threshold():
    spec = replace(NEXT_SPEND, live_threshold=10.0, alert_periods=2, min_period_labels=5)
    frame = pd.DataFrame(
        {
            "logged_at": [DAY0 + timedelta(days=d, minutes=m) for d in range(2) for m in range(5)],
            "customer_id": range(10),
            "model_version": 1,
            "variant": "champion",
            "prediction": [100.0] * 10,
            "spend_next_30d": [150.0] * 10,  # RMSE 50 > 10
        }
    )
    (alert,) = performance_alert(spec, quality_by_period(spec, frame))
    assert alert.metric == "rmse" and alert.periods[-1].metrics["rmse"] == pytest.approx(50.0)
