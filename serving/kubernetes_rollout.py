"""The deploy step's cluster branch: ``helm upgrade`` the release, wait, or roll it back.

A deploy of model ``m`` version ``v`` is one Helm upgrade of the running release: the
release's own values plus ``serving.deployedModels.m = v``. The chart writes that map into
an annotation of the serving pod template, so Kubernetes rolls the serving pods; each new
pod loads the champion at start and turns ready only once it serves. The release history
then says which model version each revision deployed, and ``helm rollback`` returns to
the previous one. Helm runs through its Go SDK in a wheel (``helm_python``); the rollout
is read with the official Kubernetes client, and judged as ``kubectl rollout status``
judges it.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml

from core.settings import Settings

DEPLOYED_MODELS = "deployedModels"  # values: serving.deployedModels.<model>: <version>
MODEL_ANNOTATION = "churn-platform.io/model-{model}"  # on the serving pod template


def upgrade_values(release_values: dict[str, Any], model: str, version: int) -> dict[str, Any]:
    """The values of the upgrade that deploys ``model`` ``version``: the release's own
    (user-supplied) values, with only ``serving.deployedModels.<model>`` changed."""
    values = copy.deepcopy(release_values)
    serving = values.setdefault("serving", {})
    serving.setdefault(DEPLOYED_MODELS, {})[model] = version
    return values


def render_upgrade(
    chart_path: Path, values: dict[str, Any], release: str, namespace: str
) -> list[dict[str, Any]]:
    """Every manifest the upgrade would apply, rendered by Helm's own engine (hooks too)."""
    import helm_python as helm

    with helm.Chart.load(chart_path) as chart:
        manifests = chart.render(values, name=release, namespace=namespace, is_upgrade=True)
    docs: list[dict[str, Any]] = []
    for path, text in sorted(manifests.items()):
        if not path.endswith("NOTES.txt"):
            docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


@dataclass(frozen=True)
class RolloutStatus:
    """Where a Deployment's rollout stands."""

    state: Literal["progressing", "complete", "failed"]
    message: str


def rollout_status(deployment: Any) -> RolloutStatus:
    """Judge a ``V1Deployment`` as ``kubectl rollout status`` does.

    Failed once the controller reports ``ProgressDeadlineExceeded``; complete when the
    controller has seen the newest spec and every replica is updated and available, with
    no old replica left; progressing otherwise.
    """
    meta, spec, status = deployment.metadata, deployment.spec, deployment.status
    name = meta.name
    if status is None or (status.observed_generation or 0) < (meta.generation or 0):
        return RolloutStatus("progressing", f"{name}: waiting for the controller to see it")
    for condition in status.conditions or []:
        if condition.type == "Progressing" and condition.reason == "ProgressDeadlineExceeded":
            return RolloutStatus("failed", f"{name}: {condition.message or condition.reason}")
    wanted = spec.replicas if spec.replicas is not None else 1
    updated = status.updated_replicas or 0
    if updated < wanted:
        return RolloutStatus("progressing", f"{name}: {updated} of {wanted} replicas updated")
    if (status.replicas or 0) > updated:
        old = (status.replicas or 0) - updated
        return RolloutStatus("progressing", f"{name}: {old} old replicas pending termination")
    available = status.available_replicas or 0
    if available < updated:
        return RolloutStatus(
            "progressing", f"{name}: {available} of {updated} updated replicas available"
        )
    return RolloutStatus("complete", f"{name}: {updated} replicas rolled out")


def wait_for_rollout(
    read_deployment: Callable[[], Any],
    timeout_seconds: float,
    poll_seconds: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RolloutStatus:
    """Poll the Deployment until its rollout completes or fails; failed on timeout."""
    deadline = clock() + timeout_seconds
    while True:
        status = rollout_status(read_deployment())
        if status.state != "progressing":
            return status
        if clock() >= deadline:
            return RolloutStatus("failed", f"{status.message} after {timeout_seconds:.0f} s")
        sleep(poll_seconds)


def serving_absent(read_deployment: Callable[[], Any]) -> str | None:
    """Why nothing serves in the cluster (None: the serving Deployment has a ready pod).

    Read before an upgrade: with no Deployment (the release is not installed, or under
    another name) or no ready pod (scaled to zero, every pod failing), there is no server
    to try a new version on, and the deploy must not judge the version by it.
    """
    from kubernetes.client.exceptions import ApiException

    try:
        deployment = read_deployment()
    except ApiException as error:
        if error.status == 404:
            return "the serving Deployment does not exist (is the release installed?)"
        raise
    status, name = deployment.status, deployment.metadata.name
    ready = max((status.ready_replicas or 0), (status.available_replicas or 0)) if status else 0
    if ready == 0:
        wanted = deployment.spec.replicas if deployment.spec.replicas is not None else 1
        return f"{name}: no ready pod ({wanted} replicas wanted)"
    return None


class ClusterRelease(Protocol):
    """What the deploy step does to a cluster: one Helm release and its serving Deployment."""

    def values(self) -> dict[str, Any]: ...
    def upgrade(self, values: dict[str, Any], description: str) -> int: ...
    def rollback(self, revision: int | None) -> None: ...
    def serving_deployment(self) -> Any: ...


class HelmRelease:
    """The release in a real cluster: Helm's SDK for the release, the Kubernetes client
    for the Deployment. Configured from ``settings.deploy`` (a kubeconfig and context, or
    the pod's service account)."""

    def __init__(self, settings: Settings, helm_config: Any, apps_api: Any) -> None:
        self.settings = settings.deploy
        self._helm = helm_config
        self._apps = apps_api

    def values(self) -> dict[str, Any]:
        return dict(self._helm.get_values(self.settings.release) or {})

    def upgrade(self, values: dict[str, Any], description: str) -> int:
        import helm_python as helm

        with helm.Chart.load(self.settings.chart) as chart:
            release = self._helm.upgrade(
                chart, self.settings.release, values, namespace=self.settings.namespace,
                description=description,
            )  # fmt: skip
        return int(release.get("revision") or release.get("version") or 0)

    def rollback(self, revision: int | None) -> None:
        self._helm.rollback(self.settings.release, version=revision)

    def serving_deployment(self) -> Any:
        return self._apps.read_namespaced_deployment_status(
            self.settings.serving_deployment, self.settings.namespace
        )


@contextmanager
def open_release(settings: Settings) -> Iterator[HelmRelease]:
    """A :class:`HelmRelease` on the configured cluster, closed when the block ends."""
    import helm_python as helm
    from kubernetes import client, config

    deploy = settings.deploy
    if deploy.kubeconfig:
        api_client = config.new_client_from_config(
            config_file=str(deploy.kubeconfig), context=deploy.kube_context
        )
    else:
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        api_client = client.ApiClient(configuration)
    helm_config = helm.Config(
        kubeconfig_path=deploy.kubeconfig, kube_context=deploy.kube_context,
        namespace=deploy.namespace,
    )  # fmt: skip
    try:
        yield HelmRelease(settings, helm_config, client.AppsV1Api(api_client))
    finally:
        helm_config.close()
        api_client.close()
