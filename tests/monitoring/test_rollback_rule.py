"""The automatic-rollback rule: worse live than the previous champion, by the margin, N times."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from models.churn.spec import SPEC as CHURN
from models.next_spend.spec import SPEC as NEXT_SPEND
from monitoring.performance import PeriodQuality
from monitoring.rollback import rollback_verdict

DAY0 = datetime(2026, 6, 1, tzinfo=UTC)
SPEC = replace(CHURN, rollback_margin=0.05, rollback_periods=3)


def served(version: int, scores: list[float | None], first_day: int = 0, metric: str = "f1"):
    return [
        PeriodQuality("churn", version, "champion", DAY0 + timedelta(days=first_day + i),
                      DAY0 + timedelta(days=first_day + i + 1), 60 if s is not None else 3,
                      0.3, {metric: s} if s is not None else {})
        for i, s in enumerate(scores)
    ]  # fmt: skip


def test_a_champion_worse_by_more_than_the_margin_for_n_periods_rolls_back():
    periods = served(1, [0.70, 0.72, 0.68]) + served(2, [0.60, 0.55, 0.62], first_day=3)
    check = rollback_verdict(SPEC, periods, champion_version=2, previous_version=1)
    assert check.rolled_back and check.previous_live == pytest.approx(0.70)
    assert check.champion_recent == (0.60, 0.55, 0.62)
    assert "worse than v1's 0.700 by more than 0.05" in check.reason


def test_within_the_margin_or_too_few_periods_it_stays():
    within = served(1, [0.70, 0.70]) + served(2, [0.66, 0.67, 0.66], first_day=2)
    assert not rollback_verdict(SPEC, within, 2, 1).rolled_back
    one_good = served(1, [0.70]) + served(2, [0.60, 0.69, 0.60], first_day=1)
    assert not rollback_verdict(SPEC, one_good, 2, 1).rolled_back
    # A sparse period is not scored: two scored bad periods are not yet three.
    sparse = served(1, [0.70]) + served(2, [0.50, None, 0.50], first_day=1)
    check = rollback_verdict(SPEC, sparse, 2, 1)
    assert not check.rolled_back and "too few scored periods" in check.reason


def test_nothing_to_compare_with_means_no_rollback():
    assert "no previous champion" in rollback_verdict(SPEC, served(2, [0.1] * 3), 2, None).reason
    check = rollback_verdict(SPEC, served(2, [0.1] * 3), 2, 1)
    assert not check.rolled_back and "no measured live metric" in check.reason
    assert not rollback_verdict(replace(SPEC, rollback_margin=None), [], 2, 1).rolled_back


def test_a_lower_is_better_metric_rolls_back_when_higher():
    spec = replace(NEXT_SPEND, rollback_margin=50.0, rollback_periods=2)
    periods = served(1, [400.0, 420.0], metric="rmse")
    periods += served(2, [480.0, 500.0], first_day=2, metric="rmse")
    assert rollback_verdict(spec, periods, 2, 1).rolled_back  # 480, 500 > 410 + 50
    periods[-1] = served(2, [455.0], first_day=3, metric="rmse")[0]
    assert not rollback_verdict(spec, periods, 2, 1).rolled_back
