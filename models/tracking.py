"""Pointing MLflow at the project's tracking store and model registry."""

from __future__ import annotations

import fcntl

import mlflow
from mlflow.tracking import MlflowClient

from core.backends import ensure_postgres_database
from core.settings import Settings

# MLflow's UI opens an experiment on the page its kind names; without the tag MLflow 3
# guesses, and an experiment of classic training runs can open on the GenAI traces page.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
CUSTOM_MODEL_DEVELOPMENT = "custom_model_development"


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
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        artifact_location = (
            None
            if settings.storage.mlflow_server_uri
            else settings.storage.mlflow_artifact_location
        )
        client.create_experiment(
            experiment_name,
            artifact_location=artifact_location,
            tags={EXPERIMENT_KIND_TAG: CUSTOM_MODEL_DEVELOPMENT},
        )
    elif EXPERIMENT_KIND_TAG not in experiment.tags:  # made before the tag was set here
        client.set_experiment_tag(
            experiment.experiment_id, EXPERIMENT_KIND_TAG, CUSTOM_MODEL_DEVELOPMENT
        )
    mlflow.set_experiment(experiment_name)
    return client
