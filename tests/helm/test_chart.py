"""The Helm chart (helm/churn-platform), checked offline without a cluster or a helm binary.

The chart is rendered and linted by Helm's own Go SDK (``helm_python``, Helm v4 in a
wheel) and every rendered manifest is validated against the Kubernetes OpenAPI schemas
of ``kubernetes_validate`` in strict mode (unknown fields are errors), for the oldest
Kubernetes the chart supports and the newest the validator knows. On top of that the
tests check what a schema cannot: probes and resources everywhere, nothing secret in the
ConfigMap, Services that reach their containers, that the environment the chart sets
builds the project's own Settings to the right addresses, that the KubernetesExecutor's
pod template is a Pod Airflow's own code builds task pods from, and that the
NetworkPolicies let through exactly the connections the components make.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from core.logs import python_warnings
from core.settings import Settings, StorageSettings, environment_names, get_settings

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "helm" / "churn-platform"
PRODUCTION_VALUES = ROOT / "helm" / "examples" / "values-production.yaml"
DOCKERFILE = ROOT / "helm" / "image" / "Dockerfile"

RELEASE = "churn"
NAMESPACE = "ml"
FULLNAME = "churn-churn-platform"
POD_TEMPLATE = f"{FULLNAME}-airflow-pod-template"
DEPLOYER = f"{FULLNAME}-airflow-deployer"  # the deploy task's pod's service account
SCHEDULER_ACCOUNT = f"{FULLNAME}-airflow-scheduler"

# The chart's Chart.yaml kubeVersion floor, and the newest schema the validator ships.
KUBE_VERSIONS = ["1.27.0", kubernetes_validate.latest_version()]

# Secret test values: none of them may show up outside a Secret.
PG_PASSWORD = "p%40ss%3Aw%2Frd"  # percent-encoded "p@ss:w/rd"
REDIS_PASSWORD = "r3d1s-pw"
JWT_SECRET = "jwt-secret-for-tests-0123456789"
# The platform's own MLflow user, the in-chart server's admin (mlflow.basicAuth), and the
# server's session key.
MLFLOW_USERNAME = "mlflow-user-for-tests"
MLFLOW_TRACKING_PASSWORD = "mlflow-tracking-password-for-tests"
FLASK_SECRET_KEY = "mlflow-flask-secret-key-for-tests"
# A password MLflow refuses for its admin (shorter than 12 characters).
SHORT_PASSWORD = "pw-11-chars"
SECRET_STRINGS = [
    PG_PASSWORD,
    "p@ss:w/rd",
    REDIS_PASSWORD,
    JWT_SECRET,
    MLFLOW_USERNAME,
    MLFLOW_TRACKING_PASSWORD,
    FLASK_SECRET_KEY,
]

# "Default" values: the chart's defaults plus only what it requires.
REQUIRED_VALUES: dict[str, Any] = {
    "postgresql": {"url": f"postgresql://churn:{PG_PASSWORD}@db.example.com:5432/postgres"},
    "externalRedis": {"url": f"redis://:{REDIS_PASSWORD}@redis.example.com:6379/0"},
    "airflow": {"jwtSecret": JWT_SECRET},
    "secrets": {
        "mlflowTrackingUsername": MLFLOW_USERNAME,
        "mlflowTrackingPassword": MLFLOW_TRACKING_PASSWORD,
        "mlflowFlaskSecretKey": FLASK_SECRET_KEY,
    },
}

# Every other secret value the chart takes, each a literal searched for in the manifests.
SERVE_API_KEY = "serve-api-key-for-tests-4711"
WEBHOOK_TOKEN = "webhook-token-for-tests-0815"
WEBHOOK_URL = f"https://hooks.example.com:8443/services/T0/B0/{WEBHOOK_TOKEN}"
MLFLOW_PASSWORD = "mlflow-password-for-tests"
MLFLOW_URL = f"https://churn:{MLFLOW_PASSWORD}@mlflow.example.com"
MLFLOW_TOKEN = "mlflow-token-for-tests"
API_SECRET_KEY = "airflow-api-secret-key-for-tests"
FERNET_KEY = "A" * 42 + "s="
EXTRA_SECRET = "extra-secret-for-tests"
# The chart's default values plus every secret value it takes (the external MLflow server
# with a password in its URL), and where each one must end up: its key in the Secret.
ALL_SECRET_VALUES: dict[str, Any] = {
    **REQUIRED_VALUES,
    "airflow": {"jwtSecret": JWT_SECRET, "apiSecretKey": API_SECRET_KEY, "fernetKey": FERNET_KEY},
    "mlflow": {"enabled": False},
    "secrets": {
        "serveApiKey": SERVE_API_KEY,
        "alertWebhookUrl": WEBHOOK_URL,
        "mlflowServerUri": MLFLOW_URL,
        "mlflowTrackingUsername": MLFLOW_USERNAME,
        "mlflowTrackingPassword": MLFLOW_TRACKING_PASSWORD,
        "mlflowTrackingToken": MLFLOW_TOKEN,
        "mlflowFlaskSecretKey": FLASK_SECRET_KEY,
    },
    "extraSecretEnv": {"AWS_SECRET_ACCESS_KEY": EXTRA_SECRET},
}
SECRET_HOMES = {
    PG_PASSWORD: "CHURN_POSTGRES_URL",
    REDIS_PASSWORD: "CHURN_REDIS_URL",
    JWT_SECRET: "AIRFLOW__API_AUTH__JWT_SECRET",
    API_SECRET_KEY: "AIRFLOW__API__SECRET_KEY",
    FERNET_KEY: "AIRFLOW__CORE__FERNET_KEY",
    SERVE_API_KEY: "CHURN_SERVE_API_KEY",
    WEBHOOK_TOKEN: "CHURN_MONITORING_ALERT_WEBHOOK_URL",
    MLFLOW_PASSWORD: "CHURN_MLFLOW_SERVER_URI",
    MLFLOW_USERNAME: "MLFLOW_TRACKING_USERNAME",
    MLFLOW_TRACKING_PASSWORD: "MLFLOW_TRACKING_PASSWORD",
    MLFLOW_TOKEN: "MLFLOW_TRACKING_TOKEN",
    FLASK_SECRET_KEY: "MLFLOW_FLASK_SERVER_SECRET_KEY",
    EXTRA_SECRET: "AWS_SECRET_ACCESS_KEY",
}

# Each value set with the chart's default executor (KubernetesExecutor) and with the
# LocalExecutor ("-local").
VARIANTS = ["default", "production", "default-local", "production-local"]
KUBERNETES_VARIANTS = [v for v in VARIANTS if not v.endswith("-local")]
LOCAL = {"airflow": {"executor": "LocalExecutor"}}

# Keys that are secret wherever they appear.
SECRET_KEYS = {
    "CHURN_POSTGRES_URL",
    "CHURN_REDIS_URL",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__FERNET_KEY",
    "MLFLOW_BACKEND_STORE_URI",
    "CHURN_SERVE_API_KEY",
    "CHURN_MONITORING_ALERT_WEBHOOK_URL",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "MLFLOW_AUTH_ADMIN_USERNAME",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "mlflow-basic-auth.ini",
}
# The Secret's key holding MLflow's auth config file, and where the MLflow pod reads it.
MLFLOW_AUTH_KEY = "mlflow-basic-auth.ini"
# The secret keys the chart writes with only the required values set.
REQUIRED_SECRET_KEYS = {
    "CHURN_POSTGRES_URL",
    "CHURN_REDIS_URL",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "MLFLOW_BACKEND_STORE_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
    MLFLOW_AUTH_KEY,
}
CREDENTIALS_IN_URL = re.compile(r"://[^/@\s]*:[^/@\s]*@")

# Deployment component -> the container port its Service targets.
APP_COMPONENTS = {
    "serving": 3000,
    "mlflow": 5000,
    "airflow-api-server": 8080,
    "airflow-scheduler": None,
    "airflow-dag-processor": None,
    "airflow-triggerer": None,
}


# --- helpers ------------------------------------------------------------------------------


def production_values() -> dict[str, Any]:
    return yaml.safe_load(PRODUCTION_VALUES.read_text())


def values_for(variant: str) -> dict[str, Any]:
    base, _, executor = variant.partition("-")
    values = copy.deepcopy(REQUIRED_VALUES) if base == "default" else production_values()
    return merged(values, LOCAL) if executor == "local" else values


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def render(chart: helm.Chart, values: dict[str, Any], release: str = RELEASE) -> list[dict]:
    """Every manifest the chart renders (hooks included), parsed."""
    manifests = chart.render(values, name=release, namespace=NAMESPACE)
    docs: list[dict] = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


_VALIDATED: set[tuple[str, str]] = set()


def validate_k8s(doc: dict, kube_version: str) -> None:
    """kubernetes_validate in strict mode; a document already found valid is not redone."""
    key = (kube_version, json.dumps(doc, sort_keys=True))
    if key not in _VALIDATED:
        kubernetes_validate.validate(doc, kube_version, strict=True)
        _VALIDATED.add(key)


def find(docs: list[dict], kind: str, name: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def worker_pod(docs: list[dict], key: str = "pod_template.yaml") -> dict | None:
    """The KubernetesExecutor's pod template (a Pod manifest in a ConfigMap), if any;
    ``key="deployer_pod_template.yaml"``: the deploy task's."""
    matches = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"] == POD_TEMPLATE]
    if not matches:
        return None
    return yaml.safe_load(matches[0]["data"][key])


def pods(docs: list[dict]) -> Iterator[tuple[str, dict]]:
    """Every pod the release runs: (name, pod template metadata + spec) of each Deployment
    and Job, and the task pods' template."""
    for doc in docs:
        if doc["kind"] in {"Deployment", "Job"}:
            yield doc["metadata"]["name"], doc["spec"]["template"]
    worker = worker_pod(docs)
    if worker is not None:
        yield POD_TEMPLATE, worker
        yield f"{POD_TEMPLATE}/deployer", worker_pod(docs, "deployer_pod_template.yaml")


def pod_specs(docs: list[dict]) -> Iterator[tuple[str, dict]]:
    for name, pod in pods(docs):
        yield name, pod["spec"]


def component(doc: dict) -> str:
    return doc["metadata"]["labels"].get("app.kubernetes.io/component", "")


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def rendered(chart: helm.Chart) -> dict[str, list[dict]]:
    return {variant: render(chart, values_for(variant)) for variant in VARIANTS}


# --- the chart as a package ---------------------------------------------------------------


def test_chart_metadata_and_no_downloads(chart: helm.Chart) -> None:
    meta = chart.metadata
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "churn-platform"
    assert meta["type"] == "application"
    # Installing needs nothing from a chart repository.
    assert not meta.get("dependencies")
    assert chart.dependencies == []
    assert chart.schema is not None
    assert {t["name"] for t in chart.templates} >= {
        "templates/_helpers.tpl",
        "templates/NOTES.txt",
        "templates/configmap.yaml",
        "templates/secret.yaml",
    }


