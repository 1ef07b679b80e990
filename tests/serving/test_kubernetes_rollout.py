"""The deploy step's cluster branch, checked as far as a machine without a cluster allows.

- The exact upgrade it sends: the release's values with the new model version, rendered
  by Helm's own engine as an upgrade, every manifest valid in strict mode against the
  Kubernetes schemas; the upgrade changes the serving pods' annotation and nothing else.
- The rollout decision, driven by Deployment statuses built from the Kubernetes client's
  own models, as the API server returns them.
"""

from __future__ import annotations

import copy
import itertools

import kubernetes_validate
import pytest
import yaml
from serving_support import deployment

from core.settings import PROJECT_ROOT, Settings
from serving.deploy import deploy_target
from serving.kubernetes_rollout import (
    MODEL_ANNOTATION,
    render_upgrade,
    rollout_status,
    upgrade_values,
    wait_for_rollout,
)

CHART = PROJECT_ROOT / "helm" / "churn-platform"
PRODUCTION_VALUES = PROJECT_ROOT / "helm" / "examples" / "values-production.yaml"
KUBE_VERSIONS = ["1.27.0", kubernetes_validate.latest_version()]


@pytest.mark.parametrize(
    ("case", "expected", "words"),
    [
        (deployment(), "complete", "3 replicas rolled out"),
        (deployment(generation=4, observed=3), "progressing", "controller"),
        (deployment(updated=1, available=1, reason="ReplicaSetUpdated"), "progressing", "1 of 3"),
        (deployment(status_replicas=4), "progressing", "1 old replicas"),
        (deployment(available=2), "progressing", "2 of 3 updated replicas available"),
        (deployment(updated=1, reason="ProgressDeadlineExceeded"), "failed", "ProgressDeadline"),
        (deployment(replicas=0, updated=0, available=0), "complete", "0 replicas"),
    ],
)
def test_rollout_status_reads_the_deployment_as_kubectl_does(case, expected, words):
    status = rollout_status(case)
    assert status.state == expected
    assert words in status.message


def test_rollout_status_of_a_deployment_the_controller_has_not_reported_yet():
    fresh = deployment()
    fresh.status = None
    assert rollout_status(fresh).state == "progressing"


class Clock:
    """Time that moves only when the poll loop sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_for_rollout_completes_fails_or_times_out():
    clock = Clock()
    steps = iter([deployment(updated=1, available=1), deployment(available=2), deployment()])
    done = wait_for_rollout(lambda: next(steps), 60, 2, clock, clock.sleep)
    assert done.state == "complete" and clock.now == 4

    clock = Clock()
    steps = iter([deployment(updated=1), deployment(updated=1, reason="ProgressDeadlineExceeded")])
    failed = wait_for_rollout(lambda: next(steps), 60, 2, clock, clock.sleep)
    assert failed.state == "failed" and "ProgressDeadlineExceeded" in failed.message

    clock = Clock()
    stuck = itertools.repeat(deployment(updated=2, available=2))
    timed_out = wait_for_rollout(lambda: next(stuck), 30, 5, clock, clock.sleep)
    assert timed_out.state == "failed"
    assert "2 of 3 replicas updated after 30 s" in timed_out.message
    assert clock.now == 30


def test_the_upgrade_renders_valid_manifests_that_change_only_the_serving_annotation():
    release_values = yaml.safe_load(PRODUCTION_VALUES.read_text())
    before = render_upgrade(CHART, release_values, "churn", "ml")
    values = upgrade_values(release_values, "churn", 7)
    assert release_values == yaml.safe_load(PRODUCTION_VALUES.read_text())  # not mutated
    after = render_upgrade(CHART, values, "churn", "ml")
    for doc in after:
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)

    key = MODEL_ANNOTATION.format(model="churn")
    changed = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    assert len(changed) == 1
    old, new = changed[0]
    assert new["kind"] == "Deployment" and new["metadata"]["name"] == "churn-churn-platform-serving"
    assert new["spec"]["template"]["metadata"]["annotations"][key] == "7"
    assert key not in old["spec"]["template"]["metadata"]["annotations"]
    unannotated = copy.deepcopy(new)
    del unannotated["spec"]["template"]["metadata"]["annotations"][key]
    assert unannotated == old

    # A second model's deploy keeps the first one's version in the release.
    both = render_upgrade(CHART, upgrade_values(values, "next_spend", 2), "churn", "ml")
    (serving,) = [
        d
        for d in both
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "churn-churn-platform-serving"
    ]
    annotations = serving["spec"]["template"]["metadata"]["annotations"]
    assert annotations[key] == "7"
    assert annotations[MODEL_ANNOTATION.format(model="next_spend")] == "2"


def test_the_chart_refuses_a_version_that_is_not_a_positive_integer():
    import helm_python as helm

    values = upgrade_values(yaml.safe_load(PRODUCTION_VALUES.read_text()), "churn", 0)
    with pytest.raises(helm.HelmError, match="deployedModels"):
        render_upgrade(CHART, values, "churn", "ml")


def test_the_target_follows_the_settings_and_the_pod_environment(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert deploy_target(Settings()) == "local"
    assert deploy_target(Settings(deploy={"kubeconfig": "/etc/kube/config"})) == "kubernetes"
    assert deploy_target(Settings(deploy={"target": "local", "kubeconfig": "/k"})) == "local"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert deploy_target(Settings()) == "kubernetes"


def test_the_charts_environment_points_the_deploy_step_at_its_own_release():
    """In the cluster, the deploy step upgrades the release it runs in and smoke-tests that
    release's serving Service: the names it builds are the rendered objects' names."""
    release_values = yaml.safe_load(PRODUCTION_VALUES.read_text())
    docs = render_upgrade(CHART, release_values, "churn", "ml")
    (config,) = [d for d in docs if d["kind"] == "ConfigMap" and "CHURN_DEPLOY_TARGET" in d["data"]]
    env = {k: v for k, v in config["data"].items() if k.startswith("CHURN_DEPLOY_")}
    settings = Settings(deploy={k.removeprefix("CHURN_DEPLOY_").lower(): v for k, v in env.items()})
    assert settings.deploy.target == "kubernetes"
    assert (settings.deploy.namespace, settings.deploy.release) == ("ml", "churn")
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    serving = deployments[settings.deploy.serving_deployment]
    assert serving["metadata"]["labels"]["app.kubernetes.io/component"] == "serving"
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    host, port = settings.deploy.serving_url.removeprefix("http://").rsplit(":", 1)
    name, namespace, _ = host.split(".")
    assert namespace == "ml"
    assert int(port) in {p["port"] for p in services[name]["spec"]["ports"]}
    assert (
        services[name]["spec"]["selector"].items()
        <= serving["spec"]["template"]["metadata"]["labels"].items()
    )
    assert str(settings.deploy.chart) == "/app/helm/churn-platform"
