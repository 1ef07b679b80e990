"""The deploy step end to end on the local path, through its Airflow DAG, on a real server.

A promotion is followed by the ``churn_deploy`` DAG: the running BentoML server must pick
the new champion up, pass the smoke test, and the deployed version and time to production
are written on the MLflow version. A version the server cannot load fails the smoke test:
the run fails and ``champion`` moves back. The cluster branch runs here too, against the
same server, with a release whose Deployment statuses are the Kubernetes client's own
models (tests/serving/test_kubernetes_rollout.py covers that branch's pieces). With
nothing serving (no server on the port, no serving Deployment, no ready pod) the version
is not tried: the outcome says so, the task ends skipped and ``champion`` stays.
"""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from datetime import datetime

import httpx
import kubernetes_validate
import mlflow
import pytest
import yaml
from kubernetes.client import V1Deployment
from kubernetes.client.exceptions import ApiException
from serving_support import deployment, free_tcp_port, metric_values, wait_until

from cli.airflow_runner import drop_scheduler_leftovers, migrate_airflow_db, run_dag
from core.settings import PROJECT_ROOT, Settings, get_settings
from core.steps import DeployOutcome
from models.churn.spec import SPEC as CHURN
from models.registry import CHAMPION, PREVIOUS_CHAMPION, alias_version, set_champion
from models.tracking import configure_mlflow
from serving.deploy import DeployFailed, deploy_champion
from serving.kubernetes_rollout import MODEL_ANNOTATION, render_upgrade
from serving.server import BentoServer

pytestmark = pytest.mark.slow

PRODUCTION_VALUES = PROJECT_ROOT / "helm" / "examples" / "values-production.yaml"


def served_champion(url: str) -> list[float]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return metric_values(text, "churn_model_version", model="churn", alias="champion")


def broken_version(two_versions, tmp_path) -> int:
    """A registered version whose artifact lacks everything but its MLmodel file."""
    broken = tmp_path / "broken_model"
    shutil.copytree(mlflow.artifacts.download_artifacts(two_versions["model_uri"]), broken)
    for artifact in broken.iterdir():
        if artifact.name != "MLmodel":
            shutil.rmtree(artifact) if artifact.is_dir() else artifact.unlink()
    return int(mlflow.register_model(broken.as_uri(), CHURN.registered_model).version)


class RecordingRelease:
    """A release whose upgrade is rendered and validated as Helm would send it; its
    Deployment answers the given statuses in turn (the last one from then on)."""

    def __init__(self, statuses: list[V1Deployment]) -> None:
        self.statuses = statuses
        self.upgrades: list[dict] = []
        self.rollbacks: list[int | None] = []
        self.revision = 4

    def values(self) -> dict:
        return yaml.safe_load(PRODUCTION_VALUES.read_text())

    def upgrade(self, values: dict, description: str) -> int:
        docs = render_upgrade(PROJECT_ROOT / "helm" / "churn-platform", values, "churn", "ml")
        for doc in docs:
            kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
        self.upgrades.append({"values": values, "docs": docs, "description": description})
        self.revision += 1
        return self.revision

    def rollback(self, revision: int | None) -> None:
        self.rollbacks.append(revision)

    def serving_deployment(self) -> V1Deployment:
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


def local_deploy_settings(monkeypatch, env: dict[str, str], port: int, **deploy: str) -> Settings:
    """Settings over ``env`` deploying to the local server at ``port``, with ``deploy``'s
    ``CHURN_DEPLOY_*`` settings (``timeout_seconds="12"`` sets CHURN_DEPLOY_TIMEOUT_SECONDS)."""
    for key, value in {
        **env,
        "CHURN_DEPLOY_TARGET": "local",
        "CHURN_DEPLOY_SERVING_URL": f"http://127.0.0.1:{port}",
        **{f"CHURN_DEPLOY_{k.upper()}": v for k, v in deploy.items()},
    }.items():
        monkeypatch.setenv(key, value)
    return get_settings()


