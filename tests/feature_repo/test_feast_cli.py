"""The Feast CLI on feature_repo/, run as a Feast user runs it: plan, apply, ui."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandas as pd
import pytest

from cli.main import main as churn
from core.settings import FEATURE_REPO_DIR, PROJECT_ROOT, Settings
from data import delta_tables
from data.store import (
    apply_feature_definitions,
    feature_views_of,
    get_feature_store,
    materialize,
)
from models.catalog import load_specs

FEAST = str(Path(sys.executable).with_name("feast"))


def feast_env() -> dict[str, str]:
    """The test's environment (its CHURN_* settings); bytecode allowed, as `make` does."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONWARNINGS": "ignore"}


def feast_command(settings: Settings, *args: str) -> list[str]:
    return [
        FEAST, "--chdir", str(FEATURE_REPO_DIR),
        "--feature-store-yaml", str(settings.storage.feature_store_yaml), *args,
    ]  # fmt: skip


def feast(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        feast_command(settings, *args), env=feast_env(), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def feast_config(capsys: pytest.CaptureFixture) -> str:
    """``churn feast-config``, the command users run before the Feast CLI; its output."""
    churn(["feast-config"])
    return capsys.readouterr().out


def snapshot_table(settings: Settings, day: str) -> None:
    ts = pd.Timestamp(f"{day} 23:59:59", tz="UTC")
    frame = pd.DataFrame(
        {
            "customer_id": [7, 8],
            "event_timestamp": ts,
            "created_timestamp": ts,
            "snapshot_date": day,
            "total_orders_30d": 2,
            "total_spend_30d": [70.0, 80.0],
            "avg_order_value": 1.0,
            "days_since_last_order": 3,
            "customer_segment": "premium",
            "lifetime_value": [70.0, 80.0],
        }
    )
    delta_tables.replace_partitions(settings.storage.customer_features_path, frame, "snapshot_date")


def no_changes(plan: subprocess.CompletedProcess) -> None:
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "No changes to registry" in plan.stdout, plan.stdout[-3000:]
    assert "No changes to infrastructure" in plan.stdout, plan.stdout[-3000:]


def materialize_day(settings: Settings, day: int) -> None:
    store = get_feature_store(settings)
    materialize(
        store,
        datetime(2025, 12, 1, tzinfo=UTC),
        datetime(2026, 1, day, tzinfo=UTC),
        ["customer_features_v1"],
    )


@pytest.mark.slow
def test_feast_plan_after_python_apply_and_materialize_reports_no_changes(state, capsys):
    """The platform's own apply leaves nothing for `feast plan` or `feast apply` to do."""
    feast_config(capsys)
    snapshot_table(state, "2026-01-01")
    apply_feature_definitions(state)
    materialize_day(state, 2)  # the registry's view now holds a materialized interval
    apply_feature_definitions(state)  # what each pipeline run does
    no_changes(feast(state, "plan"))
    no_changes(feast(state, "apply"))


@pytest.mark.slow
def test_feast_plan_after_feast_apply_and_materialize_reports_no_changes(state, capsys):
    feast_config(capsys)
    snapshot_table(state, "2026-01-01")
    applied = feast(state, "apply")
    assert applied.returncode == 0, applied.stderr[-2000:]
    assert "Created feature view customer_features" in applied.stdout
    materialize_day(state, 2)
    # The first apply stored the registry's own creation stamp inside the view; this
    # apply (the view now holds an interval) replaces it with the definitions' one.
    assert feast(state, "apply").returncode == 0
    snapshot_table(state, "2026-01-02")
    materialize_day(state, 3)
    no_changes(feast(state, "plan"))


@pytest.mark.slow
def test_feast_without_its_yaml_says_so_and_feast_config_gives_the_command(state, capsys):
    missing = feast(state, "plan")
    assert missing.returncode == 1
    assert "Can't find feature repo configuration file" in missing.stdout
    # The README section on that message names the command that writes the file.
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split("## The Feast CLI", 1)[1].split("\n## ", 1)[0]
    assert "Can't find feature repo configuration file" in section
    assert "make feast-config" in section

    printed = feast_config(capsys)
    assert str(state.storage.feature_store_yaml) in printed
    command = printed.strip().splitlines()[-1].strip()
    assert command.startswith("cd feature_repo && feast --feature-store-yaml ")
    env = feast_env()
    env["PATH"] = f"{Path(FEAST).parent}{os.pathsep}{env['PATH']}"
    ran = subprocess.run(
        ["bash", "-c", command], cwd=PROJECT_ROOT, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "Created feature view customer_features" in ran.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_feast_ui_serves_its_page_and_the_registry(state, capsys, tmp_path):
    feast_config(capsys)
    apply_feature_definitions(state)
    port = _free_port()
    log = tmp_path / "feast-ui.log"
    command = feast_command(state, "ui", "--host", "127.0.0.1", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        server = subprocess.Popen(command, env=feast_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        page = None
        while page is None:
            assert server.poll() is None, f"feast ui exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"feast ui never answered:\n{log.read_text()}"
            try:
                page = httpx.get(f"{base}/", timeout=2)
            except httpx.TransportError:
                time.sleep(0.5)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<div id="root">' in page.text
        projects = httpx.get(f"{base}/projects-list.json", timeout=10).json()["projects"]
        assert [p["id"] for p in projects] == [state.feast_project]
        # The UI reads the registry through Feast's registry server (the grpc_health import).
        views = httpx.get(
            f"{base}/api/v1/feature_views", params={"project": state.feast_project}, timeout=10
        ).json()["featureViews"]
        store = get_feature_store(state)
        declared = {
            v for spec in load_specs() for v in feature_views_of(store, spec.feature_service)
        }
        assert "customer_features" in declared
        assert sorted(v["spec"]["name"] for v in views) == sorted(declared)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
