"""One settings object, from the environment; embedded defaults, servers by configuration."""

from dataclasses import replace

import pytest

from core.settings import PROJECT_ROOT, InvalidSettings, get_settings
from data.store import feature_store_config
from models.churn.spec import SPEC as CHURN


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
    assert settings.storage.state_dir == PROJECT_ROOT / ".state"
    assert (
        settings.storage.mlflow_tracking_uri
        == f"sqlite:///{settings.storage.state_dir}/mlflow/mlflow.db"
    )
    assert settings.airflow_sql_alchemy_conn.startswith(f"sqlite:///{settings.storage.state_dir}/")
    feast = feature_store_config(settings)
    assert feast["online_store"] == {
        "type": "sqlite",
        "path": f"{settings.storage.state_dir}/feast/online.db",
    }
    assert feast["registry"]["path"].startswith(f"sqlite:///{settings.storage.state_dir}/")
    for path in (
        settings.storage.raw_orders_path,
        settings.storage.prediction_log_path("churn"),
        settings.storage.reports_dir,
    ):
        assert settings.storage.state_dir in path.parents


def test_server_urls_switch_the_back_ends(monkeypatch):
    monkeypatch.setenv("CHURN_REDIS_URL", "redis://cache:6379/1")
    monkeypatch.setenv("CHURN_POSTGRES_URL", "postgresql://u:p@db:5432/postgres")
    settings = get_settings()
    assert feature_store_config(settings)["online_store"] == {
        "type": "redis",
        "connection_string": "cache:6379,db=1",
    }
    assert settings.storage.mlflow_tracking_uri == "postgresql+psycopg2://u:p@db:5432/churn_mlflow"
    assert settings.airflow_sql_alchemy_conn == "postgresql+psycopg2://u:p@db:5432/churn_airflow"
    assert (
        feature_store_config(settings)["registry"]["path"]
        == "postgresql+psycopg2://u:p@db:5432/churn_feast_registry"
    )
    assert (
        settings.airflow_env()["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        == settings.airflow_sql_alchemy_conn
    )


def test_invalid_settings_are_refused_clearly(monkeypatch):
    monkeypatch.setenv("CHURN_GATE_MIN_SCORES", '{"churn": "high"}')
    with pytest.raises(InvalidSettings, match=r"CHURN_GATE_MIN_SCORES \(settings.gate_min_scores"):
        get_settings()
    monkeypatch.delenv("CHURN_GATE_MIN_SCORES")
    monkeypatch.setenv("CHURN_SERVE_PORT", "not-a-port")
    with pytest.raises(InvalidSettings, match=r"CHURN_SERVE_PORT \(settings.serving.port\)"):
        get_settings()


def test_gate_min_scores_replace_the_spec_minimum_per_model(monkeypatch):
    monkeypatch.delenv("CHURN_GATE_MIN_SCORES", raising=False)
    assert get_settings().gate_min_scores == {}
    assert CHURN.minimum(get_settings()) == CHURN.min_score == 0.75
    monkeypatch.setenv("CHURN_GATE_MIN_SCORES", '{"churn": 0.55, "other": 0.1}')
    settings = get_settings()
    assert settings.gate_min_scores == {"churn": 0.55, "other": 0.1}
    assert CHURN.minimum(settings) == 0.55


def test_psi_grades_out_of_order_are_refused_by_the_spec():
    # The PSI grades moved from the settings to each model's spec.
    with pytest.raises(ValueError, match="psi_moderate < psi_significant"):
        replace(CHURN, psi_moderate=0.3, psi_significant=0.25)
    with pytest.raises(ValueError, match="psi_moderate < psi_significant"):
        replace(CHURN, psi_moderate=0.0)
    assert replace(CHURN, psi_moderate=0.2, psi_significant=0.3).psi_significant == 0.3
