"""The monitoring DAG, run for real: no drift -> no retraining; drift -> training triggered."""

from datetime import UTC, datetime, timedelta

import pytest

from cli.airflow_runner import migrate_airflow_db, queued_runs, run_dag
from models.churn.spec import SPEC as CHURN
from monitoring.check import load_reference
from monitoring.retraining import retrain_history
from serving.prediction_log import PredictionLog, PredictionRecord

pytestmark = pytest.mark.slow


# After the world's last day: every label of this traffic is still pending.
DAY = datetime(2026, 7, 1, tzinfo=UTC)


def log_traffic(settings, frame, version: int, day: int) -> None:
    now = DAY + timedelta(days=day, hours=10)
    records = [
        PredictionRecord(
            now, 1000 + i, version, "champion",
            {c: getattr(row, c) for c in CHURN.feature_names},
            float(row.probability), int(row.prediction),
        )
        for i, row in enumerate(frame.itertuples())
    ]  # fmt: skip
    log = PredictionLog(settings.storage.prediction_log_path(CHURN.name), CHURN)
    log.append(records)
    log.close()


def test_monitoring_retrains_only_on_significant_drift(world):
    settings = world.settings
    migrate_airflow_db(settings)
    version, reference = load_reference(settings, CHURN)

    # Each daily run judges the day before its logical date: the traffic of that day.
    log_traffic(settings, reference.sample(400, replace=True, random_state=1), version, 0)
    calm = run_dag(CHURN.monitoring_dag_id, settings, logical_date=DAY + timedelta(days=1))
    assert calm.succeeded
    assert calm.returns["drift_report"]["significant"] is False
    assert calm.task_states["retrain"] == "skipped"
    assert queued_runs(CHURN.training_dag_id, settings) == []

    drifted = reference.sample(400, replace=True, random_state=2)
    shifted = {"total_spend_30d", "lifetime_value", "avg_order_value"}
    for column in shifted:
        drifted[column] = drifted[column] * 2.2
    log_traffic(settings, drifted, version, 1)
    alarm = run_dag(CHURN.monitoring_dag_id, settings, logical_date=DAY + timedelta(days=2))
    assert alarm.succeeded
    report = alarm.returns["drift_report"]
    assert report["significant"] is True
    assert report["current_rows"] == 400, "only the traffic of the run's interval counts"
    significant = {f["column"] for f in report["features"] if f["level"] == "significant"}
    assert significant and significant <= shifted, "only the shifted columns drift"
    assert alarm.task_states["retrain"] == "success"
    triggered = queued_runs(CHURN.training_dag_id, settings)
    assert len(triggered) == 1
    conf = triggered[0]["conf"]
    assert conf["trigger"] == "drift" and conf["reason"].startswith("significant drift: ")
    # Labels of predictions made just now are not due: none is counted, all are pending.
    quality = alarm.returns["live_quality"]
    assert (quality["matured"], quality["pending"]) == (0, 800) and quality["alerts"] == []

    # Drift again while that training run still waits: the policy refuses, and says why.
    log_traffic(settings, drifted, version, 2)
    again = run_dag(CHURN.monitoring_dag_id, settings, logical_date=DAY + timedelta(days=3))
    assert again.returns["drift_report"]["significant"] is True
    assert again.task_states["retrain"] == "skipped"
    assert len(queued_runs(CHURN.training_dag_id, settings)) == 1
    decisions = retrain_history(CHURN, settings)
    assert [d.accepted for d in decisions] == [True, False]
    assert "already queued or running" in decisions[-1].why
    # The report of each model goes to its own folder.
    assert f"/reports/drift/{CHURN.name}/" in report["html_path"]
