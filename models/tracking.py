"""Pointing MLflow at the project's tracking store and model registry."""

from __future__ import annotations

import fcntl

import mlflow
from mlflow.tracking import MlflowClient

from core.backends import ensure_postgres_database
from core.settings import Settings

# The experiment's kind, as MLflow names it: classic model training, not GenAI. MLflow's
# experiment-type selector shows it, and UIs without the GenAI / Model training switch open
# the experiment on the page it names.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
CUSTOM_MODEL_DEVELOPMENT = "custom_model_development"
# MLflow 3.17's UI opens every experiment in the mode of its GenAI / Model training switch,
# kept in the browser and GenAI in a new one (the Overview of traces, whatever the tag
# says). A link that names the mode opens the experiment on its runs: the links the platform
# prints carry it.
MODEL_TRAINING_VIEW = "workflowType=machine_learning"


_READY_SQLITE_STORES: set[str] = set()  # opened (and so migrated) by this process


def configure_mlflow(settings: Settings, experiment_name: str | None = None) -> MlflowClient:
    """Set the tracking/registry URI and, if named, the experiment (made with our artifact root).

    Registry work (aliases, versions) names no experiment.
    """
    if settings.storage.postgres_url and not settings.storage.mlflow_server_uri:
        ensure_postgres_database(settings, settings.storage.mlflow_database)
    elif not settings.storage.mlflow_server_uri:
        settings.storage.mlflow_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.storage.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.storage.mlflow_tracking_uri)
    uri = settings.storage.mlflow_tracking_uri
    if uri.startswith("sqlite:") and uri not in _READY_SQLITE_STORES:
        # A new SQLite store is migrated by whichever process opens it first (a client
        # opens its store when made); parallel Airflow tasks opening it at once collide in
        # alembic ("_alembic_tmp_... already exists"), so the first opening of the store in
        # each process is serialized.
        with open(settings.storage.mlflow_dir / ".open.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            client = MlflowClient()
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
        _READY_SQLITE_STORES.add(uri)
    client = MlflowClient()
    if experiment_name is None:
        return client
    ensure_experiment(client, settings, experiment_name)
    mlflow.set_experiment(experiment_name)
    return client


def ensure_experiment(client: MlflowClient, settings: Settings, name: str) -> str:
    """The id of experiment ``name``, made (with our artifact root) if missing, and marked as
    model training (:data:`EXPERIMENT_KIND_TAG`)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        artifact_location = (
            None
            if settings.storage.mlflow_server_uri
            else settings.storage.mlflow_artifact_location
        )
        return client.create_experiment(
            name,
            artifact_location=artifact_location,
            tags={EXPERIMENT_KIND_TAG: CUSTOM_MODEL_DEVELOPMENT},
        )
    if EXPERIMENT_KIND_TAG not in experiment.tags:  # made before the tag was set here
        client.set_experiment_tag(
            experiment.experiment_id, EXPERIMENT_KIND_TAG, CUSTOM_MODEL_DEVELOPMENT
        )
    return experiment.experiment_id


def runs_page(ui_url: str, experiment_id: str) -> str:
    """The page of MLflow's UI at ``ui_url`` listing an experiment's runs (not its GenAI
    overview, which a new browser would open otherwise)."""
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{MODEL_TRAINING_VIEW}"


def experiment_links(settings: Settings, specs, ui_url: str) -> list[tuple[str, str]]:
    """(what, link) for MLflow's UI at ``ui_url``: the experiments list, then each spec's
    training and monitoring experiments (made if missing), each opening on its runs."""
    client = configure_mlflow(settings)
    base = ui_url.rstrip("/")
    links = [("experiments", f"{base}/#/experiments?{MODEL_TRAINING_VIEW}")]
    for spec in specs:
        for name, what in (
            (spec.experiment, "training"),
            (spec.monitoring_experiment, "monitoring"),
        ):
            experiment_id = ensure_experiment(client, settings, name)
            links.append((f"{name} ({what} runs)", runs_page(base, experiment_id)))
    return links
