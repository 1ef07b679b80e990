"""CHURN_POSTGRES_URL moves MLflow and Airflow to a real PostgreSQL server, no code changes."""

import os
import subprocess
import sys
import uuid

import mlflow
import psycopg2
import pytest
from mlflow.tracking import MlflowClient
from sklearn.dummy import DummyClassifier

from core.settings import Settings, get_settings
from models.churn.spec import SPEC as CHURN
from models.tracking import configure_mlflow

pytestmark = pytest.mark.slow


def unique_database(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def query(settings, database: str, sql: str) -> list[tuple]:
    with (
        psycopg2.connect(settings.storage.postgres_database_url(database)) as conn,
        conn.cursor() as cur,
    ):
        cur.execute(sql)
        return cur.fetchall()


def test_mlflow_tracks_and_registers_in_postgres(state, postgres_url, monkeypatch):
    monkeypatch.setenv("CHURN_POSTGRES_URL", postgres_url)
    monkeypatch.setenv("CHURN_MLFLOW_DATABASE", unique_database("churn_mlflow_test"))
    settings = get_settings()
    assert settings.storage.mlflow_tracking_uri.startswith("postgresql+psycopg2://")
    client = configure_mlflow(settings, CHURN.experiment)
    with mlflow.start_run() as run:
        mlflow.log_metric("f1", 0.5)
        model = DummyClassifier().fit([[0], [1]], [0, 1])
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=[])
    version = mlflow.register_model(info.model_uri, CHURN.registered_model).version
    client.set_registered_model_alias(CHURN.registered_model, "champion", version)
    assert MlflowClient().get_run(run.info.run_id).data.metrics["f1"] == 0.5
    rows = query(
        settings,
        settings.storage.mlflow_database,
        "SELECT alias, version FROM registered_model_aliases",
    )
    assert rows == [("champion", int(version))]


def test_airflow_runs_a_dag_on_postgres(state, postgres_url, tmp_path):
    database = unique_database("churn_airflow_test")
    env = {
        **os.environ,
        "CHURN_POSTGRES_URL": postgres_url,
        "CHURN_AIRFLOW_DATABASE": database,
        "CHURN_AIRFLOW_HOME_DIR": str(tmp_path / "airflow"),
        "PYTHONWARNINGS": "ignore",
    }
    # A separate process: Airflow binds to one metadata database per process.
    code = (
        "from cli.airflow_runner import migrate_airflow_db, run_dag\n"
        "from core.settings import get_settings\n"
        "s = get_settings(); migrate_airflow_db(s)\n"
        "print('STATE', run_dag('churn_monitoring', s).state)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "STATE success" in done.stdout
    settings = Settings(storage={"postgres_url": postgres_url})
    rows = query(settings, database, "SELECT dag_id, state FROM dag_run")
    assert rows == [("churn_monitoring", "success")]
