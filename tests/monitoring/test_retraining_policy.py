"""The retraining policy: debounced on running work and a cool-down, every decision kept."""

import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from core.settings import PROJECT_ROOT, Settings
from models.churn.spec import SPEC as CHURN
from monitoring.retraining import RetrainRequest, request_retraining, retrain_history

T0 = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
SPEC = replace(CHURN, retrain_cooldown_hours=12)


def ask(kind: str, hours: float, reason: str = "") -> RetrainRequest:
    when = T0 + timedelta(hours=hours)
    return RetrainRequest("churn", kind, reason or f"{kind} at +{hours}h", when)


@pytest.fixture(params=["sqlite", "postgresql"])
def platform(request, tmp_path) -> Settings:
    storage = {"state_dir": tmp_path / "state"}
    if request.param == "postgresql":
        storage |= {
            "postgres_url": request.getfixturevalue("postgres_url"),
            "platform_database": f"platform_{uuid.uuid4().hex[:8]}",
        }
    return Settings(storage=storage)


def test_requests_are_debounced_and_every_decision_is_recorded(platform):
    first = request_retraining(ask("drift", 0, "feature PSI 0.4"), SPEC, platform)
    assert first.accepted and first.conf()["reason"] == "feature PSI 0.4"
    assert first.conf()["trigger"] == "drift"
    # While the accepted run is still queued or running: refused, whatever the reason.
    busy = request_retraining(ask("performance", 1), SPEC, platform, active_runs=1)
    assert not busy.accepted and "already queued or running" in busy.why
    # Done, but inside the 12 h cool-down: refused.
    early = request_retraining(ask("schedule", 11.5), SPEC, platform)
    assert not early.accepted and "cool-down" in early.why
    # Past it: accepted again.
    assert request_retraining(ask("performance", 12.5), SPEC, platform).accepted

    history = retrain_history(SPEC, platform)
    assert [(d.request.kind, d.accepted) for d in history] == [
        ("drift", True),
        ("performance", False),
        ("schedule", False),
        ("performance", True),
    ]
    assert history[2].request.requested_at == T0 + timedelta(hours=11.5)
    # Another model's policy is its own.
    other = replace(SPEC, name="next_spend")
    assert retrain_history(other, platform) == []


def test_concurrent_requests_from_several_processes_accept_exactly_one(platform):
    env = {
        "PATH": "/usr/bin:/bin",
        "CHURN_STATE_DIR": str(platform.storage.state_dir),
        "CHURN_POSTGRES_URL": platform.storage.postgres_url or "",
        "CHURN_PLATFORM_DATABASE": platform.storage.platform_database,
    }
    if not platform.storage.postgres_url:
        del env["CHURN_POSTGRES_URL"]
    code = (
        "import sys\n"
        "from datetime import datetime\n"
        "from core.settings import get_settings\n"
        "from models.churn.spec import SPEC\n"
        "from monitoring.retraining import RetrainRequest, request_retraining\n"
        "when = datetime.fromisoformat(sys.argv[2])\n"
        "request = RetrainRequest('churn', 'drift', sys.argv[1], when)\n"
        "print(request_retraining(request, SPEC, get_settings()).accepted)\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, f"monitor {i}", T0.isoformat()],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert all(p.returncode == 0 for p in processes), [err[-2000:] for _, err in outputs]
    assert sorted(out.strip() for out, _ in outputs) == ["False", "False", "False", "True"]
    assert sum(d.accepted for d in retrain_history(CHURN, platform)) == 1