def test_deploy_dag_follows_a_promotion_and_a_failed_smoke_test_moves_the_alias_back(
    two_versions, monkeypatch, tmp_path
):
    env, v1, v2 = two_versions["env"], two_versions["v1"], two_versions["v2"]
    port = free_tcp_port()
    settings = local_deploy_settings(
        monkeypatch, env, port, timeout_seconds="12", poll_seconds="0.25"
    )
    client = configure_mlflow(settings)
    name = CHURN.registered_model
    set_champion(client, name, v1, None)
    server_env = {**env, "CHURN_SERVE_MODEL_REFRESH_SECONDS": "1"}
    with BentoServer(settings, port=port, env=server_env) as url:
        wait_until(lambda: served_champion(url) == [v1], 30)

        # A promotion (as the gate makes it), then the deploy DAG, as the asset runs it.
        migrate_airflow_db(settings)  # before the promotion: not part of its timing
        promoting = time.monotonic()
        set_champion(client, name, v2, v1)
        run = run_dag(CHURN.deploy_dag_id, settings)
        took = time.monotonic() - promoting
        assert run.succeeded, run.task_states
        deployed = run.returns["deploy"]
        assert deployed["deployed"] and deployed["version"] == v2
        assert deployed["outcome"] == DeployOutcome.DEPLOYED
        assert deployed["target"] == "local"
        seconds = deployed["time_to_production_seconds"]
        # From the promotion to the new version answering: within this test's own span
        # (no wall-clock threshold; the server re-reads the aliases every second).
        assert 0 < seconds <= took
        tags = client.get_model_version(name, str(v2)).tags
        assert tags["deploy.status"] == "deployed"
        assert float(tags["deploy.time_to_production_seconds"]) == pytest.approx(seconds)
        served_at = datetime.fromisoformat(tags["deploy.deployed_at"])
        promoted_at = datetime.fromisoformat(tags["champion.since"])
        assert (served_at - promoted_at).total_seconds() == pytest.approx(seconds, abs=0.01)
        answer = httpx.post(f"{url}/predict", json={"customer_id": deployed["smoke_entity"]})
        assert answer.status_code == 200 and answer.json()["model_version"] == v2

        # A version the server cannot load: the smoke test fails, champion goes back to v2.
        v3 = broken_version(two_versions, tmp_path)
        set_champion(client, name, v3, v2)
        failed = run_dag(CHURN.deploy_dag_id, settings)
        assert failed.state == "failed" and failed.task_states["deploy"] == "failed"
        assert alias_version(settings, name, CHAMPION) == v2
        assert alias_version(settings, name, PREVIOUS_CHAMPION) is None  # no way back to v3
        tags = client.get_model_version(name, str(v3)).tags
        assert tags["deploy.status"] == "failed"
        assert tags["deploy.restored_version"] == str(v2)
        assert f"serving reports v{v2} as champion, not v{v3}" in tags["deploy.reason"]
        assert "failed champion loads" in tags["deploy.reason"]  # the server said it tried
        assert served_champion(url) == [v2]

        # The cluster branch, against the same server: the upgrade rolls out, then serves.
        @contextmanager
        def release_of(_settings):
            yield release

        monkeypatch.setenv("CHURN_DEPLOY_TARGET", "kubernetes")
        settings = get_settings()
        set_champion(client, name, v1, v2)
        release = RecordingRelease(
            [
                deployment(replicas=2, updated=1, available=1),
                deployment(replicas=2, updated=2, available=1),
                deployment(replicas=2, updated=2, available=2),
            ]
        )
        result = deploy_champion(CHURN, settings, release_factory=release_of)
        assert result.deployed and result.version == v1 and result.helm_revision == 5
        (upgrade,) = release.upgrades
        assert upgrade["values"]["serving"]["deployedModels"] == {"churn": v1}
        (serving,) = [
            d
            for d in upgrade["docs"]
            if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-serving")
        ]
        annotations = serving["spec"]["template"]["metadata"]["annotations"]
        assert annotations[MODEL_ANNOTATION.format(model="churn")] == str(v1)
        assert release.rollbacks == []
        assert client.get_model_version(name, str(v1)).tags["deploy.helm_revision"] == "5"

        # A rollout that exceeds its progress deadline: helm rollback, champion back to v2.
        set_champion(client, name, v2, v1)
        set_champion(client, name, v3, v2)
        progressing = deployment(replicas=2, updated=1, available=1)
        stuck = deployment(replicas=2, updated=1, available=1, reason="ProgressDeadlineExceeded")
        release = RecordingRelease([progressing, stuck])
        with pytest.raises(DeployFailed) as raised:
            deploy_champion(CHURN, settings, release_factory=release_of)
        assert raised.value.result.restored_version == v2
        assert raised.value.result.outcome == DeployOutcome.FAILED
        assert "rollout failed" in raised.value.result.reason
        assert "ProgressDeadlineExceeded" in raised.value.result.reason
        assert release.rollbacks == [4]  # the revision before the failed upgrade
        assert alias_version(settings, name, CHAMPION) == v2
        assert client.get_model_version(name, str(v3)).tags["deploy.helm_rolled_back_from"] == "5"


