"""`make airflow` for real: the services start, the scheduler runs a DAG, stop leaves nothing."""

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from models.catalog import load_specs

pytestmark = pytest.mark.slow


def churn(*args: str, env: dict) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).with_name("churn")), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_airflow_services_run_a_triggered_dag_and_stop_cleanly(tmp_path, free_port):
    state = tmp_path / "state"
    port = free_port + 7
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "AIRFLOW"))}
    env.update({"CHURN_STATE_DIR": str(state), "CHURN_AIRFLOW_PORT": str(port)})
    try:
        started = churn("airflow", "start", env=env)
        assert started.returncode == 0, started.stderr[-3000:]
        assert f"http://127.0.0.1:{port}" in started.stdout and "password:" in started.stdout
        password_file = state / "airflow" / "simple_auth_manager_passwords.json.generated"
        password = json.loads(password_file.read_text())["admin"]
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        # Every Airflow server listens on loopback only (no log server on all interfaces).
        groups = {int(p.read_text().split()[0]) for p in (state / "airflow" / "run").glob("*.pid")}
        listening = {
            (c.laddr.ip, c.laddr.port)
            for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.pid and _group_of(c.pid) in groups
        }
        assert (("127.0.0.1", port)) in listening
        assert {ip for ip, _ in listening} == {"127.0.0.1"}, listening
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
            token = api.post("/auth/token", json={"username": "admin", "password": password})
            api.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            expected = {"feature_pipeline"}
            for spec in load_specs():
                expected |= {
                    spec.training_dag_id,
                    spec.monitoring_dag_id,
                    spec.deploy_dag_id,
                    spec.batch_scoring_dag_id,
                }
            # `make airflow` returns once every component is healthy; the dag-processor
            # may still be parsing the DAG files then.
            deadline = time.monotonic() + 180
            dags: set[str] = set()
            while dags != expected and time.monotonic() < deadline:
                dags = {d["dag_id"] for d in api.get("/api/v2/dags").json()["dags"]}
                time.sleep(2)
            assert dags == expected
            triggered = api.post(
                "/api/v2/dags/churn_monitoring/dagRuns", json={"logical_date": None}
            )
            assert triggered.status_code == 200, triggered.text
            run = triggered.json()
            deadline = time.monotonic() + 240
            state_now = "queued"
            while state_now in ("queued", "running") and time.monotonic() < deadline:
                time.sleep(3)
                state_now = api.get(
                    f"/api/v2/dags/churn_monitoring/dagRuns/{run['dag_run_id']}"
                ).json()["state"]
            assert state_now == "success"
    finally:
        pids = [int(p.read_text().split()[0]) for p in (state / "airflow" / "run").glob("*.pid")]
        stopped = churn("airflow", "stop", env=env)
    assert stopped.returncode == 0 and len(pids) == 4
    # Each component ran in its own process group; none of the groups may survive. An
    # exited process may stay a zombie until its parent (here possibly the container's
    # init) reaps it: it no longer runs, so it is not a survivor.
    survivors = [
        f"{p.pid} {p.info['status']} {p.info['cmdline']}"
        for p in psutil.process_iter(["status", "cmdline"])
        if _group_of(p.pid) in pids and p.info["status"] != psutil.STATUS_ZOMBIE
    ]
    assert survivors == [], f"Airflow processes survived `airflow stop`: {survivors}"

    # The run's task logs, the files the UI shows: each task's own lines at INFO (the
    # retraining decision), and nothing of MLflow's tagged ERROR for coming through stderr.
    logs = state / "airflow" / "logs" / "dag_id=churn_monitoring" / f"run_id={run['dag_run_id']}"
    records = [
        json.loads(line)
        for path in logs.glob("task_id=*/attempt=*.log")
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    decisions = [
        r for r in records
        if str(r.get("event")).startswith(("nothing asks for a retrain", "retraining policy:"))
    ]  # fmt: skip
    assert [r["level"] for r in decisions] == ["info"], records
    stderr = [r["event"] for r in records if r.get("logger") == "task.stderr"]
    assert not [line for line in stderr if " INFO " in line], stderr
