"""The live A/B verdict: a stated test, a minimum sample size, the lift with its interval."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from models.churn.spec import SPEC as CHURN
from models.next_spend.spec import SPEC as NEXT_SPEND
from monitoring.ab_verdict import live_ab_verdict, record_verdict

START = datetime(2026, 6, 1, tzinfo=UTC)


def churn_traffic(variant: str, version: int, n: int, correct_share: float, seed: int):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    correct = np.arange(n) < round(correct_share * n)
    prediction = np.where(correct, label, 1 - label)
    return pd.DataFrame(
        {
            "logged_at": [START + timedelta(minutes=i) for i in range(n)],
            "customer_id": rng.integers(1, 5000, n),
            "model_version": version,
            "variant": variant,
            "probability": prediction * 0.8 + 0.1,
            "prediction": prediction,
            "churned": label,
        }
    )


def test_a_worse_challenger_is_caught_with_its_lift_and_interval():
    labelled = pd.concat(
        [
            churn_traffic("champion", 3, 400, 0.80, seed=1),
            churn_traffic("challenger", 4, 400, 0.60, seed=2),
        ]
    )
    verdict = live_ab_verdict(CHURN, labelled, min_samples=200)
    assert verdict.decision == "champion_better"
    assert verdict.test == "two-proportion z-test"
    assert (verdict.champion_version, verdict.challenger_version) == (3, 4)
    assert verdict.lift == pytest.approx(0.60 - 0.80)
    assert verdict.ci_low < verdict.lift < verdict.ci_high < 0  # the interval excludes 0
    assert verdict.p_value < 1e-6
    assert verdict.tags()["live_ab.decision"] == "champion_better"


def test_equal_variants_give_no_difference_and_small_samples_no_verdict():
    same = pd.concat(
        [
            churn_traffic("champion", 3, 400, 0.75, seed=1),
            churn_traffic("challenger", 4, 400, 0.75, seed=2),
        ]
    )
    verdict = live_ab_verdict(CHURN, same, min_samples=200)
    assert verdict.decision == "no_difference" and verdict.ci_low < 0 < verdict.ci_high
    few = pd.concat(
        [
            churn_traffic("champion", 3, 400, 0.9, seed=1),
            churn_traffic("challenger", 4, 150, 0.1, seed=2),
        ]
    )
    verdict = live_ab_verdict(CHURN, few, min_samples=200)
    assert verdict.decision == "insufficient_data" and verdict.challenger_n == 150
    assert verdict.p_value is None and verdict.lift is None


def test_only_the_newest_version_of_each_variant_is_compared():
    labelled = pd.concat(
        [
            churn_traffic("challenger", 2, 300, 0.2, seed=5),  # an older challenger
            churn_traffic("champion", 3, 300, 0.7, seed=1),
            churn_traffic("challenger", 4, 300, 0.7, seed=2).assign(
                logged_at=lambda f: f["logged_at"] + timedelta(days=1)
            ),
        ]
    )
    verdict = live_ab_verdict(CHURN, labelled, min_samples=200)
    assert (verdict.challenger_version, verdict.challenger_n) == (4, 300)
    assert verdict.decision == "no_difference"


def test_regression_compares_absolute_errors_with_welch():
    rng = np.random.default_rng(3)
    frames = []
    for variant, version, noise in (("champion", 1, 80.0), ("challenger", 2, 40.0)):
        spend = rng.random(300) * 500
        frames.append(
            pd.DataFrame(
                {
                    "logged_at": [START + timedelta(minutes=i) for i in range(300)],
                    "customer_id": np.arange(300),
                    "model_version": version,
                    "variant": variant,
                    "prediction": spend + rng.normal(0, noise, 300),
                    "spend_next_30d": spend,
                }
            )
        )
    verdict = live_ab_verdict(NEXT_SPEND, pd.concat(frames), min_samples=200)
    errors = [(f["prediction"] - f["spend_next_30d"]).abs().mean() for f in frames]
    assert verdict.test == "Welch's t-test"
    assert verdict.lift == pytest.approx(errors[0] - errors[1])
    assert verdict.decision == "challenger_better" and verdict.ci_low > 0


def test_the_verdict_is_written_on_the_model_versions(world):
    labelled = pd.concat(
        [
            churn_traffic("champion", 1, 250, 0.8, seed=1),
            churn_traffic("challenger", 1, 250, 0.8, seed=2),
        ]
    )
    verdict = live_ab_verdict(CHURN, labelled, min_samples=200)
    record_verdict(verdict, CHURN, world.settings)
    from models.tracking import configure_mlflow

    tags = configure_mlflow(world.settings).get_model_version(CHURN.registered_model, "1").tags
    assert tags["live_ab.decision"] == verdict.decision
    assert float(tags["live_ab.p_value"]) == pytest.approx(verdict.p_value)
    assert tags["live_ab.test"] == "two-proportion z-test"
