"""
### feature_pipeline

Raw order batches in the landing area -> **validate** (Great Expectations; a refused batch
is quarantined with its report and the run fails here, so nothing downstream changes) ->
**ingest** (one Delta transaction; each day replaces its own partition) -> **build
features** (customer snapshots, churn labels and every model spec's own feature tables,
Delta) -> **materialize** (Feast apply, then materialize the views of every model's feature
service into the online store, view by view: one failing view does not stop the others).

Trigger it from the UI after dropping `orders_YYYY-MM-DD.parquet` or `.csv` files (or
batches of another landing source a model spec declares, `<source>_YYYY-MM-DD.*`) into
`$CHURN_STATE_DIR/landing/` (`churn land FILE...` copies files there), or run
`make demo`. Any other file there is refused by name and quarantined; each batch is
judged by its source's suite and written to its source's Delta table.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from dags.assets import FEATURES_MATERIALIZED


@dag(
    dag_id="feature_pipeline",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["churn", "features", "feast", "great-expectations", "delta"],
    default_args={"owner": "ml-platform", "retries": 2, "retry_delay": timedelta(seconds=30)},
)
def feature_pipeline():
    @task(retries=0)
    def validate() -> list[str]:
        """Validate every landed batch; fail without retry when one is refused."""
        from airflow.sdk.exceptions import AirflowFailException

        from core.settings import get_settings
        from data.pipeline import BatchesRefused, validate_landed_batches
        from models.catalog import landing_sources

        try:
            return validate_landed_batches(get_settings(), landing_sources())
        except BatchesRefused as refused:
            raise AirflowFailException(str(refused)) from refused

    @task
    def ingest(paths: list[str]) -> dict:
        from core.settings import get_settings
        from core.steps import to_xcom
        from data.pipeline import ingest_batches
        from models.catalog import landing_sources

        return to_xcom(ingest_batches(paths, get_settings(), landing_sources()))

    @task
    def build_features(ingested: dict, dag_run=None) -> dict:
        from core.clock import run_time
        from core.settings import get_settings
        from core.steps import IngestedBatches, from_xcom, to_xcom
        from data.pipeline import build_features
        from models.catalog import computed_tables, landing_sources

        days = from_xcom(IngestedBatches, ingested).days
        built = build_features(
            days, get_settings(), computed_tables(), landing_sources(), as_of=run_time(dag_run)
        )
        return to_xcom(built)

    @task(outlets=[FEATURES_MATERIALIZED])  # schedules every model's monitoring
    def materialize(built: dict) -> dict:
        from core.settings import get_settings
        from core.steps import BuiltFeatures, from_xcom, to_xcom
        from data.pipeline import materialize_features
        from models.catalog import feature_services

        built_features = from_xcom(BuiltFeatures, built)
        return to_xcom(materialize_features(built_features, get_settings(), feature_services()))

    materialize(build_features(ingest(validate())))


feature_pipeline()
