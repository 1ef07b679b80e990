"""
### monitoring

**drift report** (Evidently `DataDriftPreset`, PSI per feature and on the model's output,
logged live predictions vs the champion's training reference; HTML + JSON under
`$CHURN_STATE_DIR/reports/drift/`) -> **is drift significant?** (any feature PSI >= 0.25)
-> **retrain** (triggers `training_pipeline`). With no significant drift the run stops
after the report and nothing is retrained.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task


@dag(
    dag_id="monitoring",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["churn", "monitoring", "evidently", "drift"],
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(seconds=30)},
)
def monitoring():
    @task
    def drift_report() -> dict:
        from core.settings import get_settings
        from core.steps import to_xcom
        from monitoring.check import run_drift_check

        return to_xcom(run_drift_check(get_settings()))

    @task.short_circuit
    def drift_is_significant(report: dict) -> bool:
        return bool(report["significant"])

    retrain = TriggerDagRunOperator(
        task_id="retrain",
        trigger_dag_id="training_pipeline",
        conf={"reason": "significant drift", "report": "{{ ti.xcom_pull('drift_report') }}"},
    )
    drift_is_significant(drift_report()) >> retrain


monitoring()
