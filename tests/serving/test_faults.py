"""Faults: Redis stopped, frozen and started again under a running server, PostgreSQL (the
prediction log) stopped and started under load, a model version whose artifacts are away
for a while, registry down at start, acknowledged predictions surviving a killed server.
Every store is the test's own throwaway server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
import psutil
import pytest
from platform_support import feature_services
from serving_support import (
    Load,
    copy_world,
    free_tcp_port,
    metric_values,
    settings_for,
    wait_until,
)

from data.store import get_feature_store, materialize
from models.churn.spec import SPEC as CHURN
from models.registry import CHAMPION
from models.tracking import configure_mlflow
from serving.prediction_log import read_prediction_log, read_predictions
from serving.server import BentoServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def redis_state(world, own_redis, tmp_path_factory) -> dict[str, str]:
    """A copy of the world whose online store is the test's own redis-server."""
    env = copy_world(world, tmp_path_factory.mktemp("redis_state") / "state")
    env["CHURN_REDIS_URL"] = own_redis.url
    settings = settings_for(env)
    materialize(
        get_feature_store(settings),
        datetime(2000, 1, 1, tzinfo=UTC),
        datetime.now(UTC),
        feature_services(),
    )
    return env


def test_redis_stop_gives_503_then_recovers_by_itself(
    redis_state, own_redis, known_customers, free_port
):
    settings = settings_for(redis_state)
    port = free_tcp_port()
    body = {"customer_id": known_customers[0]}
    with (
        BentoServer(settings, port=port, env=redis_state) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        assert client.post("/predict", json=body).status_code == 200
        own_redis.stop()
        try:
            response = client.post("/predict", json=body)
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            error = response.json()
            assert error["error"].startswith("online feature store unavailable")
            assert (error["status"], error["type"], error["retry_after_seconds"]) == (
                503,
                "unavailable",
                1,
            )
            batch = client.post("/predict/batch", json={"customer_ids": known_customers[:3]})
            assert batch.status_code == 503
            assert client.get("/readyz").status_code == 503
            assert client.get("/livez").status_code == 200
            assert 'churn_unavailable_total{cause="online_store"}' in client.get("/metrics").text
        finally:
            own_redis.start()
        wait_until(lambda: client.post("/predict", json=body).status_code == 200, timeout=20)
        assert client.get("/readyz").status_code == 200


def test_acknowledged_predictions_survive_a_killed_server(redis_state, known_customers):
    settings = settings_for(redis_state)
    started = datetime.now(UTC)
    customers = known_customers[10:40]
    server = BentoServer(settings, port=free_tcp_port(), env=redis_state)
    with server as url, httpx.Client(base_url=url, timeout=10) as client:
        for customer in customers:
            assert client.post("/predict", json={"customer_id": customer}).status_code == 200
        # No graceful shutdown: every process of the server dies at once.
        parent = psutil.Process(server.process.pid)
        for process in [*parent.children(recursive=True), parent]:
            process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
    logged = read_prediction_log(
        settings.storage.prediction_log_path(CHURN.name), CHURN, since=started
    )
    assert list(logged["customer_id"]) == customers
    # A restarted server appends to the same log.
    with (
        BentoServer(settings, port=free_tcp_port(), env=redis_state) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        assert client.post("/predict", json={"customer_id": customers[0]}).status_code == 200
    assert (
        len(
            read_prediction_log(
                settings.storage.prediction_log_path(CHURN.name), CHURN, since=started
            )
        )
        == 31
    )


def test_registry_down_at_start_is_not_ready_retries_and_recovers(world, known_customers, tmp_path):
    env = copy_world(world, tmp_path / "state")
    dead = free_tcp_port()
    settings = settings_for(env)
    backend = (
        settings.storage.mlflow_tracking_uri
    )  # the copied registry, for the server started later
    champion = configure_mlflow(settings).get_model_version_by_alias(
        CHURN.registered_model, CHAMPION
    )
    env["CHURN_MLFLOW_SERVER_URI"] = f"http://127.0.0.1:{dead}"
    server = BentoServer(settings, port=free_tcp_port(), env=env, wait_ready=False)
    with server as url, httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/readyz").status_code == 503
        response = client.post("/predict", json={"customer_id": 1})
        assert response.status_code == 503
        assert "no churn model loaded yet" in response.json()["error"]
        assert "registry unreachable" in response.json()["error"]
        assert response.json()["type"] == "unavailable"
        wait_until(lambda: server.log_path.read_text().count("registry unreachable") >= 3, 30)
        assert server.alive(), "the server keeps running (no crash loop)"
        assert client.get("/livez").status_code == 200

        # The registry comes up where the server was told to look: it turns ready by itself.
        mlflow = [
            str(Path(sys.executable).with_name("mlflow")), "server",
            "--backend-store-uri", backend,
            "--default-artifact-root", settings.storage.mlflow_artifact_location,
            "--host", "127.0.0.1", "--port", str(dead), "--workers", "1",
        ]  # fmt: skip
        with subprocess.Popen(
            mlflow, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        ) as registry:
            try:
                wait_until(lambda: client.get("/readyz").status_code == 200, 120, every=1)
                response = client.post("/predict", json={"customer_id": known_customers[0]})
                assert response.status_code == 200, response.text
                assert response.json()["model_version"] == int(champion.version)
            finally:
                os.killpg(registry.pid, signal.SIGTERM)


def test_a_frozen_redis_answers_503_at_once_to_concurrent_callers(
    redis_state, own_redis, known_customers
):
    """SIGSTOP on Redis: sockets connect but nothing answers. The first timeout marks the
    online store down, so 32 callers get 503 at once instead of queueing behind 0.5 s
    timeouts one by one (BentoML's 504 after 10 s)."""
    settings = settings_for(redis_state)
    body = {"customer_id": known_customers[0]}
    with (
        BentoServer(settings, port=free_tcp_port(), env=redis_state) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        assert client.post("/predict", json=body).status_code == 200
        own_redis.freeze()
        try:
            with Load(url, known_customers[:200], clients=32) as load:
                time.sleep(5)
            ready = client.get("/readyz")
            response = client.post("/predict", json=body)
        finally:
            own_redis.thaw()
        assert ready.status_code == 503, ready.text
        assert ready.headers["retry-after"] == "1"
        assert ready.json()["error"].startswith("not ready: online feature store unavailable")
        assert response.status_code == 503
        assert response.json()["error"].startswith("online feature store unavailable")
        statuses = Counter(call.status for call in load.calls)
        assert set(statuses) == {503}, statuses  # no 504, no 500, no dropped connection
        assert len(load.calls) > 100, statuses
        slowest = max(call.seconds for call in load.calls)
        assert slowest < 2.0, f"slowest 503 took {slowest:.2f} s"
        # Back by itself: the next probe finds Redis answering again.
        wait_until(lambda: client.post("/predict", json=body).status_code == 200, timeout=20)
        assert client.get("/readyz").status_code == 200


@pytest.fixture(scope="module")
def postgres_state(world, own_postgres, tmp_path_factory) -> dict[str, str]:
    """A copy of the world with CHURN_POSTGRES_URL set to the test's own PostgreSQL: the
    prediction log and Feast's registry live there. MLflow stays the copied SQLite
    registry (CHURN_MLFLOW_SERVER_URI takes any tracking URI): its faults are tested apart.
    """
    env = copy_world(world, tmp_path_factory.mktemp("postgres_state") / "state")
    env["CHURN_MLFLOW_SERVER_URI"] = settings_for(env).storage.mlflow_tracking_uri
    env["CHURN_POSTGRES_URL"] = own_postgres.url
    settings = settings_for(env)
    assert settings.storage.prediction_log_backend == "postgresql"
    # The world's Feast objects, applied to the registry in PostgreSQL (the online store is
    # the copied SQLite file, already materialized).
    source = get_feature_store(world.settings)
    objects = [
        *source.list_entities(),
        *source.list_data_sources(),
        *source.list_feature_views(),
        *source.list_feature_services(),
    ]
    get_feature_store(settings).apply(objects)
    return env


def test_postgres_down_answers_503_is_not_ready_recovers_and_loses_no_acknowledged_prediction(
    postgres_state, own_postgres, known_customers
):
    settings = settings_for(postgres_state)
    started = datetime.now(UTC)
    body = {"customer_id": known_customers[0]}
    with (
        BentoServer(settings, port=free_tcp_port(), env=postgres_state) as url,
        httpx.Client(base_url=url, timeout=10) as client,
        Load(url, known_customers[:300], clients=4, interval=0.005) as load,
    ):
        wait_until(lambda: load.count(200) >= 20, timeout=30)
        own_postgres.stop()
        try:
            wait_until(lambda: client.get("/readyz").status_code == 503, timeout=10, every=0.1)
            outage = time.monotonic()
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.headers["retry-after"] == "1"
            error = ready.json()
            assert error["error"].startswith("not ready: prediction log unavailable"), error
            assert (error["type"], error["retry_after_seconds"]) == ("unavailable", 1)
            response = client.post("/predict", json=body)
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            error = response.json()
            assert error["error"].startswith("prediction log unavailable"), error
            assert (error["status"], error["type"]) == (503, "unavailable")
            assert client.get("/livez").status_code == 200
            time.sleep(4)  # the outage under load
            restarted = time.monotonic()
        finally:
            own_postgres.start()
        wait_until(lambda: client.post("/predict", json=body).status_code == 200, timeout=30)
        wait_until(lambda: client.get("/readyz").status_code == 200, timeout=30)
        metrics = client.get("/metrics").text
        recovered = load.count(200)
        wait_until(lambda: load.count(200) > recovered + 20, timeout=30)
    assert metric_values(metrics, "churn_unavailable_total", cause="prediction_log")
    statuses = Counter(call.status for call in load.calls)
    assert set(statuses) <= {200, 503}, statuses  # never a 500 (nor a 504)
    during = load.between(outage, restarted)
    assert len(during) > 20 and {call.status for call in during} == {503}
    slowest = max(call.seconds for call in during)
    assert slowest < 1.0, f"slowest 503 took {slowest:.2f} s"
    # Every acknowledged prediction is in the log (an unacknowledged one may be too).
    logged = Counter(
        int(c) for c in read_predictions(settings, CHURN, since=started)["customer_id"]
    )
    acknowledged = Counter(call.customer for call in load.calls if call.status == 200)
    assert acknowledged - logged == Counter(), "acknowledged predictions missing from the log"


def champion_versions(client: httpx.Client) -> tuple[float | None, ...]:
    """(served, registry, behind) of churn's champion, from /metrics."""
    text = client.get("/metrics").text
    found = []
    for name in ("churn_model_version", "churn_registry_model_version", "churn_model_behind"):
        values = set(metric_values(text, name, model="churn", alias=CHAMPION))
        found.append(values.pop() if len(values) == 1 else None)
    return tuple(found)


def test_a_version_whose_artifacts_were_away_is_retried_and_served(two_versions, known_customers):
    """The alias moves to v2 while v2's artifacts are unreadable: v1 keeps serving, /readyz
    and /metrics say serving lags the registry, and v2 serves once its artifacts are back
    (the failed load is retried with back-off, not given up)."""
    settings, env = two_versions["settings"], two_versions["env"]
    v1, v2 = two_versions["v1"], two_versions["v2"]
    registry = configure_mlflow(settings)
    name = CHURN.registered_model
    registry.set_registered_model_alias(name, CHAMPION, str(v1))
    artifacts = Path(unquote(urlparse(registry.get_model_version_download_uri(name, str(v2))).path))
    assert artifacts.is_dir(), artifacts
    away = artifacts.with_name(artifacts.name + ".away")
    body = {"customer_id": known_customers[0]}
    server_env = {**env, "CHURN_SERVE_MODEL_REFRESH_SECONDS": "1"}
    server = BentoServer(settings, port=free_tcp_port(), env=server_env)
    try:
        with server as url, httpx.Client(base_url=url, timeout=10) as client:
            assert client.post("/predict", json=body).json()["model_version"] == v1
            artifacts.rename(away)
            try:
                registry.set_registered_model_alias(name, CHAMPION, str(v2))
                wait_until(lambda: champion_versions(client) == (v1, v2, 1), timeout=30)
                ready = client.get("/readyz")
                assert ready.status_code == 200, ready.text
                status = ready.json()
                assert status["status"] == "degraded", status
                champion = status["models"]["churn"]["champion"]
                assert (champion["served"], champion["registry"]) == (v1, v2)
                assert f"cannot load {name} v{v2}" in champion["error"]
                assert status["degraded"][0].startswith(
                    f"churn champion: serving v{v1}, the registry names v{v2}"
                )
                assert client.post("/predict", json=body).json()["model_version"] == v1
                wait_until(  # tried again, not given up
                    lambda: (
                        sum(
                            metric_values(
                                client.get("/metrics").text,
                                "churn_model_reload_failures_total",
                                model="churn",
                                alias=CHAMPION,
                            )
                        )
                        >= 2
                    ),
                    timeout=30,
                )
            finally:
                away.rename(artifacts)
            wait_until(
                lambda: client.post("/predict", json=body).json()["model_version"] == v2,
                timeout=40,
            )
            assert champion_versions(client) == (v2, v2, 0)
            assert client.get("/readyz").json()["status"] == "ready"
            assert "next try in" in server.log_path.read_text()
    finally:
        registry.set_registered_model_alias(name, CHAMPION, str(v1))
