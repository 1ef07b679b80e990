"""Model swaps under steady load: alias moves, rollback, a version that cannot load."""

from __future__ import annotations

import shutil

import httpx
import mlflow
import pytest
from serving_support import SteadyLoad, free_tcp_port, metric_values, wait_until

from cli.main import main as churn
from models.churn.spec import SPEC as CHURN
from models.registry import CHAMPION, PREVIOUS_CHAMPION, alias_version
from models.tracking import configure_mlflow
from serving.server import BentoServer

pytestmark = pytest.mark.slow


def test_swap_rollback_and_failed_load_drop_no_request(
    two_versions, known_customers, monkeypatch, tmp_path
):
    settings, env = two_versions["settings"], two_versions["env"]
    v1, v2 = two_versions["v1"], two_versions["v2"]
    client = configure_mlflow(settings)
    name = CHURN.registered_model
    client.set_registered_model_alias(name, CHAMPION, str(v1))
    server_env = {**env, "CHURN_SERVE_MODEL_REFRESH_SECONDS": "1"}
    server = BentoServer(settings, port=free_tcp_port(), env=server_env)
    with server as url, SteadyLoad(url, known_customers[:200]) as load:
        load.wait_for_version(v1)

        # Promotion: champion v1 -> v2 while requests keep flowing.
        client.set_registered_model_alias(name, PREVIOUS_CHAMPION, str(v1))
        client.set_registered_model_alias(name, CHAMPION, str(v2))
        load.wait_for_version(v2, timeout=20)

        # `churn rollback` moves champion back; serving follows without a restart.
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        churn(["rollback", "--model", "churn"])
        assert alias_version(settings, name, CHAMPION) == v1
        load.wait_for_version(v1, timeout=20)

        # A version whose artifact cannot load: the old model keeps serving, failure reported.
        broken = tmp_path / "broken_model"
        shutil.copytree(mlflow.artifacts.download_artifacts(two_versions["model_uri"]), broken)
        for artifact in broken.iterdir():
            if artifact.name not in ("MLmodel",):
                shutil.rmtree(artifact) if artifact.is_dir() else artifact.unlink()
        v3 = int(mlflow.register_model(broken.as_uri(), name).version)
        client.set_registered_model_alias(name, CHAMPION, str(v3))
        with httpx.Client(base_url=url) as http:
            wait_until(
                lambda: metric_values(
                    http.get("/metrics").text,
                    "churn_model_reload_failures_total",
                    model="churn",
                    alias="champion",
                ),
                20,
            )
        served = len(load.answers)
        wait_until(lambda: len(load.answers) > served + 50, 20)
        assert {version for _, version in load.answers[served:]} == {v1}
        assert f"cannot load {name} v{v3}" in server.log_path.read_text()
        client.set_registered_model_alias(name, CHAMPION, str(v1))
    # Requests flowed through every move (v1, then v2, then v1 again), however many the
    # machine's load let through.
    versions = [version for _, version in load.answers]
    first_v2 = versions.index(v2)
    assert v1 in versions[:first_v2] and v1 in versions[first_v2:]
    assert load.failures() == [], "no request may fail during swaps"