class MissingRelease(RecordingRelease):
    """A cluster where the serving Deployment does not exist (404 from the API server)."""

    def __init__(self) -> None:
        super().__init__([])

    def serving_deployment(self) -> V1Deployment:
        raise ApiException(status=404, reason="Not Found")


def test_nothing_serving_leaves_the_promotion_alone_and_says_so(two_versions, monkeypatch):
    env, v1, v2 = two_versions["env"], two_versions["v1"], two_versions["v2"]
    port = free_tcp_port()  # nothing listens there: "Connection refused"
    settings = local_deploy_settings(
        monkeypatch, env, port, timeout_seconds="60", unreachable_seconds="2", poll_seconds="0.25"
    )
    client = configure_mlflow(settings)
    name = CHURN.registered_model
    set_champion(client, name, v1, None)
    set_champion(client, name, v2, v1)  # a promotion, as the gate makes it

    def aliases() -> tuple[int | None, int | None]:
        return alias_version(settings, name, CHAMPION), alias_version(
            settings, name, PREVIOUS_CHAMPION
        )

    # Called directly: a typed outcome, after the short wait for anything to answer.
    started = time.monotonic()
    result = deploy_champion(CHURN, settings)
    assert time.monotonic() - started < 30, "gave up on the unreachable server, not the timeout"
    assert result.outcome == DeployOutcome.NOTHING_SERVING and not result.deployed
    assert result.version == v2 and result.restored_version is None
    assert "nothing serving" in result.reason and "Connection refused" in result.reason
    assert "make serve" in result.reason
    assert aliases() == (v2, v1), "nothing was tried: the promotion stands"
    tags = client.get_model_version(name, str(v2)).tags
    assert tags["deploy.status"] == "nothing_serving"
    assert "deploy.restored_version" not in tags

    # Through the DAG, as the asset runs it: the task is skipped, not failed.
    migrate_airflow_db(settings)
    run = run_dag(CHURN.deploy_dag_id, settings)
    assert run.state == "success" and run.task_states["deploy"] == "skipped"
    assert aliases() == (v2, v1)

    # The cluster branch: no serving Deployment, or one with no ready pod. No upgrade.
    @contextmanager
    def release_of(_settings):
        yield release

    monkeypatch.setenv("CHURN_DEPLOY_TARGET", "kubernetes")
    settings = get_settings()
    for release, why in [
        (MissingRelease(), "serving Deployment does not exist"),
        (RecordingRelease([deployment(replicas=2, updated=2, available=0)]), "no ready pod"),
        (RecordingRelease([deployment(replicas=0, updated=0, available=0)]), "no ready pod"),
    ]:
        result = deploy_champion(CHURN, settings, release_factory=release_of)
        assert result.outcome == DeployOutcome.NOTHING_SERVING, result.reason
        assert why in result.reason
        assert release.upgrades == [] and release.rollbacks == []
        assert aliases() == (v2, v1)


def test_the_runs_the_demo_leaves_for_a_scheduler_are_removed(two_versions, monkeypatch):
    """``dag.test`` runs record asset events; the consumers they queue would otherwise
    become runs the moment a scheduler starts (a deploy of a long-deployed promotion)."""
    from airflow.assets.manager import AssetManager
    from airflow.models.asset import AssetModel
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    settings = local_deploy_settings(
        monkeypatch, two_versions["env"], free_tcp_port(), unreachable_seconds="1"
    )
    migrate_airflow_db(settings)
    # In-process runs write every DAG of the folder to the database, as the demo's do.
    run_dag(CHURN.deploy_dag_id, settings)
    drop_scheduler_leftovers(settings)
    uri = f"churn://registry/{CHURN.name}/champion"
    with create_session() as session:
        asset = session.scalar(select(AssetModel).where(AssetModel.uri == uri))
        AssetManager.register_asset_change(asset=asset, session=session)  # a promotion
    with create_session() as session:
        _, due = DagModel.dags_needing_dagruns(session)
        assert CHURN.deploy_dag_id in due  # what `make airflow` would start at once

    assert drop_scheduler_leftovers(settings) == {"asset_triggers": 1, "queued_runs": 0}
    with create_session() as session:
        _, due = DagModel.dags_needing_dagruns(session)
        assert due == {}
