"""Faults: Redis stopped and started under a running server, registry down at start,
acknowledged predictions surviving a killed server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
import pytest
from platform_support import feature_services
from serving_support import copy_world, free_tcp_port, settings_for, wait_until

from data.store import get_feature_store, materialize
from models.churn.spec import SPEC as CHURN
from models.registry import CHAMPION
from models.tracking import configure_mlflow
from serving.prediction_log import read_prediction_log
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
