"""Automatic rollback under traffic: champion moves back, serving follows, no request fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from serving_support import SteadyLoad, free_tcp_port, wait_until

from models.churn.spec import SPEC as CHURN
from models.registry import CHAMPION, PREVIOUS_CHAMPION, alias_version
from models.tracking import configure_mlflow
from monitoring.performance import PeriodQuality
from monitoring.rollback import apply_rollback
from serving.server import BentoServer

AS_OF = datetime(2026, 6, 1, 6, tzinfo=UTC)  # the monitoring run's time

pytestmark = pytest.mark.slow
DAY0 = datetime(2026, 6, 1, tzinfo=UTC)


def scored(version: int, first_day: int, f1: float, days: int = 3) -> list[PeriodQuality]:
    return [
        PeriodQuality("churn", version, "champion", DAY0 + timedelta(days=first_day + d),
                      DAY0 + timedelta(days=first_day + d + 1), 80, 0.3, {"f1": f1})
        for d in range(days)
    ]  # fmt: skip


def test_a_regressing_champion_is_rolled_back_while_traffic_flows(two_versions, known_customers):
    settings, env = two_versions["settings"], two_versions["env"]
    v1, v2 = two_versions["v1"], two_versions["v2"]
    client = configure_mlflow(settings)
    name = CHURN.registered_model
    client.set_registered_model_alias(name, PREVIOUS_CHAMPION, str(v1))
    client.set_registered_model_alias(name, CHAMPION, str(v2))
    server_env = {**env, "CHURN_SERVE_MODEL_REFRESH_SECONDS": "1"}
    with (
        BentoServer(settings, port=free_tcp_port(), env=server_env) as url,
        SteadyLoad(url, known_customers[:200]) as load,
    ):
        load.wait_for_version(v2)
        # v1 served at F1 0.62 live; v2 then at 0.45 for three days: worse by > 0.05.
        periods = scored(v1, 0, 0.62) + scored(v2, 3, 0.45)
        check = apply_rollback(CHURN, periods, settings, AS_OF)
        assert check.rolled_back
        assert alias_version(settings, name, CHAMPION) == v1
        # Nothing points back at v2: a `make rollback` now refuses instead of re-promoting it.
        assert alias_version(settings, name, PREVIOUS_CHAMPION) is None
        load.wait_for_version(v1, timeout=20)
        served = len(load.answers)
        wait_until(lambda: len(load.answers) > served + 50, 20)
    assert load.failures() == [], "no request may fail during the rollback"
    for version, role in ((v2, "rolled_back"), (v1, "restored")):
        tags = client.get_model_version(name, str(version)).tags
        assert tags["rollback.role"] == role
        assert tags.get("rolled_back") == ("true" if version == v2 else None)
        assert "worse than v1's 0.620" in tags["rollback.reason"]
    # Judged again with the same figures: v1 is champion now and holds; nothing moves.
    assert not apply_rollback(CHURN, periods, settings, AS_OF).rolled_back
    assert alias_version(settings, name, CHAMPION) == v1