def test_default_values_hold_no_secret(chart: helm.Chart) -> None:
    values = chart.values
    assert values["existingSecret"] == ""
    assert values["postgresql"]["url"] == ""
    assert values["externalRedis"]["url"] == ""
    assert values["extraSecretEnv"] == {}
    assert values["secrets"] and set(values["secrets"].values()) == {""}
    for key in ("jwtSecret", "apiSecretKey", "fernetKey"):
        assert values["airflow"][key] == ""
    # Nothing secret-looking is hard-coded in the templates either (the error messages'
    # placeholders "postgresql://user:password@host" and "redis://[:password@]host" aside).
    for template in chart.templates:
        found = set(CREDENTIALS_IN_URL.findall(template["data"])) - {
            "://user:password@",
            "://[:password@",
        }
        assert not found, template["name"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_lint_is_clean(variant: str) -> None:
    report = helm.lint(
        CHART_DIR, values_for(variant), strict=True, kube_version=f"v{KUBE_VERSIONS[-1]}"
    )
    assert report["errors"] == []
    # Severity 2 = warning, 3 = error; "icon is recommended" (1 = info) is allowed.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_lint_without_values_names_what_is_required(capfd: pytest.CaptureFixture[str]) -> None:
    # Helm's lint tolerates `required` (charts with required values must lint), but says
    # which values are missing; installing without them fails (test_missing_... below).
    report = helm.lint(CHART_DIR)
    assert report["errors"] == []
    stderr = capfd.readouterr().err
    assert "postgresql.url is required" in stderr
    assert "airflow.jwtSecret is required" in stderr
    assert "secrets.mlflowTrackingPassword is required" in stderr


# --- Kubernetes schemas -------------------------------------------------------------------


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_manifest_is_valid_kubernetes(
    rendered: dict[str, list[dict]], variant: str, kube_version: str
) -> None:
    docs = rendered[variant]
    assert len(docs) > 10
    for doc in docs:
        try:
            validate_k8s(doc, kube_version)
        except kubernetes_validate.ValidationError as exc:  # pragma: no cover - on failure
            path = "/".join(str(p) for p in exc.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} at {path}: {exc.message}")


@pytest.mark.parametrize(
    "override",
    [
        {"state": {"persistence": {"enabled": False}}},
        {"state": {"persistence": {"existingClaim": "churn-state", "storageClass": "-"}}},
        {"serviceAccount": {"create": False, "name": "churn-runner"}},
        {"image": {"digest": "sha256:" + "a" * 64, "pullPolicy": "Always"}},
        {"imagePullSecrets": [{"name": "registry"}], "nodeSelector": {"pool": "ml"}},
        {"mlflow": {"enabled": False}, "settings": {"mlflow_server_uri": "http://mlflow:80"}},
        {"airflow": {"migrations": {"enabled": False}, "fernetKey": "A" * 43 + "="}},
        {"ingress": {"enabled": True, "airflow": {"host": "airflow.local"}}},
        {"networkPolicy": {"enabled": False}, "rbac": {"create": False}},
        {
            "airflow": {
                "worker": {
                    "nodeSelector": {"pool": "training"},
                    "extraEnv": [{"name": "A", "value": "1"}],
                }
            }
        },
    ],
    ids=[
        "no-persistence",
        "existing-claim",
        "existing-service-account",
        "image-digest",
        "pull-secrets-node-selector",
        "external-mlflow",
        "no-migrations-fernet",
        "ingress-one-host",
        "no-network-policy-no-rbac",
        "worker-scheduling",
    ],
)
def test_optional_settings_render_valid_manifests(
    chart: helm.Chart, override: dict[str, Any]
) -> None:
    docs = render(chart, merged(REQUIRED_VALUES, override))
    worker = worker_pod(docs)
    for doc in [*docs, worker]:
        validate_k8s(doc, KUBE_VERSIONS[-1])
    deployments = {component(d): d for d in of_kind(docs, "Deployment")}
    serving = deployments["serving"]["spec"]["template"]["spec"]
    if "digest" in override.get("image", {}):
        assert serving["containers"][0]["image"].endswith("@sha256:" + "a" * 64)
    if override.get("serviceAccount", {}).get("create") is False:
        assert not of_kind(docs, "ServiceAccount")
        assert serving["serviceAccountName"] == "churn-runner"
        job = find(docs, "Job", f"{FULLNAME}-migrations")
        assert job["spec"]["template"]["spec"]["serviceAccountName"] == "churn-runner"
    persistence = override.get("state", {}).get("persistence", {})
    if persistence:
        assert not of_kind(docs, "PersistentVolumeClaim")
        state = next(v for v in serving["volumes"] if v["name"] == "state")
        if persistence.get("existingClaim"):
            assert state["persistentVolumeClaim"]["claimName"] == "churn-state"
        else:
            assert state == {"name": "state", "emptyDir": {}}
    if override.get("networkPolicy") == {"enabled": False}:
        assert not of_kind(docs, "NetworkPolicy")
        assert not of_kind(docs, "Role") and not of_kind(docs, "RoleBinding")
    if "worker" in override.get("airflow", {}):
        assert worker["spec"]["nodeSelector"] == {"pool": "training"}
        assert {"name": "A", "value": "1"} in worker["spec"]["containers"][0]["env"]
        assert "nodeSelector" not in serving
    if "digest" in override.get("image", {}):
        assert worker["spec"]["containers"][0]["image"].endswith("@sha256:" + "a" * 64)
    if override.get("airflow", {}).get("migrations") == {"enabled": False}:
        assert not of_kind(docs, "Job")
        secret = find(docs, "Secret", FULLNAME)["stringData"]
        assert secret["AIRFLOW__CORE__FERNET_KEY"] == "A" * 43 + "="


def test_strict_validation_catches_unknown_fields(rendered: dict[str, list[dict]]) -> None:
    deployment = copy.deepcopy(find(rendered["default"], "Deployment", f"{FULLNAME}-serving"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[-1], strict=True)


# --- what gets deployed -------------------------------------------------------------------


def test_default_objects(rendered: dict[str, list[dict]]) -> None:
    docs = rendered["default"]
    deployments = {d["metadata"]["name"] for d in of_kind(docs, "Deployment")}
    assert deployments == {f"{FULLNAME}-{c}" for c in APP_COMPONENTS}
    services = {d["metadata"]["name"] for d in of_kind(docs, "Service")}
    assert services == {f"{FULLNAME}-{c}" for c, port in APP_COMPONENTS.items() if port}
    secrets = {d["metadata"]["name"] for d in of_kind(docs, "Secret")}
    assert secrets == {FULLNAME, f"{FULLNAME}-migrations"}
    find(docs, "ConfigMap", FULLNAME)
    find(docs, "ConfigMap", POD_TEMPLATE)
    find(docs, "ServiceAccount", FULLNAME)
    find(docs, "ServiceAccount", SCHEDULER_ACCOUNT)
    find(docs, "Role", f"{FULLNAME}-airflow-pod-launcher")
    find(docs, "RoleBinding", f"{FULLNAME}-airflow-pod-launcher")
    find(docs, "ServiceAccount", DEPLOYER)
    find(docs, "Role", DEPLOYER)
    find(docs, "RoleBinding", DEPLOYER)
    policies = {d["metadata"]["name"] for d in of_kind(docs, "NetworkPolicy")}
    assert policies == {
        f"{FULLNAME}-{c}"
        for c in [*APP_COMPONENTS, "airflow-worker", "airflow-deployer", "migrations"]
    }
    find(docs, "PersistentVolumeClaim", f"{FULLNAME}-state")
    find(docs, "PodDisruptionBudget", f"{FULLNAME}-serving")
    find(docs, "Job", f"{FULLNAME}-migrations")
    # Off by default.
    assert not of_kind(docs, "HorizontalPodAutoscaler")
    assert not of_kind(docs, "Ingress")
    assert f"{FULLNAME}-redis" not in deployments


def test_production_objects(rendered: dict[str, list[dict]]) -> None:
    docs = rendered["production"]
    existing = production_values()["existingSecret"]
    # existingSecret: the chart creates no Secret at all, hook included.
    assert not of_kind(docs, "Secret")
    redis = find(docs, "Deployment", f"{FULLNAME}-redis")
    assert redis["spec"]["replicas"] == 1
    redis_service = find(docs, "Service", f"{FULLNAME}-redis")
    assert redis_service["spec"]["ports"][0]["port"] == 6379

    serving = find(docs, "Deployment", f"{FULLNAME}-serving")
    assert "replicas" not in serving["spec"], "the HPA owns the replica count"
    hpa = find(docs, "HorizontalPodAutoscaler", f"{FULLNAME}-serving")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": f"{FULLNAME}-serving",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    pdb = find(docs, "PodDisruptionBudget", f"{FULLNAME}-serving")
    assert pdb["spec"]["minAvailable"] == 1
    pod_labels = serving["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    # Every pod of the project reads the existing Secret, and the in-chart Redis wins
    # over any CHURN_REDIS_URL in it (explicit env beats envFrom).
    for name, spec in pod_specs(docs):
        if name.endswith(("-redis", "-migrations")):
            continue
        container = spec["containers"][0]
        assert {"secretRef": {"name": existing}} in container["envFrom"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["CHURN_REDIS_URL"] == f"redis://{FULLNAME}-redis:6379/0"


def test_ingress_routes_to_existing_services(rendered: dict[str, list[dict]]) -> None:
    docs = rendered["production"]
    ingress = find(docs, "Ingress", FULLNAME)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    routes = {}
    for rule in ingress["spec"]["rules"]:
        backend = rule["http"]["paths"][0]["backend"]["service"]
        routes[rule["host"]] = (backend["name"], backend["port"]["number"])
    assert routes == {
        "churn.example.com": (f"{FULLNAME}-serving", 3000),
        "mlflow.churn.example.com": (f"{FULLNAME}-mlflow", 5000),
        "airflow.churn.example.com": (f"{FULLNAME}-airflow-api-server", 8080),
    }
    for service, port in routes.values():
        ports = [p["port"] for p in find(docs, "Service", service)["spec"]["ports"]]
        assert port in ports
    assert set(ingress["spec"]["tls"][0]["hosts"]) == set(routes)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_deployment_has_resources_and_probes(
    rendered: dict[str, list[dict]], variant: str
) -> None:
    deployments = of_kind(rendered[variant], "Deployment")
    assert deployments
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(part, {})), (name, part)
            for probe in ("livenessProbe", "readinessProbe"):
                assert container.get(probe), (name, probe)
    for job in of_kind(rendered[variant], "Job"):
        for container in job["spec"]["template"]["spec"]["containers"]:
            assert container["resources"]["limits"], job["metadata"]["name"]


def test_probes_hit_the_health_endpoints(rendered: dict[str, list[dict]]) -> None:
    docs = rendered["default"]

    def container(name: str) -> dict:
        return find(docs, "Deployment", f"{FULLNAME}-{name}")["spec"]["template"]["spec"][
            "containers"
        ][0]

    serving = container("serving")
    assert serving["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert serving["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    api = container("airflow-api-server")
    assert api["readinessProbe"]["httpGet"]["path"] == "/api/v2/monitor/health"
    assert container("mlflow")["livenessProbe"]["httpGet"]["path"] == "/health"
    scheduler = container("airflow-scheduler")
    assert scheduler["livenessProbe"]["httpGet"] == {"path": "/health", "port": "health"}
    assert {"name": "health", "containerPort": 8974, "protocol": "TCP"} in scheduler["ports"]
    for name, job_type in (
        ("airflow-dag-processor", "DagProcessorJob"),
        ("airflow-triggerer", "TriggererJob"),
    ):
        command = container(name)["livenessProbe"]["exec"]["command"]
        assert command == ["airflow", "jobs", "check", "--job-type", job_type, "--local"]


def test_component_commands(rendered: dict[str, list[dict]]) -> None:
    docs = rendered["default"]
    commands = {
        component(d): d["spec"]["template"]["spec"]["containers"][0]["command"]
        for d in of_kind(docs, "Deployment")
    }
    assert commands["serving"] == [
        "bentoml",
        "serve",
        "serving.service:ChurnPredictor",
        "--host",
        "0.0.0.0",
        "--port",
        "3000",
    ]
    assert commands["airflow-scheduler"] == ["airflow", "scheduler"]
    assert commands["airflow-dag-processor"] == ["airflow", "dag-processor"]
    assert commands["airflow-triggerer"] == ["airflow", "triggerer"]
    assert commands["airflow-api-server"][:6] == [
        "airflow",
        "api-server",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
    ]
    mlflow = commands["mlflow"]
    # MLflow's own users and permissions, as `make mlflow-ui` runs it locally.
    assert mlflow[:4] == ["mlflow", "server", "--app-name", "basic-auth"]
    options = dict(zip(mlflow[2::2], mlflow[3::2], strict=True))
    # The database URL comes from the Secret through Kubernetes' $(VAR) expansion.
    assert options["--backend-store-uri"] == "$(MLFLOW_BACKEND_STORE_URI)"
    assert options["--artifacts-destination"] == "file:///state/mlflow/artifacts"
    assert (options["--host"], options["--port"]) == ("0.0.0.0", "5000")
    # MLflow rejects unknown Host headers: in-cluster clients use the Service name.
    allowed = options["--allowed-hosts"].split(",")
    assert f"{FULLNAME}-mlflow:*" in allowed
    assert f"{FULLNAME}-mlflow.{NAMESPACE}.svc.cluster.local:*" in allowed


def test_production_mlflow_accepts_its_ingress_host(rendered: dict[str, list[dict]]) -> None:
    mlflow = find(rendered["production"], "Deployment", f"{FULLNAME}-mlflow")
    command = mlflow["spec"]["template"]["spec"]["containers"][0]["command"]
    options = dict(zip(command[2::2], command[3::2], strict=True))
    assert "mlflow.churn.example.com" in options["--allowed-hosts"].split(",")
    assert options["--artifacts-destination"] == "s3://example-ml-artifacts/churn"


@pytest.mark.parametrize(("name", "port"), [(c, p) for c, p in APP_COMPONENTS.items() if p])
def test_services_reach_their_containers(
    rendered: dict[str, list[dict]], name: str, port: int
) -> None:
    docs = rendered["default"]
    service = find(docs, "Service", f"{FULLNAME}-{name}")
    deployment = find(docs, "Deployment", f"{FULLNAME}-{name}")
    pod = deployment["spec"]["template"]
    # The Service selects exactly this component's pods...
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    for other in of_kind(docs, "Deployment"):
        if other is not deployment:
            labels = other["spec"]["template"]["metadata"]["labels"]
            assert not service["spec"]["selector"].items() <= labels.items()
    # ...and its port lands on the container port the process listens on.
    (service_port,) = service["spec"]["ports"]
    assert service_port["port"] == port
    container_ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    assert container_ports[service_port["targetPort"]] == port


# --- configuration and secrets ------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_configmap_holds_no_secret(rendered: dict[str, list[dict]], variant: str) -> None:
    for configmap in of_kind(rendered[variant], "ConfigMap"):
        data = configmap["data"]
        assert not SECRET_KEYS & set(data)
        for key, value in data.items():
            assert not CREDENTIALS_IN_URL.search(value), key
            for secret in SECRET_STRINGS:
                assert secret not in value, key


def test_secret_values_stay_in_secrets(rendered: dict[str, list[dict]]) -> None:
    docs = rendered["default"]
    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        text = yaml.safe_dump(doc)
        for secret in SECRET_STRINGS:
            assert secret not in text, (doc["kind"], doc["metadata"]["name"])
    secret = find(docs, "Secret", FULLNAME)
    assert set(secret["stringData"]) == REQUIRED_SECRET_KEYS


def test_every_secret_value_reaches_the_pods_from_the_secret_only(
    chart: helm.Chart, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every secret value the chart takes set at once (an external MLflow server with a
    password in its URL among them): none is in a ConfigMap (the pods' environment, the task
    pods' templates) nor in any object but the chart's Secret, where each has its key; the
    pods read that Secret, and the Settings built from their environment hold the values."""
    docs = render(chart, ALL_SECRET_VALUES)
    for kube_version in KUBE_VERSIONS:
        for doc in [*docs, worker_pod(docs)]:
            validate_k8s(doc, kube_version)
    secret = find(docs, "Secret", FULLNAME)["stringData"]
    for value, key in SECRET_HOMES.items():
        assert value in secret[key], key
    assert secret["CHURN_MLFLOW_SERVER_URI"] == MLFLOW_URL
    assert len(of_kind(docs, "ConfigMap")) == 2  # the environment and the pod templates
    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        # JSON, not YAML: a YAML dump may fold a long line; a literal stays one string here.
        text = json.dumps(doc)
        for value in [*SECRET_HOMES, *SECRET_STRINGS]:
            assert value not in text, (doc["kind"], doc["metadata"]["name"], value)
        if doc["kind"] == "ConfigMap":
            assert not SECRET_KEYS & set(doc["data"]), doc["metadata"]["name"]
            assert "CHURN_MLFLOW_SERVER_URI" not in doc["data"]
    project_pods = [pod for _, pod in pods(docs) if component(pod) not in {"redis", "migrations"}]
    assert {component(pod) for pod in project_pods} >= {"serving", "airflow-worker"}
    for pod in project_pods:
        container = pod["spec"]["containers"][0]
        assert {"secretRef": {"name": FULLNAME}} in container["envFrom"], component(pod)
        settings = settings_of(pod_env(docs, ALL_SECRET_VALUES, pod), monkeypatch)
        assert settings.serving.api_key is not None
        assert settings.serving.api_key.get_secret_value() == SERVE_API_KEY
        assert settings.monitoring.alert_webhook_url == WEBHOOK_URL
        assert settings.storage.mlflow_tracking_uri == MLFLOW_URL
    # The task pods post alerts to the webhook's port; serving does not.
    labels = pod_labels(docs)
    assert can_connect(docs, labels["airflow-worker"], EXTERNAL, 8443)
    assert not can_connect(docs, labels["serving"], EXTERNAL, 8443)


def test_configmap_env(rendered: dict[str, list[dict]]) -> None:
    data = find(rendered["default"], "ConfigMap", FULLNAME)["data"]
    assert data["CHURN_STATE_DIR"] == "/state"
    assert data["AIRFLOW__CORE__DAGS_FOLDER"] == "/app/dags"
    assert data["AIRFLOW__CORE__EXECUTOR"] == "KubernetesExecutor"
    assert data["AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE"] == NAMESPACE
    assert data["AIRFLOW__KUBERNETES_EXECUTOR__DELETE_WORKER_PODS"] == "True"
    assert data["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert data["AIRFLOW_HOME"] == "/state/airflow"
    # Task logs on the state volume: the same folder in every pod (one ConfigMap).
    assert data["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] == "/state/airflow/logs"
    # Task logs keep each task's INFO lines, MLflow's at their own level (not stderr: ERROR).
    assert data["AIRFLOW__LOGGING__LOGGING_LEVEL"] == "INFO"
    assert data["MLFLOW_CONFIGURE_LOGGING"] == "false"
    assert data["PYTHONWARNINGS"] == python_warnings()  # the repeated warnings, filtered
    local = find(rendered["default-local"], "ConfigMap", FULLNAME)["data"]
    assert local["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert local["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] == "/state/airflow/logs"
    assert not any(key.startswith("AIRFLOW__KUBERNETES_EXECUTOR__") for key in local)
    assert data["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
        f"http://{FULLNAME}-airflow-api-server:8080/execution/"
    )
    # Every CHURN_* variable is a field of the project's settings (no typos).
    names = environment_names()
    churn_keys = [key for key in data if key.startswith("CHURN_")]
    assert churn_keys
    for key in churn_keys:
        assert key in names, key


def test_production_settings_reach_the_configmap(rendered: dict[str, list[dict]]) -> None:
    data = find(rendered["production"], "ConfigMap", FULLNAME)["data"]
    # A map-valued setting is rendered as JSON, the form pydantic-settings parses.
    assert data["CHURN_GATE_MIN_SCORES"] == '{"churn":0.55}'
    assert data["CHURN_SERVE_BATCH_LIMIT"] == "2000"
    assert data["AIRFLOW__CORE__PARALLELISM"] == "8"


def test_production_gate_minimum_reaches_the_settings_and_the_spec(
    rendered: dict[str, list[dict]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.churn.spec import SPEC as CHURN

    data = find(rendered["production"], "ConfigMap", FULLNAME)["data"]
    for key in list(os.environ):
        if key.startswith("CHURN_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CHURN_GATE_MIN_SCORES", data["CHURN_GATE_MIN_SCORES"])
    settings = get_settings()
    assert settings.gate_min_scores == {"churn": 0.55}
    assert CHURN.minimum(settings) == 0.55


def test_map_settings_render_as_json(chart: helm.Chart) -> None:
    values = merged(
        REQUIRED_VALUES, {"settings": {"gate_min_scores": {"churn": 0.5, "next_spend": 600}}}
    )
    data = find(render(chart, values), "ConfigMap", FULLNAME)["data"]
    assert json.loads(data["CHURN_GATE_MIN_SCORES"]) == {"churn": 0.5, "next_spend": 600}
    assert "CHURN_GATE_MIN_SCORES" not in find(render(chart, REQUIRED_VALUES), "ConfigMap",
                                               FULLNAME)["data"]  # fmt: skip


def test_chart_env_builds_the_project_settings(
    rendered: dict[str, list[dict]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pods' environment (ConfigMap + Secret) read by core.settings."""
    docs = rendered["default"]
    configmap = find(docs, "ConfigMap", FULLNAME)["data"]
    secret = find(docs, "Secret", FULLNAME)["stringData"]
    for key in list(os.environ):
        if key.startswith("CHURN_"):
            monkeypatch.delenv(key)
    for key, value in {**configmap, **secret}.items():
        monkeypatch.setenv(key, value)

    settings = get_settings()
    assert settings.storage.state_dir == Path("/state")
    assert settings.serving.port == 3000
    assert settings.airflow.port == 8080
    assert settings.storage.redis_url == REQUIRED_VALUES["externalRedis"]["url"]
    assert settings.storage.mlflow_tracking_uri == f"http://{FULLNAME}-mlflow:5000"
    # The URLs the chart derives in Go templates equal the ones settings.py derives.
    assert settings.airflow_sql_alchemy_conn == secret["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert settings.airflow_sql_alchemy_conn == (
        f"postgresql+psycopg2://churn:{PG_PASSWORD}@db.example.com:5432/churn_airflow"
    )
    assert (
        settings.storage.postgres_database_url(settings.storage.mlflow_database)
        == secret["MLFLOW_BACKEND_STORE_URI"]
    )
    # The migration hook's own Secret carries the same URLs.
    hook = find(docs, "Secret", f"{FULLNAME}-migrations")["stringData"]
    assert hook == {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": secret["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        "MLFLOW_BACKEND_STORE_URI": secret["MLFLOW_BACKEND_STORE_URI"],
    }


def test_derived_urls_keep_query_and_custom_databases(chart: helm.Chart) -> None:
    values = merged(
        REQUIRED_VALUES,
        {
            "postgresql": {
                "url": "postgresql://u:pw@pg:6543/admin?sslmode=require",
                "mlflowDatabase": "ml_tracking",
                "airflowDatabase": "orchestration",
            }
        },
    )
    secret = find(render(chart, values), "Secret", FULLNAME)["stringData"]
    settings = Settings(
        storage={"postgres_url": values["postgresql"]["url"], "mlflow_database": "ml_tracking"},
        airflow={"database": "orchestration"},
    )
    assert secret["MLFLOW_BACKEND_STORE_URI"] == (
        "postgresql://u:pw@pg:6543/ml_tracking?sslmode=require"
    )
    assert secret["MLFLOW_BACKEND_STORE_URI"] == settings.storage.postgres_database_url(
        "ml_tracking"
    )
    assert secret["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == settings.airflow_sql_alchemy_conn


@pytest.mark.parametrize("variant", VARIANTS)
def test_env_sources_exist(rendered: dict[str, list[dict]], variant: str) -> None:
    docs = rendered[variant]
    existing_secret = values_for(variant).get("existingSecret")
    secrets = {d["metadata"]["name"] for d in of_kind(docs, "Secret")} | {existing_secret}
    configmaps = {d["metadata"]["name"] for d in of_kind(docs, "ConfigMap")}
    claims = {d["metadata"]["name"] for d in of_kind(docs, "PersistentVolumeClaim")}
    for name, spec in pod_specs(docs):
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps, name
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, name
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in secrets, name
        for volume in spec.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, name


# --- state, security, hooks ---------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_volume_is_shared_by_every_project_pod(
    rendered: dict[str, list[dict]], variant: str
) -> None:
    docs = rendered[variant]
    claim = find(docs, "PersistentVolumeClaim", f"{FULLNAME}-state")
    for _, pod in pods(docs):
        if component(pod) in {"redis", "migrations"}:
            continue
        spec = pod["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["state"]["persistentVolumeClaim"]["claimName"] == (claim["metadata"]["name"])
        mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        assert mounts["state"] == "/state"
        # Writable scratch places under the read-only root filesystem.
        assert mounts["tmp"] == "/tmp"
        assert "emptyDir" in volumes["tmp"]


def test_state_claim_storage_values(rendered: dict[str, list[dict]]) -> None:
    default = find(rendered["default"], "PersistentVolumeClaim", f"{FULLNAME}-state")["spec"]
    assert "storageClassName" not in default  # the cluster's default class
    assert default["resources"]["requests"]["storage"] == "20Gi"
    prod = find(rendered["production"], "PersistentVolumeClaim", f"{FULLNAME}-state")["spec"]
    assert prod["storageClassName"] == "nfs-client"
    assert prod["accessModes"] == ["ReadWriteMany"]
    assert prod["resources"]["requests"]["storage"] == "100Gi"


@pytest.mark.parametrize("variant", VARIANTS)
def test_pods_run_as_non_root_on_read_only_root(
    rendered: dict[str, list[dict]], variant: str
) -> None:
    specs = list(pod_specs(rendered[variant]))
    assert specs
    for name, spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] > 0, name
        # Only the KubernetesExecutor's scheduler (it starts task pods) and the deploy
        # task's pod (it upgrades the release) get an API token.
        token = variant in KUBERNETES_VARIANTS and name in {
            f"{FULLNAME}-airflow-scheduler",
            f"{POD_TEMPLATE}/deployer",
        }
        assert spec["automountServiceAccountToken"] is token, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"]["drop"] == ["ALL"], name


def test_migrations_run_as_a_hook_before_install_and_upgrade(
    rendered: dict[str, list[dict]],
) -> None:
    docs = rendered["default"]
    job = find(docs, "Job", f"{FULLNAME}-migrations")
    hook_secret = find(docs, "Secret", f"{FULLNAME}-migrations")
    for hook in (job, hook_secret):
        assert hook["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    weight = int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < weight
    spec = job["spec"]["template"]["spec"]
    commands = {c["name"]: c["command"] for c in spec["containers"]}
    assert commands["airflow-db-migrate"] == ["airflow", "db", "migrate"]
    assert commands["mlflow-db-upgrade"] == [
        "mlflow",
        "db",
        "upgrade",
        "$(MLFLOW_BACKEND_STORE_URI)",
    ]
    # A pre-install hook runs before the release's own objects exist: it may use none.
    assert "serviceAccountName" not in spec
    assert all("persistentVolumeClaim" not in v for v in spec["volumes"])
    for container in spec["containers"]:
        assert "envFrom" not in container
        for env in container["env"]:
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == hook_secret["metadata"]["name"]


def test_pods_roll_when_config_changes(chart: helm.Chart) -> None:
    def checksums(values: dict[str, Any]) -> dict[str, str]:
        serving = find(render(chart, values), "Deployment", f"{FULLNAME}-serving")
        return serving["spec"]["template"]["metadata"]["annotations"]

    before = checksums(REQUIRED_VALUES)
    after = checksums(merged(REQUIRED_VALUES, {"settings": {"gate_min_scores": {"churn": 0.6}}}))
    assert before["checksum/config"] != after["checksum/config"]
    assert before["checksum/secret"] == after["checksum/secret"]
    # Changing one model's minimum rolls the pods again.
    again = checksums(merged(REQUIRED_VALUES, {"settings": {"gate_min_scores": {"churn": 0.7}}}))
    assert again["checksum/config"] != after["checksum/config"]
    assert again["checksum/secret"] == after["checksum/secret"]


def test_long_release_names_give_valid_object_names(chart: helm.Chart) -> None:
    release = "a-very-long-release-name-for-the-churn-platform-x"
    helm.validate_release_name(release)
    docs = render(chart, REQUIRED_VALUES, release=release)
    dns_label = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    seen = set()
    for doc in docs:
        name = doc["metadata"]["name"]
        assert len(name) <= 63 and dns_label.match(name), name
        assert (doc["kind"], name) not in seen
        seen.add((doc["kind"], name))


def test_mlflow_can_be_external(chart: helm.Chart) -> None:
    values = merged(
        REQUIRED_VALUES,
        {"mlflow": {"enabled": False}, "settings": {"mlflow_server_uri": "http://mlflow.ml:80"}},
    )
    docs = render(chart, values)
    assert all(component(d) != "mlflow" for d in docs)
    assert "MLFLOW_BACKEND_STORE_URI" not in find(docs, "Secret", FULLNAME)["stringData"]
    configmap = find(docs, "ConfigMap", FULLNAME)["data"]
    assert configmap["CHURN_MLFLOW_SERVER_URI"] == "http://mlflow.ml:80"
    job = find(docs, "Job", f"{FULLNAME}-migrations")
    assert [c["name"] for c in job["spec"]["template"]["spec"]["containers"]] == [
        "airflow-db-migrate"
    ]


# --- MLflow's login (mlflow.basicAuth) ----------------------------------------------------


def mlflow_auth_env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"] if e["name"].startswith("MLFLOW_AUTH_")}


@pytest.mark.filterwarnings("ignore:starlette.middleware.wsgi is deprecated")
def test_mlflow_reads_its_auth_config_from_the_secret(
    rendered: dict[str, list[dict]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server runs MLflow's basic-auth app; the config file it reads
    (MLFLOW_AUTH_CONFIG_PATH) is a file of the chart's Secret mounted into the MLflow pod,
    and MLflow's own reader gets from it the MLflow database, READ for the users an admin
    adds, and the platform's own user as the admin."""
    from mlflow.server.auth.config import DEFAULT_AUTHORIZATION_FUNCTION, read_auth_config

    docs = rendered["default"]
    secret = find(docs, "Secret", FULLNAME)["stringData"]
    pod = find(docs, "Deployment", f"{FULLNAME}-mlflow")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    path = Path(env["MLFLOW_AUTH_CONFIG_PATH"]["value"])
    source = mount_source(pod, str(path))
    assert source == {
        "secret": {
            "secretName": FULLNAME,
            "defaultMode": 0o440,
            "items": [{"key": MLFLOW_AUTH_KEY, "path": path.name}],
        }
    }
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent))
    assert mount["readOnly"] is True
    # The admin is the platform's own user: the Secret's client credentials, by reference.
    refs = {
        name: e["valueFrom"]["secretKeyRef"]
        for name, e in env.items()
        if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
    }
    assert refs == {
        "MLFLOW_AUTH_ADMIN_USERNAME": {"name": FULLNAME, "key": "MLFLOW_TRACKING_USERNAME"},
        "MLFLOW_AUTH_ADMIN_PASSWORD": {"name": FULLNAME, "key": "MLFLOW_TRACKING_PASSWORD"},
        "MLFLOW_FLASK_SERVER_SECRET_KEY": {
            "name": FULLNAME,
            "key": "MLFLOW_FLASK_SERVER_SECRET_KEY",
        },
    }
    assert secret["MLFLOW_FLASK_SERVER_SECRET_KEY"] == FLASK_SECRET_KEY

    # MLflow's reader, on the file and environment the pod gets.
    config_file = tmp_path / path.name
    config_file.write_text(secret[MLFLOW_AUTH_KEY])
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(config_file))
    for name, ref in refs.items():
        monkeypatch.setenv(name, secret[ref["key"]])
    config = read_auth_config()
    assert config.default_permission == "READ"
    # The auth tables live in the MLflow database; the URL's percent-encoding (%40, ...)
    # survives configparser's interpolation.
    assert config.database_uri == secret["MLFLOW_BACKEND_STORE_URI"]
    assert PG_PASSWORD in config.database_uri
    assert config.authorization_function == DEFAULT_AUTHORIZATION_FUNCTION
    assert (config.admin_username, config.admin_password) == (
        MLFLOW_USERNAME,
        MLFLOW_TRACKING_PASSWORD,
    )
    # Serving and the task pods log in as that same user.
    for _, client in pods(docs):
        if component(client) in {"serving", "airflow-worker"}:
            client_env = pod_env(docs, REQUIRED_VALUES, client)
            assert client_env["MLFLOW_TRACKING_USERNAME"] == MLFLOW_USERNAME
            assert client_env["MLFLOW_TRACKING_PASSWORD"] == MLFLOW_TRACKING_PASSWORD
    # Only the MLflow pod mounts the file, and no ConfigMap holds any of it.
    for name, spec in pod_specs(docs):
        if name != f"{FULLNAME}-mlflow":
            assert all("secret" not in v for v in spec.get("volumes", [])), name
    for configmap in of_kind(docs, "ConfigMap"):
        text = json.dumps(configmap["data"])
        assert "database_uri" not in text and "default_permission" not in text


@pytest.mark.filterwarnings("ignore:starlette.middleware.wsgi is deprecated")
def test_mlflow_probes_need_no_login(rendered: dict[str, list[dict]]) -> None:
    """The basic-auth app leaves /health open, so the probes still get their 200."""
    from mlflow.server.auth import is_unprotected_route

    container = container_of(rendered["default"], "mlflow")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert is_unprotected_route(container[probe]["httpGet"]["path"]), probe
    assert not is_unprotected_route("/api/2.0/mlflow/registered-models/alias")


def test_mlflow_without_basic_auth_runs_the_plain_server(chart: helm.Chart) -> None:
    """mlflow.basicAuth.enabled=false: the server of before (no login), and no MLflow
    credential is required; an external server (mlflow.enabled=false) needs none either."""
    no_credentials = {
        key: value for key, value in copy.deepcopy(REQUIRED_VALUES).items() if key != "secrets"
    }
    values = merged(no_credentials, {"mlflow": {"basicAuth": {"enabled": False}}})
    docs = render(chart, values)
    for doc in docs:
        validate_k8s(doc, KUBE_VERSIONS[-1])
    container = container_of(docs, "mlflow")
    command = container["command"]
    assert command[:4] == ["mlflow", "server", "--backend-store-uri", "$(MLFLOW_BACKEND_STORE_URI)"]
    assert "--app-name" not in command
    assert not mlflow_auth_env(container)
    assert "MLFLOW_FLASK_SERVER_SECRET_KEY" not in {e["name"] for e in container["env"]}
    pod = find(docs, "Deployment", f"{FULLNAME}-mlflow")["spec"]["template"]["spec"]
    assert {v["name"] for v in pod["volumes"]} == {"state", "tmp", "home"}
    secret = find(docs, "Secret", FULLNAME)["stringData"]
    assert MLFLOW_AUTH_KEY not in secret
    assert not {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} & set(secret)
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    external = merged(
        no_credentials,
        {"mlflow": {"enabled": False}, "settings": {"mlflow_server_uri": "http://mlflow.ml:80"}},
    )
    assert all(component(d) != "mlflow" for d in render(chart, external))
    # An external server's password is its own business: no length rule then.
    chart.validate_schema(merged(external, SHORT_MLFLOW_PASSWORD))
    chart.validate_schema(merged(values, SHORT_MLFLOW_PASSWORD))


# --- the KubernetesExecutor ---------------------------------------------------------------


def container_of(docs: list[dict], name: str) -> dict:
    return find(docs, "Deployment", f"{FULLNAME}-{name}")["spec"]["template"]["spec"]["containers"][
        0
    ]


def mount_source(spec: dict, path: str) -> dict:
    """The volume (its source) a pod's first container has mounted over ``path``."""
    mounts = [
        m
        for m in spec["containers"][0]["volumeMounts"]
        if path == m["mountPath"] or path.startswith(m["mountPath"].rstrip("/") + "/")
    ]
    assert mounts, path
    deepest = max(mounts, key=lambda m: len(m["mountPath"]))
    (volume,) = [v for v in spec["volumes"] if v["name"] == deepest["name"]]
    return {k: v for k, v in volume.items() if k != "name"}


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("variant", KUBERNETES_VARIANTS)
def test_pod_template_is_a_valid_pod_like_the_scheduler(
    rendered: dict[str, list[dict]], variant: str, kube_version: str
) -> None:
    docs = rendered[variant]
    pod = worker_pod(docs)
    assert pod is not None
    validate_k8s(pod, kube_version)
    assert (pod["apiVersion"], pod["kind"]) == ("v1", "Pod")
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    (base,) = spec["containers"]
    # The executor fills in the container called `base`: its args are the task's command,
    # so the template sets no command (the image has no entrypoint).
    assert base["name"] == "base"
    assert "command" not in base and "args" not in base
    scheduler = find(docs, "Deployment", f"{FULLNAME}-airflow-scheduler")["spec"]["template"]
    container = scheduler["spec"]["containers"][0]
    for key in ("image", "imagePullPolicy", "envFrom"):
        assert base[key] == container[key], key
    assert base["securityContext"] == container["securityContext"]
    assert spec["securityContext"] == scheduler["spec"]["securityContext"]
    assert {"cpu", "memory"} <= set(base["resources"]["limits"])
    assert {"cpu", "memory"} <= set(base["resources"]["requests"])
    # The task pods get no API token, and carry the labels their NetworkPolicy selects.
    assert spec["automountServiceAccountToken"] is False
    assert component(pod) == "airflow-worker"
    # A task's log is written where the api-server reads it: the same folder on the same
    # volume, in the task pod, the scheduler and the api-server.
    folder = find(docs, "ConfigMap", FULLNAME)["data"]["AIRFLOW__LOGGING__BASE_LOG_FOLDER"]
    api_server = find(docs, "Deployment", f"{FULLNAME}-airflow-api-server")["spec"]["template"]
    logs = mount_source(api_server["spec"], folder)
    assert "persistentVolumeClaim" in logs
    assert mount_source(spec, folder) == logs
    assert mount_source(scheduler["spec"], folder) == logs
    # The production state volume is ReadWriteMany: task pods on any node mount it.
    if variant == "production":
        claim = find(docs, "PersistentVolumeClaim", logs["persistentVolumeClaim"]["claimName"])
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


@pytest.mark.parametrize("variant", KUBERNETES_VARIANTS)
def test_scheduler_reads_the_pod_template(rendered: dict[str, list[dict]], variant: str) -> None:
    docs = rendered[variant]
    data = find(docs, "ConfigMap", FULLNAME)["data"]
    assert data["AIRFLOW__CORE__EXECUTOR"] == "KubernetesExecutor"
    assert data["AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE"] == NAMESPACE
    path = Path(data["AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE"])
    scheduler = find(docs, "Deployment", f"{FULLNAME}-airflow-scheduler")["spec"]["template"]
    assert mount_source(scheduler["spec"], str(path)) == {"configMap": {"name": POD_TEMPLATE}}
    assert path.name in find(docs, "ConfigMap", POD_TEMPLATE)["data"]
    # The pod template rolls the scheduler when it changes.
    assert "checksum/pod-template" in scheduler["metadata"]["annotations"]


def test_pod_template_changes_roll_the_scheduler(chart: helm.Chart) -> None:
    def checksum(values: dict[str, Any]) -> str:
        scheduler = find(render(chart, values), "Deployment", f"{FULLNAME}-airflow-scheduler")
        return scheduler["spec"]["template"]["metadata"]["annotations"]["checksum/pod-template"]

    bigger = {"airflow": {"worker": {"resources": {"limits": {"memory": "6Gi"}}}}}
    assert checksum(REQUIRED_VALUES) != checksum(merged(REQUIRED_VALUES, bigger))


def test_airflow_builds_its_task_pods_from_the_template(
    rendered: dict[str, list[dict]], state: Settings
) -> None:
    """The provider's own PodGenerator (what the KubernetesExecutor calls) reads the
    template and merges a task into it; the result is a valid Pod running our image."""
    from cli.airflow_runner import use_project_airflow

    use_project_airflow(state)
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
    from kubernetes.client import ApiClient

    template = worker_pod(rendered["production"])
    args = ["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string", "{}"]
    pod = PodGenerator.construct_pod(
        dag_id="churn_training_pipeline",
        task_id="train",
        pod_id="churn-training-pipeline-train",
        try_number=1,
        kube_image=None,  # no worker_container_repository: the template's image
        date=None,
        args=args,
        pod_override_object=None,
        base_worker_pod=PodGenerator.deserialize_model_dict(template),
        namespace=NAMESPACE,
        scheduler_job_id="7",
        run_id="manual__1",
    )
    doc = ApiClient().sanitize_for_serialization(pod)
    for kube_version in KUBE_VERSIONS:
        validate_k8s(doc, kube_version)
    (base,) = doc["spec"]["containers"]
    assert base["image"] == template["spec"]["containers"][0]["image"]
    assert base["args"] == args
    assert base["envFrom"] == template["spec"]["containers"][0]["envFrom"]
    assert {m["name"] for m in base["volumeMounts"]} == {"state", "tmp", "home"}
    labels = doc["metadata"]["labels"]
    # The executor's labels come on top of the chart's (which the NetworkPolicy selects).
    assert labels["app.kubernetes.io/component"] == "airflow-worker"
    assert labels["dag_id"] == "churn_training_pipeline" and labels["airflow-worker"] == "7"


@pytest.mark.parametrize("variant", VARIANTS)
def test_rbac_lets_only_the_scheduler_create_task_pods(
    rendered: dict[str, list[dict]], variant: str
) -> None:
    docs = rendered[variant]
    scheduler = find(docs, "Deployment", f"{FULLNAME}-airflow-scheduler")["spec"]["template"]
    account = scheduler["spec"]["serviceAccountName"]
    others = {
        spec.get("serviceAccountName")
        for name, spec in pod_specs(docs)
        if name != f"{FULLNAME}-airflow-scheduler"
    }
    if variant not in KUBERNETES_VARIANTS:
        assert not of_kind(docs, "Role") and not of_kind(docs, "RoleBinding")
        assert worker_pod(docs) is None
        assert account == FULLNAME
        return
    # Its own account, which no other pod uses.
    assert account == SCHEDULER_ACCOUNT
    assert account not in others
    find(docs, "ServiceAccount", account)
    binding = find(docs, "RoleBinding", f"{FULLNAME}-airflow-pod-launcher")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
    ]
    assert binding["roleRef"]["kind"] == "Role"
    role = find(docs, "Role", binding["roleRef"]["name"])
    assert role["metadata"]["namespace"] == NAMESPACE

    def allowed(resource: str, verb: str) -> bool:
        return any(
            "" in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
            for rule in role["rules"]
        )

    for verb in ("create", "get", "list", "watch", "patch", "delete"):
        assert allowed("pods", verb), verb
    assert allowed("pods/log", "get")
    assert not allowed("secrets", "get")
    assert not allowed("pods/exec", "create")


def test_an_existing_service_account_runs_the_scheduler(chart: helm.Chart) -> None:
    docs = render(chart, merged(REQUIRED_VALUES, {"serviceAccount": {"create": False}}))
    assert not of_kind(docs, "ServiceAccount")
    binding = find(docs, "RoleBinding", f"{FULLNAME}-airflow-pod-launcher")
    assert binding["subjects"][0]["name"] == "default"
    values = {
        "serviceAccount": {"create": False, "name": "churn-runner"},
        "airflow": {"scheduler": {"serviceAccountName": "churn-launcher"}},
        "rbac": {"create": False},
    }
    docs = render(chart, merged(REQUIRED_VALUES, values))
    assert not of_kind(docs, "Role") and not of_kind(docs, "RoleBinding")
    scheduler = find(docs, "Deployment", f"{FULLNAME}-airflow-scheduler")
    assert scheduler["spec"]["template"]["spec"]["serviceAccountName"] == "churn-launcher"
    assert worker_pod(docs)["spec"]["serviceAccountName"] == "churn-runner"


@pytest.mark.parametrize("variant", KUBERNETES_VARIANTS)
def test_the_deploy_task_alone_may_upgrade_the_release(
    rendered: dict[str, list[dict]], variant: str
) -> None:
    """The deploy task's pod runs as the deployer account, whose Role covers every kind the
    chart renders (what `helm upgrade` and `helm rollback` write), Helm's release records
    (Secrets) and the rollout status, and holds every right of the Roles the chart writes
    (RBAC refuses to let it write a Role granting more than it holds)."""
    docs = rendered[variant]
    deployer_pod = worker_pod(docs, "deployer_pod_template.yaml")
    assert deployer_pod["spec"]["serviceAccountName"] == DEPLOYER
    assert deployer_pod["metadata"]["labels"]["app.kubernetes.io/component"] == "airflow-deployer"
    for name, spec in pod_specs(docs):
        if name != f"{POD_TEMPLATE}/deployer":
            assert spec.get("serviceAccountName") != DEPLOYER, name
    binding = find(docs, "RoleBinding", DEPLOYER)
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": DEPLOYER, "namespace": NAMESPACE}
    ]
    role = find(docs, "Role", binding["roleRef"]["name"])

    def granted(group: str, resource: str, verb: str) -> bool:
        return any(
            group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]
            for rule in role["rules"]
        )

    plural = {"Ingress": "ingresses", "NetworkPolicy": "networkpolicies"}
    for doc in docs:
        group = doc["apiVersion"].rpartition("/")[0]
        resource = plural.get(doc["kind"], doc["kind"].lower() + "s")
        for verb in ("get", "create", "update", "patch", "delete"):
            assert granted(group, resource, verb), (doc["kind"], verb)
    for verb in ("get", "list", "create", "update", "delete"):
        assert granted("", "secrets", verb), verb  # Helm's release records
    assert granted("apps", "deployments/status", "get")
    for other in of_kind(docs, "Role"):
        for rule in other["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        assert granted(group, resource, verb), (other["metadata"]["name"], verb)
    assert not granted("", "pods/exec", "create")


def test_the_deploy_dag_runs_its_task_in_the_deployer_pod_template(
    rendered: dict[str, list[dict]],
) -> None:
    """The path the deploy DAG names in its executor_config is where the scheduler mounts
    the deployer pod template."""
    from dags.deploy_dag import DEPLOYER_POD_TEMPLATE

    docs = rendered["default"]
    scheduler = find(docs, "Deployment", f"{FULLNAME}-airflow-scheduler")["spec"]["template"]
    folder, _, key = DEPLOYER_POD_TEMPLATE.rpartition("/")
    mount = mount_source(scheduler["spec"], folder)
    assert mount["configMap"]["name"] == POD_TEMPLATE
    assert key in find(docs, "ConfigMap", POD_TEMPLATE)["data"]


# --- NetworkPolicies ------------------------------------------------------------------------

# An address outside the cluster's pods (PostgreSQL, Redis, the Kubernetes API, ...).
EXTERNAL = "external"


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """A LabelSelector matching ``labels`` (matchLabels and matchExpressions)."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        value = labels.get(expr["key"])
        if expr["operator"] == "In" and value not in expr["values"]:
            return False
        if expr["operator"] == "NotIn" and value in expr["values"]:
            return False
        if expr["operator"] == "Exists" and value is None:
            return False
        if expr["operator"] == "DoesNotExist" and value is not None:
            return False
    return True


def peer_matches(peer: dict, other: dict[str, str] | str) -> bool:
    """A NetworkPolicyPeer matching a pod of the release's namespace (its labels) or an
    address outside the cluster (EXTERNAL). A namespaceSelector peer is another namespace."""
    if "ipBlock" in peer:
        return other == EXTERNAL
    if "namespaceSelector" in peer or other == EXTERNAL:
        return False
    return selects(peer["podSelector"], other)


def rule_allows(rules: list[dict], key: str, other: dict | str, port: int) -> bool:
    for rule in rules:
        peers = rule.get(key)
        ports = rule.get("ports")
        if peers and not any(peer_matches(p, other) for p in peers):
            continue
        if ports and not any(p.get("port") == port for p in ports):
            continue
        return True
    return False


def policies_for(docs: list[dict], labels: dict[str, str]) -> list[dict]:
    return [p for p in of_kind(docs, "NetworkPolicy") if selects(p["spec"]["podSelector"], labels)]


def can_connect(docs: list[dict], src: dict | str, dst: dict | str, port: int) -> bool:
    """Do the release's NetworkPolicies let ``src`` open ``dst``:``port`` (TCP)? Each is the
    labels of a pod in the namespace, or EXTERNAL. A pod no policy selects is not isolated."""
    if src != EXTERNAL:
        egress = [p for p in policies_for(docs, src) if "Egress" in p["spec"]["policyTypes"]]
        rules = [r for p in egress for r in p["spec"].get("egress", [])]
        if egress and not rule_allows(rules, "to", dst, port):
            return False
    if dst != EXTERNAL:
        ingress = [p for p in policies_for(docs, dst) if "Ingress" in p["spec"]["policyTypes"]]
        rules = [r for p in ingress for r in p["spec"].get("ingress", [])]
        if ingress and not rule_allows(rules, "from", src, port):
            return False
    return True


def pod_labels(docs: list[dict]) -> dict[str, dict[str, str]]:
    """Each component's pod labels (as the pods carry them, not as the chart names them)."""
    return {component(pod): pod["metadata"]["labels"] for _, pod in pods(docs)}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_pod_is_selected_by_exactly_one_network_policy(
    rendered: dict[str, list[dict]], variant: str
) -> None:
    docs = rendered[variant]
    names = []
    for name, pod in pods(docs):
        policies = policies_for(docs, pod["metadata"]["labels"])
        assert len(policies) == 1, (name, [p["metadata"]["name"] for p in policies])
        (policy,) = policies
        # Named after its component, isolating both directions.
        assert policy["metadata"]["name"] == f"{FULLNAME}-{component(pod)}"
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        names.append(policy["metadata"]["name"])
    # No policy selects nothing.
    assert sorted(names) == sorted(p["metadata"]["name"] for p in of_kind(docs, "NetworkPolicy"))


@pytest.mark.parametrize("variant", VARIANTS)
def test_network_policies_let_through_what_the_components_need(
    rendered: dict[str, list[dict]], variant: str
) -> None:
    docs = rendered[variant]
    labels = pod_labels(docs)
    kube = variant in KUBERNETES_VARIANTS
    tasks = labels["airflow-worker" if kube else "airflow-scheduler"]
    api, mlflow, serving = labels["airflow-api-server"], labels["mlflow"], labels["serving"]
    # Airflow 3 task runners report to the api-server's execution API.
    assert can_connect(docs, tasks, api, 8080)
    assert can_connect(docs, tasks, mlflow, 5000)
    assert can_connect(docs, serving, mlflow, 5000)
    for name in ("serving", "mlflow", "airflow-api-server", "airflow-scheduler", "migrations"):
        assert can_connect(docs, labels[name], EXTERNAL, 5432), name  # PostgreSQL
    assert can_connect(docs, tasks, EXTERNAL, 5432)
    if variant.startswith("production"):  # the in-chart Redis
        assert can_connect(docs, serving, labels["redis"], 6379)
        assert can_connect(docs, tasks, labels["redis"], 6379)
        assert not can_connect(docs, api, labels["redis"], 6379)
        assert not can_connect(docs, serving, EXTERNAL, 6379)
        # MLflow writes artifacts to S3 (artifactsDestination), through its own policy only.
        assert can_connect(docs, mlflow, EXTERNAL, 443)
        assert not can_connect(docs, serving, EXTERNAL, 443)
    else:
        assert can_connect(docs, serving, EXTERNAL, 6379)
        assert can_connect(docs, tasks, EXTERNAL, 6379)
    # The scheduler talks to the Kubernetes API only to run task pods.
    assert can_connect(docs, labels["airflow-scheduler"], EXTERNAL, 6443) is kube
    if kube:
        assert not can_connect(docs, labels["airflow-worker"], EXTERNAL, 6443)
        assert not can_connect(docs, labels["airflow-scheduler"], mlflow, 5000)
    # The deploy task upgrades the release (Kubernetes API) and smoke-tests serving; the
    # other task pods do neither. Under the LocalExecutor it runs in the scheduler.
    deployer = labels["airflow-deployer"] if kube else labels["airflow-scheduler"]
    assert can_connect(docs, deployer, serving, 3000)
    for peer, port in ((api, 8080), (mlflow, 5000)):
        assert can_connect(docs, deployer, peer, port)
    if kube:
        assert can_connect(docs, deployer, EXTERNAL, 6443)
        assert not can_connect(docs, labels["airflow-worker"], serving, 3000)
    # Serving is the platform's API: open to anyone on its port.
    assert can_connect(docs, EXTERNAL, serving, 3000)
    # ...and nothing else is open: not decorative.
    assert not can_connect(docs, serving, api, 8080)
    assert not can_connect(docs, labels["airflow-dag-processor"], api, 8080)
    assert not can_connect(docs, api, mlflow, 5000)
    assert not can_connect(docs, mlflow, serving, 8080)
    assert not can_connect(docs, serving, labels["airflow-scheduler"], 8974)
    assert not can_connect(docs, labels["migrations"], mlflow, 5000)
    if variant.startswith("default"):  # no ingress
        assert not can_connect(docs, EXTERNAL, mlflow, 5000)
        assert not can_connect(docs, EXTERNAL, api, 8080)
    if kube:
        for name, other in labels.items():
            assert not can_connect(docs, other, labels["airflow-worker"], 8793), name


@pytest.mark.parametrize("variant", VARIANTS)
def test_network_policy_ports_are_the_pods_ports(
    rendered: dict[str, list[dict]], variant: str
) -> None:
    """A pod-selecting rule's port is one the selected pods listen on (a Service's port
    would match nothing)."""
    docs = rendered[variant]
    listening: dict[str, set[int]] = {}
    for _, pod in pods(docs):
        ports = {p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        listening[component(pod)] = ports
    for policy in of_kind(docs, "NetworkPolicy"):
        own = listening[policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]]
        for rule in policy["spec"]["ingress"]:
            assert {p["port"] for p in rule["ports"]} <= own, policy["metadata"]["name"]
        for rule in policy["spec"]["egress"]:
            for peer in rule.get("to", []):
                if "podSelector" in peer:
                    target = listening[
                        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                    ]
                    assert {p["port"] for p in rule["ports"]} <= target, policy["metadata"]["name"]


def test_production_ingress_controller_reaches_the_routed_ports(
    rendered: dict[str, list[dict]],
) -> None:
    docs = rendered["production"]
    controller = production_values()["networkPolicy"]["ingressControllerFrom"][0]
    for name, port in (("mlflow", 5000), ("airflow-api-server", 8080)):
        policy = find(docs, "NetworkPolicy", f"{FULLNAME}-{name}")
        (rule,) = policy["spec"]["ingress"]
        assert controller in rule["from"], name
        assert rule["ports"] == [{"port": port, "protocol": "TCP"}]
    # PostgreSQL only at its subnet.
    egress = find(docs, "NetworkPolicy", f"{FULLNAME}-serving")["spec"]["egress"]
    assert {
        "ports": [{"port": 5432, "protocol": "TCP"}],
        "to": [{"ipBlock": {"cidr": "10.20.0.0/24"}}],
    } in egress


def test_network_policies_follow_the_values(chart: helm.Chart) -> None:
    assert not of_kind(
        render(chart, merged(REQUIRED_VALUES, {"networkPolicy": {"enabled": False}})),
        "NetworkPolicy",
    )
    values = merged(
        REQUIRED_VALUES,
        {
            "postgresql": {"url": "postgresql://u:p@db:6432/postgres"},
            "externalRedis": {"url": "redis://r:6380/0"},
            "networkPolicy": {
                "postgresql": {"ports": [5432], "cidrs": ["10.1.2.0/24"]},
                "servingFrom": [{"podSelector": {"matchLabels": {"role": "frontend"}}}],
            },
            "ingress": {"enabled": True, "serving": {"host": "churn.local"}},
        },
    )
    docs = render(chart, values)
    serving = find(docs, "NetworkPolicy", f"{FULLNAME}-serving")["spec"]
    # The values' ports and the URLs' own: the pods reach their servers as configured.
    assert {
        "ports": [{"port": 5432, "protocol": "TCP"}, {"port": 6432, "protocol": "TCP"}],
        "to": [{"ipBlock": {"cidr": "10.1.2.0/24"}}],
    } in serving["egress"]
    assert {
        "ports": [{"port": 6379, "protocol": "TCP"}, {"port": 6380, "protocol": "TCP"}]
    } in serving["egress"]
    # Serving limited to its clients, but exposed by the Ingress with no controller named:
    # the routed port is open (as open as the Ingress).
    assert serving["ingress"] == [{"ports": [{"port": 3000, "protocol": "TCP"}]}]
    values["networkPolicy"]["ingressControllerFrom"] = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}
    ]
    serving = find(render(chart, values), "NetworkPolicy", f"{FULLNAME}-serving")["spec"]
    (rule,) = serving["ingress"]
    deployer = {"podSelector": {"matchLabels": {
        "app.kubernetes.io/component": "airflow-deployer",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/name": "churn-platform",
    }}}  # fmt: skip
    assert rule["from"] == [
        *values["networkPolicy"]["servingFrom"],
        *values["networkPolicy"]["ingressControllerFrom"],
        deployer,  # the deploy step's smoke test
    ]
    external = merged(
        REQUIRED_VALUES,
        {
            "mlflow": {"enabled": False},
            "settings": {"mlflow_server_uri": "https://mlflow.example.com"},
        },
    )
    serving = find(render(chart, external), "NetworkPolicy", f"{FULLNAME}-serving")["spec"]
    assert {"ports": [{"port": 443, "protocol": "TCP"}]} in serving["egress"]
    # Monitoring's alert webhook: the task pods may post to its port, serving may not.
    webhook = {"secrets": {"alertWebhookUrl": "https://hooks.example.com:8443/x"}}
    docs = render(chart, merged(REQUIRED_VALUES, webhook))
    labels = pod_labels(docs)
    assert can_connect(docs, labels["airflow-worker"], EXTERNAL, 8443)
    assert not can_connect(docs, labels["serving"], EXTERNAL, 8443)
    # In an existingSecret the chart cannot see the URL: networkPolicy.alertWebhook's ports.
    existing = {"existingSecret": "my-env", "redis": {"enabled": True}}
    docs = render(chart, existing)
    assert not can_connect(docs, pod_labels(docs)["airflow-worker"], EXTERNAL, 8443)
    existing["networkPolicy"] = {"alertWebhook": {"ports": [8443], "cidrs": ["10.9.0.0/16"]}}
    docs = render(chart, existing)
    worker = find(docs, "NetworkPolicy", f"{FULLNAME}-airflow-worker")["spec"]
    assert {
        "ports": [{"port": 8443, "protocol": "TCP"}],
        "to": [{"ipBlock": {"cidr": "10.9.0.0/16"}}],
    } in worker["egress"]


# --- SQLite, a store of one host ------------------------------------------------------------

# A stand-in for the production example's existingSecret: the keys values.yaml lists.
EXISTING_SECRET = {
    "CHURN_POSTGRES_URL": "postgresql://churn:pw@pg.example.com:5432/postgres",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (
        "postgresql+psycopg2://churn:pw@pg.example.com:5432/churn_airflow"
    ),
    "MLFLOW_BACKEND_STORE_URI": "postgresql://churn:pw@pg.example.com:5432/churn_mlflow",
    "AIRFLOW__API_AUTH__JWT_SECRET": "x",
    "AIRFLOW__API__SECRET_KEY": "y",
}

CONFIGURATIONS = {
    **{variant: None for variant in VARIANTS},
    "serving-replicas": {"serving": {"replicas": 3}},
    "serving-autoscaling": {"serving": {"autoscaling": {"enabled": True}}},
    "sqlite-log-local-executor": {
        "serving": {"predictionLog": "sqlite", "replicas": 1},
        **LOCAL,
    },
    "external-mlflow": {
        "mlflow": {"enabled": False},
        "settings": {"mlflow_server_uri": "http://mlflow.ml:80"},
    },
    "scaled-airflow": {"airflow": {"apiServer": {"replicas": 2}, "parallelism": 16}},
}


def pod_env(docs: list[dict], values: dict[str, Any], pod: dict) -> dict[str, str]:
    """A pod's environment as its container gets it: envFrom (ConfigMap, Secret) then env."""
    env: dict[str, str] = {}
    container = pod["spec"]["containers"][0]
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= find(docs, "ConfigMap", source["configMapRef"]["name"])["data"]
        if "secretRef" in source:
            name = source["secretRef"]["name"]
            env |= (
                EXISTING_SECRET
                if name == values.get("existingSecret")
                else find(docs, "Secret", name)["stringData"]
            )
    env |= {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return env


def hosts(docs: list[dict], values: dict[str, Any], name: str, pod: dict) -> int:
    """How many nodes a pod's processes may run on at once (each replica, each task pod)."""
    if name == POD_TEMPLATE:
        return int(find(docs, "ConfigMap", FULLNAME)["data"]["AIRFLOW__CORE__PARALLELISM"])
    deployment = next(
        (d for d in of_kind(docs, "Deployment") if d["spec"]["template"] is pod), None
    )
    if deployment is None:  # the migration Job
        return 1
    hpa = [
        h
        for h in of_kind(docs, "HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    ]
    return hpa[0]["spec"]["maxReplicas"] if hpa else deployment["spec"]["replicas"]


def settings_of(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    with monkeypatch.context() as patch:
        for key in list(os.environ):
            if key.startswith("CHURN_"):
                patch.delenv(key)
        for key, value in env.items():
            patch.setenv(key, value)
        return get_settings()


@pytest.mark.parametrize("configuration", CONFIGURATIONS)
def test_no_sqlite_file_is_written_from_two_hosts(
    chart: helm.Chart,
    rendered: dict[str, list[dict]],
    configuration: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLite's locking (and its WAL) needs every writer on one host. For every pod the
    chart runs, the stores its processes write, as the project's Settings resolve them
    from the pod's rendered environment: a store written from more than one host (replicas,
    autoscaling, task pods) must not be a SQLite file."""
    override = CONFIGURATIONS[configuration]
    if override is None:
        values, docs = values_for(configuration), rendered[configuration]
    else:
        values = merged(REQUIRED_VALUES, override)
        docs = render(chart, values)
    kube = (
        find(docs, "ConfigMap", FULLNAME)["data"]["AIRFLOW__CORE__EXECUTOR"] == "KubernetesExecutor"
    )
    task_runner = POD_TEMPLATE if kube else f"{FULLNAME}-airflow-scheduler"
    airflow_pods = {
        f"{FULLNAME}-airflow-{c}" for c in ("api-server", "scheduler", "dag-processor", "triggerer")
    }
    writers: dict[tuple[str, str], int] = {}

    def writes(store: str, url: str, count: int) -> None:
        writers[(store, url)] = writers.get((store, url), 0) + count

    for name, pod in pods(docs):
        if component(pod) in {"redis", "migrations"}:
            continue
        env = pod_env(docs, values, pod)
        settings = settings_of(env, monkeypatch)
        storage = settings.storage
        count = hosts(docs, values, name, pod)
        runs_code = name in {f"{FULLNAME}-serving", task_runner}
        if name == f"{FULLNAME}-serving":
            backend = storage.prediction_log_backend
            log = storage.prediction_log_path("churn") if backend == "sqlite" else "postgresql"
            writes("prediction log", f"{backend}:{log}", count)
        if runs_code:
            # MLflow's clients write through the tracking server, else to its database.
            writes("mlflow", storage.mlflow_tracking_uri, count)
            writes("platform", storage.platform_database_url, count)
            online = storage.redis_url or f"sqlite:{storage.feast_dir / 'online.db'}"
            writes("feast online store", online, count)
            # The Feast registry: data/store.py moves it to PostgreSQL whenever
            # CHURN_POSTGRES_URL is set (done in parallel with this test; until then it is a
            # SQLite file under the state folder). What the chart guarantees is the
            # environment: every pod that runs pipeline code or serving has the server.
            assert env.get("CHURN_POSTGRES_URL", "").startswith("postgresql://"), name
            writes("feast registry", "postgresql (CHURN_POSTGRES_URL)", count)
        if name == f"{FULLNAME}-mlflow":
            writes("mlflow", env["MLFLOW_BACKEND_STORE_URI"], count)
        if name in airflow_pods or name == task_runner:
            assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == settings.airflow_sql_alchemy_conn
            writes("airflow", env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], count)

    stores = {store for store, _ in writers}
    assert {"mlflow", "platform", "airflow", "prediction log", "feast registry"} <= stores
    for (store, url), count in writers.items():
        if count > 1:
            assert "sqlite" not in url, (store, url, count)
            assert url.startswith(("postgresql", "redis", "http")), (store, url)
    # Several hosts write each of these in every configuration here.
    for store in ("airflow", "mlflow", "platform"):
        assert sum(c for (s, _), c in writers.items() if s == store) > 1, store


# --- values that must be refused ----------------------------------------------------------


def without(path: str) -> dict[str, Any]:
    values = copy.deepcopy(REQUIRED_VALUES)
    section, key = path.split(".")
    del values[section][key]
    return values


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "postgresql.url is required"),
        (without("postgresql.url"), "postgresql.url is required"),
        (without("externalRedis.url"), "externalRedis.url is required"),
        (without("airflow.jwtSecret"), "airflow.jwtSecret is required"),
        (
            {"existingSecret": "my-env", "secrets": {"serveApiKey": SERVE_API_KEY}},
            "secrets.serveApiKey cannot be used with existingSecret (the chart then writes no "
            "Secret): put CHURN_SERVE_API_KEY in the Secret my-env instead",
        ),
        (
            merged(REQUIRED_VALUES, {"secrets": {"mlflowServerUri": MLFLOW_URL}}),
            "secrets.mlflowServerUri is set by the chart while mlflow.enabled=true",
        ),
        (
            merged(
                REQUIRED_VALUES,
                {
                    "mlflow": {"enabled": False},
                    "settings": {"mlflow_server_uri": "http://mlflow.ml:80"},
                    "secrets": {"mlflowServerUri": MLFLOW_URL},
                },
            ),
            "set one of settings.mlflow_server_uri and secrets.mlflowServerUri",
        ),
        (
            merged(REQUIRED_VALUES, {"settings": {"state_dir": "/elsewhere"}}),
            "settings.state_dir is set by the chart: use state.mountPath",
        ),
        (
            merged(
                REQUIRED_VALUES,
                {"airflow": {"config": {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite://"}}},
            ),
            "airflow.config.AIRFLOW__DATABASE__SQL_ALCHEMY_CONN is secret",
        ),
        (
            merged(REQUIRED_VALUES, {"mlflow": {"enabled": False}}),
            "settings.mlflow_server_uri is required when mlflow.enabled=false",
        ),
        (
            merged(REQUIRED_VALUES, {"ingress": {"enabled": True}}),
            "ingress.enabled=true needs at least one",
        ),
        # MLflow's login (mlflow.basicAuth, on by default) has no default credentials.
        (
            without("secrets.mlflowTrackingUsername"),
            "secrets.mlflowTrackingUsername is required with mlflow.basicAuth.enabled (MLflow's "
            "own login; or set existingSecret, or mlflow.basicAuth.enabled=false): the in-chart "
            "MLflow server's admin user, the platform's own login (MLFLOW_TRACKING_USERNAME)",
        ),
        (
            without("secrets.mlflowTrackingPassword"),
            "secrets.mlflowTrackingPassword is required with mlflow.basicAuth.enabled",
        ),
        (
            merged(REQUIRED_VALUES, {"secrets": {"mlflowTrackingPassword": ""}}),
            "secrets.mlflowTrackingPassword is required with mlflow.basicAuth.enabled",
        ),
        (
            without("secrets.mlflowFlaskSecretKey"),
            "secrets.mlflowFlaskSecretKey is required with mlflow.basicAuth.enabled",
        ),
        (
            merged(REQUIRED_VALUES, {"serving": {"podDisruptionBudget": {"minAvailable": 1}}}),
            "set exactly one of minAvailable and maxUnavailable",
        ),
        (
            merged(
                REQUIRED_VALUES,
                {"airflow": {"config": {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"}}},
            ),
            "airflow.config.AIRFLOW__CORE__EXECUTOR is set by the chart: use airflow.executor",
        ),
        (
            merged(
                REQUIRED_VALUES,
                {"airflow": {"config": {"AIRFLOW__LOGGING__BASE_LOG_FOLDER": "/tmp/logs"}}},
            ),
            "airflow.config.AIRFLOW__LOGGING__BASE_LOG_FOLDER is set by the chart",
        ),
        (
            merged(REQUIRED_VALUES, {"settings": {"prediction_log_store": "sqlite"}}),
            "settings.prediction_log_store is set by the chart: use serving.predictionLog",
        ),
        # SQLite's WAL needs every writer on one host: one serving replica only.
        (
            merged(REQUIRED_VALUES, {"serving": {"predictionLog": "sqlite", "replicas": 2}}),
            "serving.predictionLog=sqlite takes one serving replica only",
        ),
        (
            merged(
                REQUIRED_VALUES,
                {"serving": {"predictionLog": "sqlite", "autoscaling": {"enabled": True}}},
            ),
            "serving.predictionLog=sqlite takes one serving replica only",
        ),
    ],
)
def test_rendering_refuses_incomplete_or_misplaced_values(
    chart: helm.Chart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmRenderError, match=re.escape(message)):
        chart.render(values, name=RELEASE, namespace=NAMESPACE)


def test_prediction_logs_go_to_postgresql_unless_one_replica_asks_for_sqlite(
    chart: helm.Chart, rendered: dict[str, list[dict]]
) -> None:
    """No configuration has two serving hosts writing one SQLite file."""
    for variant, docs in rendered.items():
        data = find(docs, "ConfigMap", FULLNAME)["data"]
        assert data["CHURN_PREDICTION_LOG_STORE"] == "postgresql", variant
        assert data["CHURN_PREDICTION_DATABASE"] == "churn_predictions", variant
    one = merged(REQUIRED_VALUES, {"serving": {"predictionLog": "sqlite", "replicas": 1}})
    # Task pods on other nodes would read the file: sqlite needs the LocalExecutor too.
    with pytest.raises(helm.HelmRenderError, match="cannot be read by the KubernetesExecutor"):
        render(chart, one)
    one = merged(one, LOCAL)
    docs = render(chart, one)
    assert find(docs, "ConfigMap", FULLNAME)["data"]["CHURN_PREDICTION_LOG_STORE"] == "sqlite"
    assert find(docs, "Deployment", f"{FULLNAME}-serving")["spec"]["replicas"] == 1
    assert not of_kind(docs, "HorizontalPodAutoscaler")
    # The pods' settings resolve the same store (the Secret holds CHURN_POSTGRES_URL).
    storage = StorageSettings(
        postgres_url="postgresql://u:p@db:5432/postgres",
        prediction_log_store=find(rendered["production"], "ConfigMap", FULLNAME)["data"][
            "CHURN_PREDICTION_LOG_STORE"
        ],
    )
    assert storage.prediction_log_backend == "postgresql"


def test_existing_secret_replaces_every_secret_value(chart: helm.Chart) -> None:
    docs = render(chart, {"existingSecret": "my-env", "redis": {"enabled": True}})
    assert not of_kind(docs, "Secret")
    job = find(docs, "Job", f"{FULLNAME}-migrations")
    refs = {
        env["valueFrom"]["secretKeyRef"]["name"]
        for container in job["spec"]["template"]["spec"]["containers"]
        for env in container["env"]
        if "valueFrom" in env
    }
    assert refs == {"my-env"}
    # MLflow's login: its credentials and config file are keys of the existing Secret.
    pod = find(docs, "Deployment", f"{FULLNAME}-mlflow")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"][2:4] == ["--app-name", "basic-auth"]
    keys = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for e in container["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
        and e["valueFrom"]["secretKeyRef"]["name"] == "my-env"
    }
    assert keys == {
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
    }
    config = mount_source(pod, mlflow_auth_env(container)["MLFLOW_AUTH_CONFIG_PATH"]["value"])
    assert config["secret"]["secretName"] == "my-env"
    assert [i["key"] for i in config["secret"]["items"]] == [MLFLOW_AUTH_KEY]


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"serving": {"replicas": "two"}}, "/serving/replicas"),
        ({"unknownKey": True}, "unknownKey"),
        ({"postgresql": {"url": "mysql://u:p@h/db"}}, "/postgresql/url"),
        ({"settings": {"MinF1": 0.4}}, "invalid propertyName 'MinF1'"),
        ({"settings": {"gate_min_scores": {"churn": "high"}}}, "/settings/gate_min_scores/churn"),
        ({"settings": {"gate_min_scores": 0.5}}, "/settings/gate_min_scores"),
        ({"settings": {"serve_batch_limit": {"a": 1}}}, "/settings/serve_batch_limit"),
        # null removes a default (as with --set key=null): limits need cpu and memory.
        ({"serving": {"resources": {"limits": {"memory": None}}}}, "/serving/resources/limits"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"airflow": {"executor": "CeleryExecutor"}}, "/airflow/executor"),
        ({"airflow": {"worker": {"resources": None}}}, "/airflow/worker"),
        (
            {"networkPolicy": {"postgresql": {"cidrs": ["db.example.com"]}}},
            "/networkPolicy/postgresql/cidrs/0",
        ),
        ({"networkPolicy": {"dns": {"ports": []}}}, "/networkPolicy/dns/ports"),
    ],
)
def test_schema_rejects_bad_values(chart: helm.Chart, values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(where)):
        chart.validate_schema(merged(REQUIRED_VALUES, values))
    # Rendering (what `helm install` does) applies the same schema.
    with pytest.raises(helm.HelmValuesError):
        chart.render(merged(REQUIRED_VALUES, values), name=RELEASE, namespace=NAMESPACE)


# Every secret literal of the tests: none may appear in an error message either.
ALL_SECRET_STRINGS = [*SECRET_STRINGS, *SECRET_HOMES, SHORT_PASSWORD]

# Values that put a secret where the chart must refuse it (each used by several tests).
SERVE_KEY_IN_SETTINGS = {"settings": {"serve_api_key": SERVE_API_KEY}}
WEBHOOK_IN_SETTINGS = {"settings": {"monitoring_alert_webhook_url": WEBHOOK_URL}}
POSTGRES_URL_IN_SETTINGS = {
    "settings": {"postgres_url": f"postgresql://u:{PG_PASSWORD}@db:5432/postgres"}
}
MLFLOW_URL_IN_SETTINGS = {
    "mlflow": {"enabled": False},
    "settings": {"mlflow_server_uri": MLFLOW_URL},
}
LOG_FOLDER_URL_IN_AIRFLOW_CONFIG = {
    "airflow": {"config": {"AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": MLFLOW_URL}}
}
SHORT_MLFLOW_PASSWORD = {"secrets": {"mlflowTrackingPassword": SHORT_PASSWORD}}


@pytest.mark.parametrize(
    ("values", "where", "instead"),
    [
        (SERVE_KEY_IN_SETTINGS, "serve_api_key", "secrets.serveApiKey"),
        (
            WEBHOOK_IN_SETTINGS,
            "monitoring_alert_webhook_url",
            "secrets.alertWebhookUrl",
        ),
        (
            POSTGRES_URL_IN_SETTINGS,
            "postgres_url",
            "postgresql.url",
        ),
        (
            {"settings": {"redis_url": f"redis://:{REDIS_PASSWORD}@redis:6379/0"}},
            "redis_url",
            "externalRedis.url",
        ),
        (
            MLFLOW_URL_IN_SETTINGS,
            "mlflow_server_uri",
            "secrets.mlflowServerUri",
        ),
        (  # a token as the URL's user name
            {
                "mlflow": {"enabled": False},
                "settings": {"mlflow_server_uri": f"https://{MLFLOW_TOKEN}@mlflow.example.com"},
            },
            "mlflow_server_uri",
            "secrets.mlflowServerUri",
        ),
        (  # any setting: a JSON option holding a URL with credentials
            {
                "settings": {
                    "feast_offline_store_options": json.dumps(
                        {"uri": f"s3://key:{EXTRA_SECRET}@bucket/features"}
                    )
                }
            },
            "feast_offline_store_options",
            "extraSecretEnv",
        ),
    ],
)
def test_schema_refuses_a_secret_in_settings(
    chart: helm.Chart, values: dict[str, Any], where: str, instead: str
) -> None:
    """`settings` becomes the ConfigMap: values.schema.json refuses a secret there before
    any template runs, names where it goes instead, and never repeats the value."""
    for check in (
        chart.validate_schema,
        lambda v: chart.render(v, name=RELEASE, namespace=NAMESPACE),
    ):
        with pytest.raises(helm.HelmValuesError) as raised:
            check(merged(REQUIRED_VALUES, values))
        message = str(raised.value)
        assert f"at '/settings/{where}'" in message
        assert "refused in settings (a ConfigMap)" in message
        assert instead in message
        for secret in ALL_SECRET_STRINGS:
            assert secret not in message


@pytest.mark.parametrize(
    ("values", "where", "expected"),
    [
        (
            LOG_FOLDER_URL_IN_AIRFLOW_CONFIG,
            "/airflow/config/AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER",
            "refused in airflow.config (a ConfigMap)",
        ),
        (
            {"secrets": {"alertWebhookUrl": f"hooks.example.com/{WEBHOOK_TOKEN}"}},
            "/secrets/alertWebhookUrl",
            "an http:// or https:// URL",
        ),
        (
            {"secrets": {"mlflowServerUri": f"mlflow.example.com?token={MLFLOW_TOKEN}"}},
            "/secrets/mlflowServerUri",
            "an http:// or https:// URL",
        ),
        (
            {"postgresql": {"url": f"mysql://u:{PG_PASSWORD}@db/churn"}},
            "/postgresql/url",
            "a postgresql:// URL",
        ),
        (
            {"externalRedis": {"url": f"memcached://:{REDIS_PASSWORD}@cache:11211"}},
            "/externalRedis/url",
            "a redis:// or rediss:// URL",
        ),
        ({"secrets": {"apiKey": SERVE_API_KEY}}, "/secrets", "'apiKey' not allowed"),
        (
            SHORT_MLFLOW_PASSWORD,
            "/secrets/mlflowTrackingPassword",
            "at least 12 characters: the in-chart MLflow admin password (mlflow.basicAuth.enabled)",
        ),
    ],
)
def test_schema_refuses_misplaced_or_malformed_secrets_without_echoing_them(
    chart: helm.Chart, values: dict[str, Any], where: str, expected: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as raised:
        chart.validate_schema(merged(REQUIRED_VALUES, values))
    message = str(raised.value)
    assert f"at '{where}'" in message and expected in message
    for secret in ALL_SECRET_STRINGS:
        assert secret not in message


@pytest.fixture(scope="module")
def chart_without_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[helm.Chart]:
    """The chart as `helm install --skip-schema-validation` renders it."""
    copied = tmp_path_factory.mktemp("chart") / "churn-platform"
    shutil.copytree(CHART_DIR, copied)
    (copied / "values.schema.json").unlink()
    with helm.Chart.load(copied) as loaded:
        yield loaded


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            SERVE_KEY_IN_SETTINGS,
            "settings.serve_api_key is secret and settings go to a ConfigMap: use "
            "secrets.serveApiKey (the Secret) or existingSecret",
        ),
        (
            WEBHOOK_IN_SETTINGS,
            "settings.monitoring_alert_webhook_url is secret and settings go to a ConfigMap: "
            "use secrets.alertWebhookUrl",
        ),
        (
            POSTGRES_URL_IN_SETTINGS,
            "settings.postgres_url is secret and settings go to a ConfigMap: use postgresql.url",
        ),
        (
            MLFLOW_URL_IN_SETTINGS,
            "settings.mlflow_server_uri holds a URL with credentials, a secret",
        ),
        (
            LOG_FOLDER_URL_IN_AIRFLOW_CONFIG,
            "airflow.config.AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER holds a URL with credentials",
        ),
        (
            SHORT_MLFLOW_PASSWORD,
            "secrets.mlflowTrackingPassword must be at least 12 characters",
        ),
    ],
)
def test_templates_refuse_a_secret_in_the_configmap_without_the_schema(
    chart_without_schema: helm.Chart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmRenderError, match=re.escape(message)) as raised:
        chart_without_schema.render(
            merged(REQUIRED_VALUES, values), name=RELEASE, namespace=NAMESPACE
        )
    for secret in ALL_SECRET_STRINGS:
        assert secret not in str(raised.value)


def test_schema_accepts_the_shipped_values(chart: helm.Chart) -> None:
    chart.validate_schema(REQUIRED_VALUES)
    chart.validate_schema(production_values())


# --- the image ----------------------------------------------------------------------------


def test_dockerfile_builds_the_project_image() -> None:
    text = DOCKERFILE.read_text()
    instructions = [
        line.split(None, 1) for line in text.splitlines() if line and not line.startswith("#")
    ]
    froms = [rest for op, *rest in instructions if op == "FROM"]
    assert all(rest[0].startswith("${PYTHON_IMAGE}") for rest in froms)
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    install_lock = text.index("pip install -r requirements.txt")
    install_project = text.index("pip install --no-deps .")
    assert install_lock < install_project
    assert (ROOT / "requirements.txt").is_file()
    # The runtime user is the uid the chart's pods run as.
    user = next(rest[0] for op, *rest in reversed(instructions) if op == "USER")
    assert user == "${UID}:${GID}"
    assert "ARG UID=10001" in text
    assert (
        yaml.safe_load((CHART_DIR / "values.yaml").read_text())["podSecurityContext"]["runAsUser"]
        == 10001
    )
    # The console script the image's CMD runs is declared by the project.
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^churn = "cli\.main:main"$', pyproject, re.MULTILINE)


def test_settings_keys_are_the_settings_environment_names(chart: helm.Chart) -> None:
    """values.schema.json accepts exactly the settings' names, so a typo or an old name
    (batch_limit, now serve_batch_limit) is refused instead of ignored by the pods."""
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    accepted = schema["properties"]["settings"]["propertyNames"]["enum"]
    assert sorted(accepted) == sorted(
        name.removeprefix("CHURN_").lower() for name in environment_names()
    )
    with pytest.raises(helm.HelmValuesError, match=r"invalid propertyName 'batch_limit'"):
        chart.render(
            merged(REQUIRED_VALUES, {"settings": {"batch_limit": 5}}),
            name=RELEASE,
            namespace=NAMESPACE,
        )
