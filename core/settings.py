"""The one settings object of the platform, read from the environment (prefix ``CHURN_``).

Every entry point (make targets, DAG tasks, the BentoML service, tests) builds its
configuration once with :func:`get_settings` and passes it down. The settings are one
object in nested groups, each read from its own environment prefix:

=====================  =========================  ==========================================
group                  environment prefix         what it holds
=====================  =========================  ==========================================
``settings``           ``CHURN_``                 the feature store project, gate minimums,
                                                  the churn horizon, the random seed
``settings.storage``   ``CHURN_``                 the state folder, Redis and PostgreSQL
                                                  servers, MLflow's database or server
``settings.serving``   ``CHURN_SERVE_``           the prediction service and its A/B split
``settings.airflow``   ``CHURN_AIRFLOW_``         Airflow's home, address and database
``settings.monitoring`` ``CHURN_MONITORING_``     the drift checks
``settings.simulation`` ``CHURN_SIM_``            the demo's order-event simulator
=====================  =========================  ==========================================

So ``settings.serving.port`` is ``CHURN_SERVE_PORT`` and ``settings.storage.redis_url`` is
``CHURN_REDIS_URL``; :func:`environment_names` lists every name. Defaults need no server:
all state lives under ``CHURN_STATE_DIR`` with embedded back ends (SQLite for the Feast
online store and registry, MLflow and Airflow; local Delta tables and artifacts). Setting
``CHURN_REDIS_URL`` moves Feast's online store to Redis; setting ``CHURN_POSTGRES_URL``
moves MLflow's, Airflow's and Feast's registry back ends to PostgreSQL (one database each).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.logs import python_warnings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FEATURE_REPO_DIR = PROJECT_ROOT / "feature_repo"
DAGS_DIR = PROJECT_ROOT / "dags"


def _group(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", frozen=True)


class StorageSettings(BaseSettings):
    """Where state lives and which servers back it. Field ``foo`` is ``CHURN_FOO``."""

    model_config = _group("CHURN_")

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
            "PostgreSQL databases named by mlflow_database and airflow.database; unset: SQLite."
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
    platform_database: str = Field(
        "churn_platform",
        description="PostgreSQL database of the platform's own records (with CHURN_POSTGRES_URL).",
    )
    mlflow_server_uri: str | None = Field(
        default=None,
        description="A remote MLflow tracking server (http://...). Wins over the back ends.",
    )
    prediction_log_store: Literal["auto", "sqlite", "postgresql"] = Field(
        "auto",
        description=(
            "Where every served prediction is logged. auto: PostgreSQL (database "
            "prediction_database) when CHURN_POSTGRES_URL is set, else one SQLite file per "
            "model under the state folder. SQLite takes writers on one host only."
        ),
    )
    prediction_database: str = Field(
        "churn_predictions",
        description="PostgreSQL database of the prediction logs (with CHURN_POSTGRES_URL).",
    )
    feast_registry_database: str = Field(
        "churn_feast_registry",
        description=(
            "PostgreSQL database of Feast's SQL registry (with CHURN_POSTGRES_URL; otherwise "
            "the registry is the SQLite file <state_dir>/feast/registry.db, one host only)."
        ),
    )
    feast_batch_engine: Literal["local", "ray.engine", "spark.engine", "k8s"] = Field(
        "local",
        description=(
            "Feast's batch (materialization) engine, its `batch_engine.type`: local runs in "
            "this process; ray.engine, spark.engine and k8s are Feast's own engines."
        ),
    )
    feast_batch_engine_options: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "JSON object of the engine's own options, written under `batch_engine` next to "
            'its type (e.g. {"ray_address": "ray://head:10001", "max_workers": 4}); Feast '
            "refuses a key its engine does not know."
        ),
    )
    feast_offline_store: Literal["duckdb", "ray"] = Field(
        "duckdb",
        description=(
            "Feast's offline store, its `offline_store.type`: duckdb honours the Delta log; "
            "ray reads the table folder's Parquet files (right only on a vacuumed table)."
        ),
    )
    feast_offline_store_options: dict[str, Any] = Field(
        default_factory=dict,
        description="JSON object of the offline store's own options (under `offline_store`).",
    )

    @model_validator(mode="after")
    def _postgres_log_needs_a_server(self) -> StorageSettings:
        if self.prediction_log_store == "postgresql" and not self.postgres_url:
            raise ValueError(
                "CHURN_PREDICTION_LOG_STORE=postgresql needs CHURN_POSTGRES_URL (the server)"
            )
        return self

    @field_validator("feast_batch_engine_options", "feast_offline_store_options")
    @classmethod
    def _type_is_its_own_setting(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "type" in value:
            raise ValueError(
                "the type is CHURN_FEAST_BATCH_ENGINE / CHURN_FEAST_OFFLINE_STORE, not an option"
            )
        return value

    @field_validator("state_dir")
    @classmethod
    def _absolute_state_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    # --- derived paths (pure: nothing is created here) --------------------------------------
    @property
    def delta_dir(self) -> Path:
        return self.state_dir / "delta"

    def delta_table_path(self, table: str) -> Path:
        """Where the Delta table ``table`` lives."""
        return self.delta_dir / table

    @property
    def raw_orders_path(self) -> Path:
        return self.delta_table_path("raw_orders")

    @property
    def customer_features_path(self) -> Path:
        return self.delta_table_path("customer_features")

    @property
    def landing_dir(self) -> Path:
        """Where raw daily batches land before validation (one file per source and day)."""
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

    def prediction_log_path(self, model: str) -> Path:
        """The prediction log of one model (see serving/prediction_log.py)."""
        return self.state_dir / "serving" / model / "predictions.db"

    @property
    def locks_dir(self) -> Path:
        """The pipelines' file locks (core.locks), when PostgreSQL does not hold them."""
        return self.state_dir / "locks"

    @property
    def reports_dir(self) -> Path:
        return self.state_dir / "reports"

    @property
    def evidently_workspace_dir(self) -> Path:
        """Evidently's local workspace: one project per model (``make evidently-ui``)."""
        return self.state_dir / "evidently"

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
    def platform_database_url(self) -> str:
        """SQLAlchemy URL of the platform's own records (retraining requests and decisions):
        PostgreSQL when configured (several processes write them), else SQLite."""
        if self.postgres_url:
            return self.postgres_database_url(self.platform_database, driver="postgresql+psycopg2")
        return f"sqlite:///{self.state_dir / 'platform.db'}"

    @property
    def prediction_log_backend(self) -> Literal["sqlite", "postgresql"]:
        """The store the prediction logs are written to, ``auto`` resolved."""
        if self.prediction_log_store == "auto":
            return "postgresql" if self.postgres_url else "sqlite"
        return self.prediction_log_store

    @property
    def prediction_database_url(self) -> str:
        """SQLAlchemy URL of the PostgreSQL prediction-log database."""
        return self.postgres_database_url(self.prediction_database, driver="postgresql+psycopg2")

    @property
    def feast_registry_url(self) -> str:
        """SQLAlchemy URL of Feast's SQL registry: PostgreSQL when configured (pods on several
        hosts read and write it), else a SQLite file under the state folder."""
        if self.postgres_url:
            return self.postgres_database_url(
                self.feast_registry_database, driver="postgresql+psycopg2"
            )
        return f"sqlite:///{self.feast_dir / 'registry.db'}"

    @property
    def mlflow_artifact_location(self) -> str:
        return (self.mlflow_dir / "artifacts").as_uri()


