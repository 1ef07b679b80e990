"""Running this project's DAGs with Airflow, in-process (demo, tests) or as services (UI).

Airflow reads its configuration when first imported, so :func:`use_project_airflow` must
run before any ``airflow`` import in the process; every function here calls it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def use_project_airflow(settings: Settings) -> dict[str, str]:
    """Point Airflow (in this process and its children) at the project's DAGs and database."""
    env = settings.airflow_env()
    if "airflow" in sys.modules and os.environ.get("AIRFLOW_HOME") != env["AIRFLOW_HOME"]:
        raise RuntimeError("airflow was imported before use_project_airflow() configured it")
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    if settings.storage.postgres_url:
        from core.backends import ensure_postgres_database

        ensure_postgres_database(settings, settings.airflow.database)
    os.environ.update(env)
    return env


def migrate_airflow_db(settings: Settings) -> None:
    """``airflow db migrate`` in-process (creates the metadata database on first use)."""
    use_project_airflow(settings)
    from airflow.utils.db import upgradedb

    upgradedb()


@dataclass(frozen=True)
class DagRunResult:
    dag_id: str
    run_id: str
    state: str
    task_states: dict[str, str]
    returns: dict[str, object]

    @property
    def succeeded(self) -> bool:
        return self.state == "success"


def _result(dag_id: str, run) -> DagRunResult:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = run.get_task_instances(session=session)
        states = {ti.task_id: str(ti.state) for ti in tis}
        rows = session.execute(
            select(XComModel.task_id, XComModel.value).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run.run_id,
                XComModel.key == "return_value",
            )
        ).all()
    returns = {task_id: XComModel.deserialize_value(_Row(value)) for task_id, value in rows}
    return DagRunResult(dag_id, run.run_id, str(run.state), states, returns)


@dataclass
class _Row:
    value: object


def get_dag(dag_id: str, settings: Settings):
    """Parse the project's DAG folder (as the dag-processor does) and return one DAG."""
    use_project_airflow(settings)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=settings.airflow_env()["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag.dags[dag_id]


def run_dag(
    dag_id: str, settings: Settings, conf: dict | None = None, logical_date=None
) -> DagRunResult:
    """Run one DAG run to completion in this process (``dag.test``: no scheduler needed)."""
    dag = get_dag(dag_id, settings)
    kwargs = {"run_conf": conf}
    if logical_date is not None:
        kwargs["logical_date"] = logical_date
    run = dag.test(**kwargs)
    return _result(dag_id, run)


def queued_runs(dag_id: str, settings: Settings) -> list[dict]:
    """DAG runs waiting for a scheduler (for example created by TriggerDagRunOperator)."""
    use_project_airflow(settings)
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        runs = DagRun.find(dag_id=dag_id, state=DagRunState.QUEUED, session=session)
        return [
            {"run_id": r.run_id, "logical_date": r.logical_date, "conf": dict(r.conf or {})}
            for r in runs
        ]


def run_queued(dag_id: str, settings: Settings) -> list[DagRunResult]:
    """Execute queued runs of ``dag_id`` in-process, standing in for the scheduler.

    ``dag.test`` replaces a run with the same logical date, so each queued run is
    executed (with its conf) rather than duplicated.
    """
    return [
        run_dag(dag_id, settings, conf=q["conf"], logical_date=q["logical_date"])
        for q in queued_runs(dag_id, settings)
    ]


# --- Airflow as services, for its UI ----------------------------------------------------


def _pid_file(settings: Settings, component: str) -> Path:
    return settings.airflow_home / "run" / f"{component}.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_airflow(settings: Settings, wait_seconds: int = 180) -> str:
    """Start api-server, scheduler, dag-processor and triggerer in the background."""
    env = {**os.environ, **use_project_airflow(settings)}
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = "admin:admin"
    migrate_airflow_db(settings)
    # Workers authenticate to the API server with JWTs, so every component must share one
    # secret (and one Fernet key). Airflow writes both into airflow.cfg when the file is
    # missing; written once here, before the components start, rather than by four of them
    # at once, each with a secret of its own.
    from airflow.configuration import write_default_airflow_configuration_if_needed

    write_default_airflow_configuration_if_needed()
    logs = settings.airflow_home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    airflow = str(Path(sys.executable).with_name("airflow"))
    for component in AIRFLOW_COMPONENTS:
        pid_file = _pid_file(settings, component)
        if pid_file.exists() and _alive(int(pid_file.read_text())):
            continue
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{component}.log", "ab") as out:
            # Own session: stopping the group also stops the component's workers.
            proc = subprocess.Popen(
                [airflow, component],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        pid_file.write_text(str(proc.pid))
    url = f"http://{settings.airflow.host}:{settings.airflow.port}"
    _wait_healthy(url, wait_seconds)
    return url


def _wait_healthy(url: str, wait_seconds: int) -> None:
    import httpx

    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise TimeoutError(f"Airflow did not become healthy at {url} within {wait_seconds}s")


def airflow_password(settings: Settings) -> str | None:
    """The admin password Airflow's simple auth manager generated."""
    path = settings.airflow_home / "simple_auth_manager_passwords.json.generated"
    if not path.exists():
        return None
    return json.loads(path.read_text()).get("admin")


def stop_airflow(settings: Settings, grace_seconds: float = 20) -> list[str]:
    """Stop every component started by :func:`start_airflow` (whole process groups)."""
    stopped = []
    for component in AIRFLOW_COMPONENTS:
        pid_file = _pid_file(settings, component)
        if not pid_file.exists():
            continue
        pid = int(pid_file.read_text())
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_seconds
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            stopped.append(component)
        pid_file.unlink(missing_ok=True)
    return stopped
