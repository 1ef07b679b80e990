"""Running this project's DAGs with Airflow, in-process (demo, tests) or as services (UI).

Airflow reads its configuration when first imported, so :func:`use_project_airflow` must
run before any ``airflow`` import in the process; every function here calls it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from core.processes import StopReport, running, stop_processes
from core.settings import Settings

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# Airflow's log server listens on every interface; on one host the api-server reads the
# task logs from disk, so the scheduler and triggerer run without it.
COMPONENT_ARGS = {"scheduler": ("--skip-serve-logs",), "triggerer": ("--skip-serve-logs",)}


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


def drop_scheduler_leftovers(settings: Settings) -> dict[str, int]:
    """Remove what in-process runs leave for a scheduler that will never be theirs.

    ``dag.test`` records the asset events of the tasks it runs, and Airflow queues every
    DAG scheduled on those assets (``asset_dag_run_queue``): a promotion queues the
    model's ``<model>_deploy``, a materialization every ``<model>_monitoring``. The demo
    runs those consumers itself, but the queue rows stay, and the first scheduler started
    on this database (``make airflow``) would turn each into a run at once. The same
    holds for a DAG run still ``queued``. Both are removed; returns how many of each.
    """
    use_project_airflow(settings)
    from airflow.models.asset import AssetDagRunQueue
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import delete, func, select

    with create_session() as session:
        triggers = session.scalar(select(func.count()).select_from(AssetDagRunQueue)) or 0
        session.execute(delete(AssetDagRunQueue))
        queued = session.scalars(select(DagRun).where(DagRun.state == DagRunState.QUEUED)).all()
        for run in queued:
            session.delete(run)
    return {"asset_triggers": int(triggers), "queued_runs": len(queued)}


# --- Airflow as services, for its UI ----------------------------------------------------


def _pid_file(settings: Settings, component: str) -> Path:
    return settings.airflow_home / "run" / f"{component}.pid"


# In the environment of every Airflow service started here (the Airflow home), inherited by
# the processes they start: `airflow stop` also finds those that left their component's
# tree and group by it. (Not every one: a process that renames itself, as Airflow's
# api-server and workers do with setproctitle, may overwrite its readable environment.)
SERVICE_MARKER = "CHURN_AIRFLOW_SERVICES"


def _ours(settings: Settings, component: str) -> int | None:
    """The pid of ``component`` if the process its pid file names still runs.

    The file holds the pid and the process's start time, so a pid reused by another
    process since is not taken for the component (a file of an older release holds only
    the pid: then the process must at least be an ``airflow`` one).
    """
    pid_file = _pid_file(settings, component)
    if not pid_file.exists():
        return None
    pid, *started = pid_file.read_text().split()
    try:
        process = psutil.Process(int(pid))
        if started:
            same = abs(process.create_time() - float(started[0])) < 0.01
        else:
            same = "airflow" in " ".join(process.cmdline())
    except (psutil.Error, ValueError):
        return None
    return process.pid if same and running(process) else None


def spawn_component(settings: Settings, component: str, command: list[str], env: dict) -> int:
    """Start one service in the background: own session, marked environment, pid file."""
    logs = settings.airflow_home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    pid_file = _pid_file(settings, component)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{component}.log", "ab") as out:
        proc = subprocess.Popen(
            command,
            env={**env, SERVICE_MARKER: str(settings.airflow_home)},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # signalled as a group when stopped
        )
    pid_file.write_text(f"{proc.pid} {psutil.Process(proc.pid).create_time()}\n")
    return proc.pid


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
    airflow = str(Path(sys.executable).with_name("airflow"))

    def start(component: str) -> None:
        if not _ours(settings, component):
            command = [airflow, component, *COMPONENT_ARGS.get(component, ())]
            spawn_component(settings, component, command, env)

    # The API server first: tasks report to its execution API, so a run the scheduler
    # starts at once (one already due) would otherwise fail on "Connection refused",
    # before its task could write a line of log.
    url = f"http://{settings.airflow.host}:{settings.airflow.port}"
    deadline = time.monotonic() + wait_seconds
    start(AIRFLOW_COMPONENTS[0])
    _wait_healthy(url, deadline, ())
    for component in AIRFLOW_COMPONENTS[1:]:
        start(component)
    # Back once the others heartbeat too: a DAG triggered from then on gets scheduled.
    _wait_healthy(url, deadline, ("scheduler", "dag_processor", "triggerer"))
    return url


def _wait_healthy(url: str, deadline: float, components: tuple[str, ...]) -> None:
    """Until the API server answers its health check with ``components`` healthy."""
    import httpx

    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"{url}/api/v2/monitor/health", timeout=2)
            health = answer.json() if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            health = None
        if health is not None and all(
            (health.get(c) or {}).get("status") == "healthy" for c in components
        ):
            return
        time.sleep(2)
    waiting = ", ".join(components) or "the API server"
    raise TimeoutError(f"Airflow ({waiting}) did not become healthy at {url} in time")


def airflow_password(settings: Settings) -> str | None:
    """The admin password Airflow's simple auth manager generated."""
    path = settings.airflow_home / "simple_auth_manager_passwords.json.generated"
    if not path.exists():
        return None
    path.chmod(0o600)  # Airflow writes it world-readable
    return json.loads(path.read_text()).get("admin")


@dataclass(frozen=True)
class AirflowStopped:
    """What :func:`stop_airflow` stopped: the components found running, every process."""

    components: dict[str, int]  # component -> pid
    report: StopReport

    def summary(self) -> str:
        found = ", ".join(f"{name} (pid {pid})" for name, pid in self.components.items())
        return f"{found or 'no Airflow component was running'}; {self.report.summary()}"


def stop_airflow(settings: Settings, grace_seconds: float = 20) -> AirflowStopped:
    """Stop every process started by :func:`start_airflow`, so that none is left.

    Each component's process group gets SIGTERM; whatever still runs ``grace_seconds``
    later gets SIGKILL (an Airflow task runner lives in a group of its own and may ignore
    SIGTERM). Every process carrying this Airflow home's marker is included, also one
    whose component died before. The report lists each process and how it ended, and any
    survivor.
    """
    components = {}
    for component in AIRFLOW_COMPONENTS:
        pid = _ours(settings, component)  # a stale file's pid may be another process's now
        if pid is not None:
            components[component] = pid
    report = stop_processes(
        components.values(), grace_seconds, marker=(SERVICE_MARKER, str(settings.airflow_home))
    )
    if not report.survivors:
        for component in AIRFLOW_COMPONENTS:
            _pid_file(settings, component).unlink(missing_ok=True)
    return AirflowStopped(components, report)
