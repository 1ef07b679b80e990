"""Helpers of the serving tests: copies of the world state, a throwaway Redis, steady load."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
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
