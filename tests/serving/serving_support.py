"""Helpers of the serving tests: copies of the world state, steady and concurrent load."""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from kubernetes.client import (
    V1Deployment,
    V1DeploymentCondition,
    V1DeploymentSpec,
    V1DeploymentStatus,
    V1LabelSelector,
    V1ObjectMeta,
    V1PodTemplateSpec,
)
from server_support import free_tcp_port  # noqa: F401 (the serving tests import it from here)

from core.settings import Settings


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
