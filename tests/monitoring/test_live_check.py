"""A monitoring run's live-quality step on a real state: labels, scores, alert, MLflow."""

import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from core.settings import Settings
from data import delta_tables
from models.churn.spec import SPEC as CHURN
from models.tracking import configure_mlflow
from monitoring.alerts import recorded_alerts
from monitoring.live_check import run_quality_check
from serving.prediction_log import PredictionLog, PredictionRecord


def test_live_quality_is_scored_alerted_and_logged_against_the_served_version(world, tmp_path):
    target = tmp_path / "state"
    shutil.copytree(world.settings.storage.state_dir, target,
                    ignore=shutil.ignore_patterns("serving", "airflow", "reports"))  # fmt: skip
    settings = Settings(storage={"state_dir": target})
    orders = delta_tables.read_table(settings.storage.raw_orders_path)
    customers = sorted(orders["customer_id"].unique())[:300]
    first = orders["order_timestamp"].min().to_pydatetime()
    # The run's time: the morning after the last landed day.
    as_of = orders["order_timestamp"].max().normalize().to_pydatetime() + timedelta(days=1, hours=6)
    rng = np.random.default_rng(4)
    features = {f.name: ("regular" if f.kind == "categorical" else 1.0) for f in CHURN.features}
    log = PredictionLog(settings.storage.prediction_log_path("churn"), CHURN)
    days = [first + timedelta(days=40 + d) for d in range(3)]
    log.append(
        [
            PredictionRecord(day + timedelta(minutes=i), int(c), 1, "champion", features,
                             0.9, int(rng.integers(0, 2)))
            for day in days
            for i, c in enumerate(customers[:100])
        ]
        # Too recent to be labelled: 30 days have not landed after them.
        + [PredictionRecord(as_of - timedelta(hours=1), int(c), 1, "champion", features, 0.2, 0)
           for c in customers[:20]]
        # After the run's time: not seen by it at all.
        + [PredictionRecord(as_of + timedelta(hours=1), int(c), 1, "champion", features, 0.2, 0)
           for c in customers[:5]]
    )  # fmt: skip
    log.close()

    spec = replace(CHURN, live_threshold=0.99, alert_periods=3, min_period_labels=50)
    check = run_quality_check(spec, settings, as_of)
    assert (check.logged, check.matured, check.pending) == (320, 300, 20)
    assert [p.labelled for p in check.periods] == [100, 100, 100]
    assert all(p.counted and 0 <= p.metrics["f1"] <= 1 for p in check.periods)
    (alert,) = check.alerts  # random decisions: F1 far under 0.99 three days running
    assert alert.model_version == 1 and len(alert.periods) == 3
    assert len(recorded_alerts(settings, "churn")) == 1
    assert check.new_champion_alerts == [alert]  # raised now, on the champion: asks a retrain
    assert check.rollback is not None and not check.rollback.rolled_back
    saved = json.loads(Path(check.report_path).read_text())
    assert saved["matured"] == 300 and len(saved["periods"]) == 3

    client = configure_mlflow(settings)
    run = client.get_run(check.mlflow_run_id)
    assert run.data.tags["monitoring.kind"] == "live_quality"
    # In the model's monitoring experiment, apart from its training runs; marked, like the
    # training experiment, as model training for MLflow's UI.
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == CHURN.monitoring_experiment == "customer_churn_monitoring"
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    training = client.get_experiment_by_name(CHURN.experiment)
    assert training.experiment_id != experiment.experiment_id
    assert not client.search_runs(
        [training.experiment_id], "tags.`monitoring.kind` = 'live_quality'"
    )
    assert run.data.tags["monitoring.alerts"] == "1"
    model_id = client.get_model_version(CHURN.registered_model, "1").model_id
    history = client.get_metric_history(check.mlflow_run_id, "live_champion_f1")
    assert len(history) == 3
    assert {m.model_id for m in history} == {model_id}  # against the version that served
    artifacts = [a.path for a in client.list_artifacts(check.mlflow_run_id, "monitoring")]
    assert artifacts == ["monitoring/quality.json"]

    # The next run sees the same alert, already recorded: it asks for no second retrain.
    again = run_quality_check(spec, settings, as_of + timedelta(minutes=1))
    assert again.alerts == [alert] and again.new_champion_alerts == []


def test_a_spec_without_outcomes_is_monitored_for_drift_only(state):
    check = run_quality_check(
        replace(CHURN, outcomes=None), state, datetime(2026, 3, 1, tzinfo=UTC)
    )
    assert (check.logged, check.periods, check.alerts, check.mlflow_run_id) == (0, [], [], None)
