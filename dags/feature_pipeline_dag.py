"""
### feature_pipeline

Raw order batches in the landing area -> **validate** (Great Expectations; a refused batch
is quarantined with its report and the run fails here, so nothing downstream changes) ->
**ingest** (one Delta transaction; each day replaces its own partition) -> **build
features** (customer snapshots and churn labels, Delta) -> **materialize** (Feast apply +
materialize into the online store).

Trigger it from the UI after dropping `orders_YYYY-MM-DD.parquet` or `.csv` files into
`$CHURN_STATE_DIR/landing/` (`churn land FILE --day YYYY-MM-DD` copies one there), or run
`make demo`. Any other file there is refused by name and quarantined.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, dag, task

CUSTOMER_FEATURES = Asset("churn://feast/customer_features")


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

        from feature_repo.pipeline import BatchesRefused, validate_landed_batches
        from feature_repo.settings import get_settings

        try:
            return validate_landed_batches(get_settings())
        except BatchesRefused as refused:
            raise AirflowFailException(str(refused)) from refused

    @task
    def ingest(paths: list[str]) -> dict:
        from feature_repo.pipeline import ingest_batches
        from feature_repo.settings import get_settings

        return ingest_batches(paths, get_settings())

    @task
    def build_features(ingested: dict) -> dict:
        from feature_repo.pipeline import build_features
        from feature_repo.settings import get_settings

        return build_features(ingested["days"], get_settings())

    @task(outlets=[CUSTOMER_FEATURES])
    def materialize(built: dict) -> dict:
        from feature_repo.pipeline import materialize_features
        from feature_repo.settings import get_settings

        return materialize_features(built, get_settings())

    materialize(build_features(ingest(validate())))


feature_pipeline()
