"""`make airflow` for real: the services start, the scheduler runs a DAG, stop leaves nothing."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from models.catalog import load_specs

pytestmark = pytest.mark.slow


def churn(*args: str, env: dict) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).with_name("churn")), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)


def test_airflow_services_run_a_triggered_dag_and_stop_cleanly(tmp_path, free_port):
    state = tmp_path / "state"
    port = free_port + 7
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "AIRFLOW"))}
    env.update({"CHURN_STATE_DIR": str(state), "CHURN_AIRFLOW_PORT": str(port)})
    try:
        started = churn("airflow", "start", env=env)
        assert started.returncode == 0, started.stderr[-3000:]
        assert f"http://127.0.0.1:{port}" in started.stdout and "password:" in started.stdout
        password = json.loads(
            (state / "airflow" / "simple_auth_manager_passwords.json.generated").read_text()
        )["admin"]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
            token = api.post("/auth/token", json={"username": "admin", "password": password})
            api.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            dags = {d["dag_id"] for d in api.get("/api/v2/dags").json()["dags"]}
            expected = {"feature_pipeline"}
            for spec in load_specs():
                expected |= {
                    spec.training_dag_id,
                    spec.monitoring_dag_id,
                    spec.deploy_dag_id,
                    spec.batch_scoring_dag_id,
                }
            assert dags == expected
            run = api.post(
                "/api/v2/dags/churn_monitoring/dagRuns", json={"logical_date": None}
            ).json()
            deadline = time.monotonic() + 240
            state_now = "queued"
            while state_now in ("queued", "running") and time.monotonic() < deadline:
                time.sleep(3)
                state_now = api.get(
                    f"/api/v2/dags/churn_monitoring/dagRuns/{run['dag_run_id']}"
                ).json()["state"]
            assert state_now == "success"
    finally:
        pids = [int(p.read_text()) for p in (state / "airflow" / "run").glob("*.pid")]
        stopped = churn("airflow", "stop", env=env)
    assert stopped.returncode == 0 and len(pids) == 4
    # Each component ran in its own process group; none of the groups may survive.
    survivors = subprocess.run(
        ["pgrep", "-g", ",".join(map(str, pids))], capture_output=True, text=True
    )
    assert survivors.stdout.strip() == "", "Airflow processes survived `airflow stop`"
