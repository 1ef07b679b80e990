"""
### <model>_monitoring (one DAG per model spec)

Runs daily, and whenever `feature_pipeline` has materialized new features (the Airflow
asset `churn://feast/online_store`), so fresh features lead to a drift and quality check
and, through the retraining policy, to training.

**drift report** (Evidently `DataDriftPreset`, PSI per feature of the model and on its
outputs, the model's logged live predictions vs its champion's training reference; HTML +
JSON + Evidently snapshot under `$CHURN_STATE_DIR/reports/drift/<model>/`) and **live
quality** (the logged predictions joined to their outcomes as of their own time, once
known; Evidently's quality metrics per served version, variant and day; the spec's
performance-drift rule, the live A/B verdict and the automatic-rollback rule; one MLflow
run per monitoring period that links the drift report's HTML) -> **retrain decision**
(significant drift, a performance alert or the spec's cadence make one request to the
retraining policy, which refuses while a training run is queued or running and inside the
spec's cool-down, and records why) -> **retrain** (triggers `<model>_training_pipeline`
with the reason in its `conf`). When the live A/B verdict promoted the challenger or the
rollback rule moved `champion` back, **announce champion** updates the asset
`churn://registry/<model>/champion`, which runs `<model>_deploy`. With nothing to retrain
for, or a refused request, the run stops there. Every snapshot also lands in the model's
project of the Evidently UI workspace (`make evidently-ui`): PSI per feature, live
quality, error rate and alerts.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from dags.assets import FEATURES_MATERIALIZED, champion_changed
from models.catalog import load_specs


def make_monitoring_dag(
    dag_id: str, model: str, description: str, tags: tuple[str, ...], training_dag_id: str
):
    """The monitoring DAG of one model spec; drift triggers ``training_dag_id``."""

    @dag(
        dag_id=dag_id,
        description=f"Drift of {description}",
        # Daily, and whenever feature_pipeline has materialized new features.
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable("@daily", timezone="UTC"), assets=[FEATURES_MATERIALIZED]
        ),
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        render_template_as_native_obj=True,  # the retrain conf is the decision's dict
        doc_md=__doc__.replace("<model>", model),
        tags=[model, *tags, "monitoring", "evidently", "drift"],
        default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(seconds=30)},
    )
    def monitoring():
        @task
        def drift_report(dag_run=None) -> dict:
            """The predictions made in the run's window (conf window_start / window_end, else
            its data interval, else the drift_window_hours before its time)."""
            from core.clock import run_time
            from core.settings import get_settings
            from core.steps import to_xcom
            from models.catalog import get_spec
            from monitoring.check import monitoring_window, run_drift_check

            settings = get_settings()
            interval = (dag_run.data_interval_start, dag_run.data_interval_end)
            window = monitoring_window(settings, run_time(dag_run), interval, dag_run.conf)
            return to_xcom(run_drift_check(get_spec(model), settings, window))

        @task
        def live_quality(report: dict, dag_run=None) -> dict:
            from core.clock import run_time
            from core.settings import get_settings
            from core.steps import to_xcom
            from models.catalog import get_spec
            from monitoring.live_check import run_quality_check

            as_of = run_time(dag_run)
            spec, html = get_spec(model), report.get("html_path")
            return to_xcom(run_quality_check(spec, get_settings(), as_of, html))

        @task
        def retrain_decision(report: dict, quality: dict, ti=None, dag_run=None) -> dict:
            """Ask the retraining policy; returns the training conf, or {} when refused."""
            import logging

            from core.clock import run_time
            from core.settings import get_settings
            from core.steps import from_xcom
            from models.catalog import get_spec
            from monitoring.live_check import LiveQualityCheck, decide_retraining

            check = from_xcom(LiveQualityCheck, quality)
            drift = f"significant drift: {report['reason']}" if report["significant"] else None
            active = ti.get_dr_count(dag_id=training_dag_id, states=["queued", "running"])
            new_alerts = check.new_champion_alerts  # one alert asks for one retrain
            decision = decide_retraining(
                get_spec(model), get_settings(), drift, new_alerts, active, run_time(dag_run)
            )
            if decision is None:
                logging.getLogger(__name__).info("nothing asks for a retrain")
                return {}
            logging.getLogger(__name__).info("retraining policy: %s", decision.why)
            if not decision.accepted:
                return {}
            # What triggered it, for the training run's page: the report and the alert.
            evidence = {"drift_report": report.get("html_path") if drift else None}
            evidence["alert"] = new_alerts[0].reason() if new_alerts else None
            return decision.conf() | {k: v for k, v in evidence.items() if v}

        @task.short_circuit
        def retrain_accepted(conf: dict) -> bool:
            return bool(conf)

        retrain = TriggerDagRunOperator(
            task_id="retrain",
            trigger_dag_id=training_dag_id,
            conf="{{ ti.xcom_pull(task_ids='retrain_decision') }}",
        )

        @task(outlets=[champion_changed(model)])
        def announce_champion(quality: dict) -> str:
            """Success updates the champion asset (its deploy DAG runs); a skip does not."""
            from airflow.sdk.exceptions import AirflowSkipException

            from core.steps import from_xcom
            from monitoring.live_check import LiveQualityCheck

            moved = from_xcom(LiveQualityCheck, quality).champion_moved
            if moved is None:
                raise AirflowSkipException("champion unchanged")
            return moved

        report = drift_report()
        quality = live_quality(report)  # its MLflow run links the drift report
        announce_champion(quality)
        decision = retrain_decision(report, quality)
        retrain_accepted(decision) >> retrain

    return monitoring()


for _spec in load_specs():
    globals()[_spec.monitoring_dag_id] = make_monitoring_dag(
        _spec.monitoring_dag_id, _spec.name, _spec.description, _spec.tags, _spec.training_dag_id
    )
