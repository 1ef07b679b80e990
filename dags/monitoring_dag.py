"""
### <model>_monitoring (one DAG per model spec)

**drift report** (Evidently `DataDriftPreset`, PSI per feature of the model and on its
outputs, the model's logged live predictions vs its champion's training reference; HTML +
JSON under `$CHURN_STATE_DIR/reports/drift/<model>/`) -> **is drift significant?** (any
feature PSI >= the spec's `psi_significant`) -> **retrain** (triggers
`<model>_training_pipeline`). With no significant drift the run stops after the report and
nothing is retrained.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task

from models.catalog import load_specs


def make_monitoring_dag(
    dag_id: str, model: str, description: str, tags: tuple[str, ...], training_dag_id: str
):
    """The monitoring DAG of one model spec; drift triggers ``training_dag_id``."""

    @dag(
        dag_id=dag_id,
        description=f"Drift of {description}",
        schedule="@daily",
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        doc_md=__doc__.replace("<model>", model),
        tags=[model, *tags, "monitoring", "evidently", "drift"],
        default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(seconds=30)},
    )
    def monitoring():
        @task
        def drift_report() -> dict:
            from core.settings import get_settings
            from core.steps import to_xcom
            from models.catalog import get_spec
            from monitoring.check import run_drift_check

            return to_xcom(run_drift_check(get_spec(model), get_settings()))

        @task.short_circuit
        def drift_is_significant(report: dict) -> bool:
            return bool(report["significant"])

        retrain = TriggerDagRunOperator(
            task_id="retrain",
            trigger_dag_id=training_dag_id,
            conf={"reason": "significant drift", "report": "{{ ti.xcom_pull('drift_report') }}"},
        )
        drift_is_significant(drift_report()) >> retrain

    return monitoring()


for _spec in load_specs():
    globals()[_spec.monitoring_dag_id] = make_monitoring_dag(
        _spec.monitoring_dag_id, _spec.name, _spec.description, _spec.tags, _spec.training_dag_id
    )
