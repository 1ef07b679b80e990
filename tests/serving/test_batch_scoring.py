"""Batch scoring through its DAG: a scored row is what /predict answers, a rerun replaces.

The ``server`` fixture serves the session world; ``two_versions`` is a copy of that world
(same features, same v1) with a second version, so the batch run and the server see the
same customers, features and champion.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from cli.airflow_runner import migrate_airflow_db, run_dag
from core.settings import get_settings
from data import delta_tables
from models.churn.spec import SPEC as CHURN
from models.registry import set_champion
from models.tracking import configure_mlflow
from serving.batch_scoring import batch_scores_path, score_batch

pytestmark = pytest.mark.slow


def newest_snapshot_day(settings):
    days = delta_tables.partition_dates(settings.storage.customer_features_path, "snapshot_date")
    return max(days)


def test_batch_scores_equal_predict_and_a_rerun_replaces_the_day(two_versions, server, monkeypatch):
    for key, value in two_versions["env"].items():
        monkeypatch.setenv(key, value)
    settings = get_settings()
    client = configure_mlflow(settings)
    v1, v2 = two_versions["v1"], two_versions["v2"]
    set_champion(client, CHURN.registered_model, v1, None)
    day = newest_snapshot_day(settings)

    migrate_airflow_db(settings)
    run = run_dag(CHURN.batch_scoring_dag_id, settings, conf={"date": day.isoformat()})
    assert run.succeeded, run.task_states
    first = run.returns["score"]
    assert first["model_version"] == v1 and first["score_date"] == day.isoformat()
    assert first["feature_service"] == CHURN.feature_service
    assert first["scored"] > 100 and first["rows_per_second"] > 0

    path = batch_scores_path(settings, CHURN)
    table = delta_tables.read_table(path)
    assert len(table) == first["scored"]
    assert set(table["model_name"]) == {CHURN.registered_model}
    assert set(table["feature_service"]) == {CHURN.feature_service}

    # A scored row is what /predict answers for that customer now (features of that day).
    sample = table.sample(25, random_state=3)
    for row in sample.itertuples(index=False):
        answer = server.post("/predict", json={"customer_id": int(row.customer_id)})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model_version"] == int(row.model_version) == v1
        assert body["churn"] == bool(row.churn)
        assert body["probability"] == pytest.approx(row.probability, abs=1e-9)
        for name in CHURN.feature_names:
            served, scored = body["features"][name], getattr(row, name)
            if isinstance(served, str):
                assert served == scored, name
            else:
                assert served == pytest.approx(float(scored)), name

    # A rerun of the day by another champion replaces the day: no duplicate, no v1 left.
    set_champion(client, CHURN.registered_model, v2, v1)
    again = score_batch(CHURN, settings, day)
    assert again.model_version == v2 and again.scored == first["scored"]
    table = delta_tables.read_table(path)
    assert len(table) == first["scored"]
    assert not table.duplicated(["customer_id", "score_date"]).any()
    assert set(table["model_version"]) == {v2}
    # The partitions are score_date and model_version: the file layout says so.
    assert set(delta_tables.partition_values(path, "model_version")) == {str(v2)}

    # Another day is added next to it; rerunning that one keeps the first.
    earlier = day - timedelta(days=7)
    score_batch(CHURN, settings, earlier)
    score_batch(CHURN, settings, earlier)
    table = delta_tables.read_table(path)
    assert set(table["score_date"]) == {day.isoformat(), earlier.isoformat()}
    assert not table.duplicated(["customer_id", "score_date"]).any()
    per_day = table.groupby("score_date").size()
    assert per_day[day.isoformat()] == first["scored"]
    # Fewer customers were known a week earlier: only those with a snapshot by then.
    assert per_day[earlier.isoformat()] <= first["scored"]
