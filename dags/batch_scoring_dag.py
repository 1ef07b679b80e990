"""
### <model>_batch_scoring (one DAG per model spec)

Daily, and by hand from the UI (conf `{"date": "YYYY-MM-DD"}` scores another day).

**score**: every entity of `<model>` with a feature row on or before the date (in the
tables behind its feature service's views: its own entities, keyed as its spec) is scored
by `<model>`'s champion, with Feast's point-in-time features as of the end of that day
(the offline store's retrieval: the values the online store held then), by the same
scoring code as the API. The rows (entity, prediction, features, model name and version,
feature service) go to the Delta table `<model>_batch_scores` under `$CHURN_STATE_DIR/delta`,
partitioned by `score_date` and `model_version`. A rerun of a date replaces its rows.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

from models.catalog import load_specs


def make_batch_scoring_dag(dag_id: str, model: str, description: str, tags: tuple[str, ...]):
    """The batch scoring DAG of one model spec."""

    @dag(
        dag_id=dag_id,
        description=f"Batch scores of {description}",
        schedule=CronTriggerTimetable("30 1 * * *", timezone="UTC"),  # after the night's data
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        doc_md=__doc__.replace("<model>", model),
        tags=[model, *tags, "batch-scoring", "feast", "delta"],
        default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(seconds=30)},
    )
    def batch_scoring():
        @task
        def score(dag_run=None, logical_date=None) -> dict:
            from datetime import date

            from core.settings import get_settings
            from core.steps import to_xcom
            from models.catalog import get_spec
            from serving.batch_scoring import score_batch

            conf = dict(getattr(dag_run, "conf", None) or {})
            # A scheduled run scores the day that has just ended.
            day = (
                date.fromisoformat(conf["date"])
                if conf.get("date")
                else (logical_date - timedelta(days=1)).date()
            )
            return to_xcom(score_batch(get_spec(model), get_settings(), day))

        score()

    return batch_scoring()


for _spec in load_specs():
    globals()[_spec.batch_scoring_dag_id] = make_batch_scoring_dag(
        _spec.batch_scoring_dag_id, _spec.name, _spec.description, _spec.tags
    )
