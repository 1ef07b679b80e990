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


# --- in the registry (real MLflow, a sqlite store in the test's state folder) -----------------
AS_OF = datetime(2026, 6, 7, 6, tzinfo=UTC)  # the monitoring run's time


def registered(settings, count: int, tmp_path) -> tuple[str, list[int]]:
    """``count`` versions of the churn model, the first champion, each promoted over the last."""
    from models.registry import set_champion
    from models.tracking import configure_mlflow

    client = configure_mlflow(settings)
    name = CHURN.registered_model
    client.create_registered_model(name)
    versions = []
    for i in range(count):
        source = tmp_path / f"model-{i}"
        source.mkdir()
        versions.append(int(client.create_model_version(name, source.as_uri()).version))
        set_champion(client, name, versions[-1], versions[-2] if i else None)
    return name, versions


def aliases(settings, name: str) -> dict[str, int]:
    from models.tracking import configure_mlflow

    model = configure_mlflow(settings).get_registered_model(name)
    return {alias: int(version) for alias, version in model.aliases.items()}


def tags(settings, name: str, version: int) -> dict[str, str]:
    from models.tracking import configure_mlflow

    return configure_mlflow(settings).get_model_version(name, str(version)).tags


def test_make_rollback_after_an_automatic_one_refuses_to_re_promote(state, tmp_path, capsys):
    """Issue 24: v2 served at live F1 0.22 against v1's 0.31, the rule rolled it back; a
    `make rollback` then must not bring v2 back."""
    from cli.main import main
    from models.registry import PREVIOUS_CHAMPION
    from monitoring.rollback import apply_rollback

    name, (v1, v2) = registered(state, 2, tmp_path)
    assert aliases(state, name) == {"champion": v2, PREVIOUS_CHAMPION: v1}
    periods = served(v1, [0.31, 0.31, 0.31]) + served(v2, [0.22, 0.22, 0.22], first_day=3)
    check = apply_rollback(CHURN, periods, state, AS_OF)
    assert check.rolled_back
    assert aliases(state, name) == {"champion": v1}  # nothing left to point back at v2
    left = tags(state, name, v2)
    assert left["rolled_back"] == "true" and left["rollback.role"] == "rolled_back"
    assert left["rollback.reason"] == check.reason and left["rollback.at"] == AS_OF.isoformat()
    assert tags(state, name, v1)["rollback.role"] == "restored"

    with pytest.raises(SystemExit) as refused:
        main(["rollback", "--model", "churn"])
    assert "not rolled back" in str(refused.value.code)
    assert "no previous champion to roll back to (champion is v1" in str(refused.value.code)
    assert aliases(state, name) == {"champion": v1}
    # The rule, run again on the same figures, has nothing to compare with: nothing moves.
    again = apply_rollback(CHURN, periods, state, AS_OF)
    assert not again.rolled_back and "no previous champion" in again.reason
    assert aliases(state, name) == {"champion": v1}


def test_a_second_make_rollback_refuses_and_names_why(state, tmp_path):
    from models.registry import NoRollbackTarget, rollback_champion

    name, (_, v2, v3) = registered(state, 3, tmp_path)
    done = rollback_champion(state, name, "v3 misbehaves", at=AS_OF)
    assert (done.champion, done.rolled_back_from) == (v2, v3)
    assert aliases(state, name) == {"champion": v2}
    assert tags(state, name, v3)["rollback.reason"] == "v3 misbehaves"
    with pytest.raises(NoRollbackTarget, match="no previous champion to roll back to"):
        rollback_champion(state, name, "again")
    assert aliases(state, name) == {"champion": v2}
    assert "rolled_back" not in tags(state, name, v2)


def test_a_rolled_back_version_is_never_a_way_back(state, tmp_path):
    """Whoever points previous_champion at a rolled-back version, neither a rollback nor a
    failed deploy moves champion to it."""
    from models.registry import (
        PREVIOUS_CHAMPION,
        NoRollbackTarget,
        restore_previous_champion,
        rollback_champion,
    )
    from models.tracking import configure_mlflow

    name, (v1, v2) = registered(state, 2, tmp_path)
    rollback_champion(state, name, "v2 misbehaves", at=AS_OF)
    configure_mlflow(state).set_registered_model_alias(name, PREVIOUS_CHAMPION, str(v2))
    with pytest.raises(NoRollbackTarget):
        rollback_champion(state, name, "again")
    assert restore_previous_champion(state, name, failed=v1) is None
    assert aliases(state, name)["champion"] == v1


def test_a_rolled_back_version_promoted_by_hand_can_be_rolled_back_to_again(state, tmp_path):
    from models.registry import promote_by_hand, rollback_champion, set_champion
    from models.tracking import configure_mlflow

    name, (v1, v2) = registered(state, 2, tmp_path)
    rollback_champion(state, name, "v2 misbehaves", at=AS_OF)
    assert promote_by_hand(state, name, v2, "fixed upstream: v2 is fine") == v1
    assert "rolled_back" not in tags(state, name, v2)  # champion again: the flag is history
    v3 = int(
        configure_mlflow(state).create_model_version(name, (tmp_path / "model-0").as_uri()).version
    )
    set_champion(configure_mlflow(state), name, v3, v2)
    assert rollback_champion(state, name, "v3 misbehaves", at=AS_OF).champion == v2
    assert tags(state, name, v3)["rolled_back"] == "true"
