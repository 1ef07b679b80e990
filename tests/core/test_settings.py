"""One settings object, from the environment; embedded defaults, servers by configuration."""

import pytest
from pydantic import ValidationError

from core.settings import PROJECT_ROOT, get_settings
from data.store import feature_store_config


def test_defaults_keep_all_state_in_one_folder_with_embedded_back_ends(monkeypatch):
    for name in (
        "CHURN_STATE_DIR",
        "CHURN_REDIS_URL",
        "CHURN_POSTGRES_URL",
        "CHURN_MLFLOW_SERVER_URI",
        "CHURN_AIRFLOW_HOME_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = get_settings()
    assert settings.state_dir == PROJECT_ROOT / ".state"
    assert settings.mlflow_tracking_uri == f"sqlite:///{settings.state_dir}/mlflow/mlflow.db"
    assert settings.airflow_sql_alchemy_conn.startswith(f"sqlite:///{settings.state_dir}/")
    feast = feature_store_config(settings)
    assert feast["online_store"] == {
        "type": "sqlite",
        "path": f"{settings.state_dir}/feast/online.db",
    }
    assert feast["registry"]["path"].startswith(f"sqlite:///{settings.state_dir}/")
    for path in (settings.raw_orders_path, settings.prediction_log_path, settings.reports_dir):
        assert settings.state_dir in path.parents


def test_server_urls_switch_the_back_ends(monkeypatch):
    monkeypatch.setenv("CHURN_REDIS_URL", "redis://cache:6379/1")
    monkeypatch.setenv("CHURN_POSTGRES_URL", "postgresql://u:p@db:5432/postgres")
    settings = get_settings()
    assert feature_store_config(settings)["online_store"] == {
        "type": "redis",
        "connection_string": "cache:6379,db=1",
    }
    assert settings.mlflow_tracking_uri == "postgresql+psycopg2://u:p@db:5432/churn_mlflow"
    assert settings.airflow_sql_alchemy_conn == "postgresql+psycopg2://u:p@db:5432/churn_airflow"
    assert (
        settings.airflow_env()["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        == settings.airflow_sql_alchemy_conn
    )


def test_invalid_settings_are_refused_clearly(monkeypatch):
    monkeypatch.setenv("CHURN_PSI_MODERATE", "0.3")
    with pytest.raises(ValidationError, match="CHURN_PSI_MODERATE"):
        get_settings()
    monkeypatch.delenv("CHURN_PSI_MODERATE")
    monkeypatch.setenv("CHURN_SERVE_PORT", "not-a-port")
    with pytest.raises(ValidationError, match="serve_port"):
        get_settings()
