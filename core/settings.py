"""The one settings object of the platform, read from the environment (prefix ``CHURN_``).

Every entry point (make targets, DAG tasks, the BentoML service, tests) builds its
configuration from :func:`get_settings`. Defaults need no server: all state lives under
``CHURN_STATE_DIR`` with embedded back ends (SQLite for the Feast online store and
registry, MLflow and Airflow; local Delta tables and artifacts). Setting
``CHURN_REDIS_URL`` moves Feast's online store to Redis; setting ``CHURN_POSTGRES_URL``
moves MLflow's and Airflow's back ends to PostgreSQL (one database each).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FEATURE_REPO_DIR = PROJECT_ROOT / "feature_repo"
DAGS_DIR = PROJECT_ROOT / "dags"


class Settings(BaseSettings):
    """Typed configuration. Field ``foo`` is read from ``CHURN_FOO``."""

    model_config = SettingsConfigDict(env_prefix="CHURN_", extra="ignore", frozen=True)

    # --- where state lives and which servers back it -----------------------------------
    state_dir: Path = Field(
        default=PROJECT_ROOT / ".state",
        description="Folder holding every piece of runtime state (git-ignored).",
    )
    redis_url: str | None = Field(
        default=None,
        description="redis://host:port/db. Set: Feast's online store is Redis; unset: SQLite.",
    )
    postgres_url: str | None = Field(
        default=None,
        description=(
            "postgresql://user:pass@host:port. Set: MLflow and Airflow keep their metadata in "
            "PostgreSQL databases named by mlflow_database and airflow_database; unset: SQLite."
        ),
    )
    feature_store_yaml: Path = Field(
        default=FEATURE_REPO_DIR / "feature_store.yaml",
        description=(
            "Where the Feast configuration rendered from these settings is written. The "
            "default is where the feast CLI looks; a container with a read-only source tree "
            "points it under the state folder."
        ),
    )
    mlflow_database: str = "churn_mlflow"
    airflow_database: str = "churn_airflow"
    mlflow_server_uri: str | None = Field(
        default=None,
        description="A remote MLflow tracking server (http://...). Wins over the back ends.",
    )

    # --- the model and its features ------------------------------------------------------
    feast_project: str = "churn"
    feature_ttl_days: int = 90
    gate_min_scores: dict[str, float] = Field(
        default_factory=dict,
        description=(
            'Per model (JSON, e.g. {"churn": 0.5}): replaces the spec\'s min_score, the gate '
            "metric a first version must reach to become champion."
        ),
    )
    churn_horizon_days: int = Field(30, description="No order within this many days = churned.")
    random_seed: int = 7

    # --- simulation -----------------------------------------------------------------------
    sim_customers: int = 3000
    sim_days: int = 150

    # --- monitoring (the PSI grades are the model spec's) -------------------------------------
    drift_min_rows: int = Field(200, description="Fewer logged predictions: no drift verdict.")
    drift_window_hours: int = Field(24, description="First monitoring run: look this far back.")

    # --- serving --------------------------------------------------------------------------
    serve_host: str = "127.0.0.1"
    serve_port: int = 3000
    batch_limit: int = Field(1000, description="Most customers in one /predict/batch call.")

    # --- airflow --------------------------------------------------------------------------
    airflow_home_dir: Path | None = Field(
        default=None,
        description="AIRFLOW_HOME for this project; default: <state_dir>/airflow.",
    )
    airflow_host: str = "127.0.0.1"
    airflow_port: int = 8080

    # --- serving (issue 4) -------------------------------------------------------------------
    serve_api_key: SecretStr | None = Field(
        default=None,
        description="Set: /predict* need `Authorization: Bearer <key>`; unset: no auth.",
    )
    serve_max_body_bytes: int = Field(
        65536, ge=256, description="Larger request bodies get 413 before they are parsed."
    )
    serve_online_timeout_seconds: float = Field(
        0.5, gt=0, description="Redis socket timeout of the online lookup (then 503)."
    )
    serve_retry_after_seconds: int = Field(
        1, ge=1, description="Retry-After sent with a 503 (online store or model unavailable)."
    )
    model_refresh_seconds: float = Field(
        10.0, gt=0, description="How often serving re-reads the registry aliases (model swap)."
    )
    ab_mode: Literal["off", "split", "shadow"] = Field(
        "off",
        description=(
            "off: champion only; split: ab_challenger_weight of customers get the challenger; "
            "shadow: the challenger scores every request, the champion answers."
        ),
    )
    ab_challenger_weight: float = Field(
        0.1, ge=0.0, le=1.0, description="Share of customers routed to the challenger (split)."
    )
    ab_salt: str = Field(
        "churn-ab-1", description="Salt of the sticky customer hash; change it to reshuffle."
    )

    @field_validator("state_dir")
    @classmethod
    def _absolute_state_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    # --- derived paths (pure: nothing is created here) --------------------------------------
    @property
    def delta_dir(self) -> Path:
        return self.state_dir / "delta"

    @property
    def raw_orders_path(self) -> Path:
        return self.delta_dir / "raw_orders"

    @property
    def customer_features_path(self) -> Path:
        return self.delta_dir / "customer_features"

    @property
    def churn_labels_path(self) -> Path:
        return self.delta_dir / "churn_labels"

    @property
    def landing_dir(self) -> Path:
        """Where raw daily batches land before validation (one file per day)."""
        return self.state_dir / "landing"

    @property
    def quarantine_dir(self) -> Path:
        return self.state_dir / "quarantine"

    @property
    def feast_dir(self) -> Path:
        return self.state_dir / "feast"

    @property
    def gx_dir(self) -> Path:
        """Great Expectations' run-time folder (validation results, Data Docs)."""
        return self.state_dir / "gx"

    @property
    def mlflow_dir(self) -> Path:
        return self.state_dir / "mlflow"

    @property
    def airflow_home(self) -> Path:
        return self.airflow_home_dir or self.state_dir / "airflow"

    def prediction_log_path(self, model: str) -> Path:
        """The prediction log of one model (see serving/prediction_log.py)."""
        return self.state_dir / "serving" / model / "predictions.db"

    def delta_table_path(self, table: str) -> Path:
        """Where the Delta table ``table`` lives."""
        return self.delta_dir / table

    @property
    def reports_dir(self) -> Path:
        return self.state_dir / "reports"

    @property
    def demo_summary_path(self) -> Path:
        return self.reports_dir / "demo_summary.json"

    # --- derived back-end addresses -----------------------------------------------------------
    def postgres_database_url(self, database: str, driver: str = "postgresql") -> str:
        """The PostgreSQL URL with its path replaced by ``database``."""
        if not self.postgres_url:
            raise ValueError("CHURN_POSTGRES_URL is not set")
        parts = urlsplit(self.postgres_url)
        scheme = driver if parts.scheme.startswith("postgres") else parts.scheme
        return urlunsplit((scheme, parts.netloc, f"/{database}", parts.query, ""))

    @property
    def mlflow_tracking_uri(self) -> str:
        if self.mlflow_server_uri:
            return self.mlflow_server_uri
        if self.postgres_url:
            # SQLAlchemy 2.1 defaults postgresql:// to psycopg 3; the driver here is psycopg2.
            return self.postgres_database_url(self.mlflow_database, driver="postgresql+psycopg2")
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def mlflow_artifact_location(self) -> str:
        return (self.mlflow_dir / "artifacts").as_uri()

    @property
    def airflow_sql_alchemy_conn(self) -> str:
        if self.postgres_url:
            return self.postgres_database_url(self.airflow_database, driver="postgresql+psycopg2")
        return f"sqlite:///{self.airflow_home / 'airflow.db'}"

    def airflow_env(self) -> dict[str, str]:
        """Environment that points Airflow at this project's DAGs and metadata database."""
        return {
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.airflow_sql_alchemy_conn,
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__API__HOST": self.airflow_host,
            "AIRFLOW__API__PORT": str(self.airflow_port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": (
                f"http://{self.airflow_host}:{self.airflow_port}/execution/"
            ),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }


def get_settings() -> Settings:
    """The settings, built from the environment (``CHURN_*``) and nothing else.

    Every entry point (CLI command, DAG task, server, Feast definition file) calls this
    once; there is no override channel, so every part of a process, Feast's definition
    files included, sees the same settings.
    """
    return Settings()