class ServingSettings(BaseSettings):
    """The prediction service. Field ``foo`` is ``CHURN_SERVE_FOO``."""

    model_config = _group("CHURN_SERVE_")

    host: str = "127.0.0.1"
    port: int = 3000
    batch_limit: int = Field(1000, description="Most customers in one /predict/batch call.")
    api_key: SecretStr | None = Field(
        default=None,
        description="Set: /predict* need `Authorization: Bearer <key>`; unset: no auth.",
    )
    max_body_bytes: int = Field(
        65536, ge=256, description="Larger request bodies get 413 before they are parsed."
    )
    max_header_bytes: int = Field(
        16384,
        ge=1024,
        description="Larger request headers (all lines together) get 431 before auth or parsing.",
    )
    online_timeout_seconds: float = Field(
        0.5, gt=0, description="Redis socket timeout of the online lookup (then 503)."
    )
    retry_after_seconds: int = Field(
        1,
        ge=1,
        description=(
            "Retry-After sent with a 503 (a store or the model unavailable); also how long a "
            "store stays marked down after a failure before one probe tries it again."
        ),
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


class AirflowSettings(BaseSettings):
    """Airflow for this project. Field ``foo`` is ``CHURN_AIRFLOW_FOO``."""

    model_config = _group("CHURN_AIRFLOW_")

    home_dir: Path | None = Field(
        default=None,
        description="AIRFLOW_HOME for this project; default: <state_dir>/airflow.",
    )
    host: str = "127.0.0.1"
    port: int = 8080
    database: str = Field(
        "churn_airflow", description="Airflow's PostgreSQL database (with CHURN_POSTGRES_URL)."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO",
        description=(
            "Airflow's logging level: task logs keep each task's own lines at this level and "
            "above (INFO: what a step did and decided; the demo runs at WARNING)."
        ),
    )


class MonitoringSettings(BaseSettings):
    """The drift checks (the PSI grades are each model spec's). ``CHURN_MONITORING_FOO``."""

    model_config = _group("CHURN_MONITORING_")

    drift_min_rows: int = Field(200, description="Fewer logged predictions: no drift verdict.")
    drift_window_hours: int = Field(24, description="First monitoring run: look this far back.")
    quality_period: str = Field(
        "1D", description="Period of the live-quality scores (a pandas frequency: 1D, 12h, 7D)."
    )
    alert_webhook_url: str | None = Field(
        default=None, description="Set: each new performance alert is POSTed here as JSON."
    )
    alert_webhook_attempts: int = Field(3, ge=1, description="Tries per alert delivery.")
    alert_webhook_timeout_seconds: float = Field(5.0, gt=0, description="Timeout of each try.")


class DeploySettings(BaseSettings):
    """Rolling a new champion out to serving (the ``<model>_deploy`` DAG). ``CHURN_DEPLOY_FOO``."""

    model_config = _group("CHURN_DEPLOY_")

    target: Literal["auto", "local", "kubernetes"] = Field(
        "auto",
        description=(
            "local: check the running server picked up the champion; kubernetes: helm upgrade "
            "the release and wait for the rollout; auto: kubernetes when a kubeconfig is set "
            "or the task runs in a pod (KUBERNETES_SERVICE_HOST), else local."
        ),
    )
    serving_url: str | None = Field(
        default=None,
        description="Base URL of the serving Service; default: http://<serve host>:<serve port>.",
    )
    timeout_seconds: float = Field(
        300.0, gt=0, description="Longest wait for the rollout and for the new version to serve."
    )
    poll_seconds: float = Field(1.0, gt=0, description="How often the rollout is polled.")
    unreachable_seconds: float = Field(
        60.0,
        gt=0,
        description=(
            "Longest wait for anything to answer at the serving URL; past it the deploy ends "
            "'nothing serving' and leaves champion where it is."
        ),
    )
    kubeconfig: Path | None = Field(
        default=None, description="kubeconfig of the cluster; unset: in-cluster service account."
    )
    kube_context: str | None = Field(default=None, description="Context in the kubeconfig.")
    namespace: str = Field("default", description="Namespace of the Helm release.")
    release: str = Field("churn", description="Name of the Helm release that runs serving.")
    chart: Path = Field(
        PROJECT_ROOT / "helm" / "churn-platform", description="The chart the release upgrades to."
    )
    deployment: str | None = Field(
        default=None,
        description="Serving Deployment; default: <release>-churn-platform-serving (chart naming).",
    )

    @property
    def serving_deployment(self) -> str:
        return self.deployment or f"{self.release}-churn-platform-serving"


class SimulationSettings(BaseSettings):
    """The demo's order-event simulator. Field ``foo`` is ``CHURN_SIM_FOO``."""

    model_config = _group("CHURN_SIM_")

    customers: int = 3000
    days: int = 150


class Settings(BaseSettings):
    """Typed configuration in nested groups; top-level field ``foo`` is ``CHURN_FOO``."""

    model_config = _group("CHURN_")

    storage: StorageSettings = Field(default_factory=StorageSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    airflow: AirflowSettings = Field(default_factory=AirflowSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    simulation: SimulationSettings = Field(default_factory=SimulationSettings)
    deploy: DeploySettings = Field(default_factory=DeploySettings)

    now: datetime | None = Field(
        default=None,
        description=(
            "The platform's present (ISO-8601 instant, or a date: its midnight UTC); unset: the "
            "wall clock. The clock starts there when a process first reads it and runs at wall "
            "speed (core.clock): the platform runs as of any date."
        ),
    )

    # --- the models and their features ---------------------------------------------------
    feast_project: str = "churn"
    feature_ttl_days: int = 90
    gate_min_scores: dict[str, float] = Field(
        default_factory=dict,
        description=(
            'Per model (JSON, e.g. {"churn": 0.5}): replaces the spec\'s min_score, the gate '
            "metric a first version must reach to become champion."
        ),
    )
    promotion_requires_live_verdict: bool = Field(
        False,
        description=(
            "Set: a version that beats the champion offline stays challenger until the live "
            "A/B verdict on matured labels says it is better."
        ),
    )
    live_verdict_min_samples: int = Field(
        200, ge=2, description="Labelled live predictions each variant needs for a verdict."
    )
    random_seed: int = 7
    evaluate_holdout: bool = Field(
        True,
        description=(
            "Log MLflow's holdout evaluation (plots, permutation importance, per-segment "
            "metrics) in every training run; false: the task metrics only."
        ),
    )
    tune_trials: int = Field(
        0,
        ge=0,
        description=(
            "Trials of the opt-in hyperparameter search before training (0: no search, the "
            "spec's defaults are trained); also `churn tune --trials`."
        ),
    )
    tune_timeout_seconds: float = Field(
        600.0, gt=0, description="Longest the search may run (it stops after the trial at work)."
    )
    lock_timeout_seconds: float = Field(
        600.0,
        ge=0,
        description=(
            "How long a pipeline run waits for another run of the same pipeline (the same "
            "feature store, model or registered model) before it is refused; 0: no wait."
        ),
    )

    @field_validator("now", mode="before")
    @classmethod
    def _now_is_utc(cls, value: object) -> object:
        if isinstance(value, str) and len(value) == 10:  # a date: its midnight
            value = f"{value}T00:00:00+00:00"
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value

    # --- derived from more than one group -------------------------------------------------------
    @property
    def airflow_home(self) -> Path:
        return self.airflow.home_dir or self.storage.state_dir / "airflow"

    @property
    def airflow_sql_alchemy_conn(self) -> str:
        if self.storage.postgres_url:
            return self.storage.postgres_database_url(
                self.airflow.database, driver="postgresql+psycopg2"
            )
        return f"sqlite:///{self.airflow_home / 'airflow.db'}"

    def airflow_env(self) -> dict[str, str]:
        """Environment that points Airflow at this project's DAGs and metadata database."""
        host, port = self.airflow.host, self.airflow.port
        return {
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.airflow_sql_alchemy_conn,
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__API__HOST": host,
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{host}:{port}/execution/",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": self.airflow.log_level,
            # MLflow's own handler writes to stderr, which a task log tags ERROR; without it
            # MLflow logs through logging at its real level (core.logs).
            "MLFLOW_CONFIGURE_LOGGING": "false",
            # A progress bar is no log line (and stderr again).
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            # Third-party warnings that repeat, filtered where each process starts: a filter
            # set while Airflow imports a DAG file does not outlive the import.
            "PYTHONWARNINGS": python_warnings(),
        }


GROUPS: dict[str, type[BaseSettings]] = {
    name: info.annotation  # type: ignore[misc]
    for name, info in Settings.model_fields.items()
    if isinstance(info.annotation, type) and issubclass(info.annotation, BaseSettings)
}


def environment_names() -> dict[str, str]:
    """Every environment variable the settings read, mapped to its field (``serving.port``)."""
    names = {}
    for name in Settings.model_fields:
        group = GROUPS.get(name)
        if group is None:
            names[f"CHURN_{name.upper()}"] = name
            continue
        prefix = group.model_config.get("env_prefix", "")
        for field in group.model_fields:
            names[f"{prefix}{field.upper()}"] = f"{name}.{field}"
    return names


class InvalidSettings(ValueError):
    """An environment variable holds a value its setting refuses (each one is named)."""


def _describe(error: ValidationError) -> str:
    """The refused values, by environment variable and field."""
    groups = {group.__name__: name for name, group in GROUPS.items()}
    group = groups.get(error.title)
    by_field = {field: env for env, field in environment_names().items()}
    lines = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        if group:
            loc.insert(0, group)
        # A map setting's error points inside it (gate_min_scores.churn): name its variable.
        env = by_field.get(".".join(loc[:2]) if group else loc[0], "?")
        path = ".".join(loc)
        lines.append(f"{env} (settings.{path}): {item['msg']} (got {item.get('input')!r})")
    return "invalid settings:\n  " + "\n  ".join(lines)


def get_settings() -> Settings:
    """The settings, built from the environment (``CHURN_*``) and nothing else.

    Every entry point (CLI command, DAG task, server, Feast definition file) calls this
    once; there is no override channel, so every part of a process, Feast's definition
    files included, sees the same settings. A refused value raises
    :class:`InvalidSettings` naming its variable.
    """
    try:
        return Settings()
    except ValidationError as error:
        raise InvalidSettings(_describe(error)) from None
