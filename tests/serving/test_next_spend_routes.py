"""Serving hosts every spec: the next_spend model on /models/next_spend/predict, next to churn."""

from __future__ import annotations

import time
from datetime import date

import numpy as np
import pandas as pd
import pytest

from core.schema import model_input
from data import delta_tables
from models.churn.spec import SPEC as CHURN
from models.next_spend.spec import SPEC as NEXT_SPEND
from models.registry import CHAMPION, alias_version, load_version
from models.tracking import configure_mlflow
from serving.batch_scoring import batch_scores_path, score_batch
from serving.deploy import smoke_entity
from serving.prediction_log import read_prediction_log


@pytest.fixture(scope="module")
def next_spend_champion(world) -> int:
    """next_spend's champion in the world registry (trained here if no test did it yet)."""
    from models.promotion import run_training_pipeline

    version = alias_version(world.settings, NEXT_SPEND.registered_model, CHAMPION)
    if version is None:
        version = run_training_pipeline(NEXT_SPEND, world.settings, "routes").gate.version
    return version


def answered(server, path: str, body: dict, seconds: float = 40.0):
    """POST until the model is loaded (the service picks a new champion up by itself)."""
    deadline = time.monotonic() + seconds
    while True:
        response = server.post(path, json=body)
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


def test_each_model_answers_on_its_own_route(world, server, known_customers,
                                             next_spend_champion) -> None:  # fmt: skip
    customer = known_customers[5]
    spend = answered(server, "/models/next_spend/predict", {"customer_id": customer})
    assert spend.status_code == 200, spend.text
    body = spend.json()
    assert body["model_name"] == NEXT_SPEND.registered_model
    assert body["model_version"] == next_spend_champion and body["variant"] == "champion"
    assert set(body["features"]) == set(NEXT_SPEND.feature_names)
    # The answer is the registered model's on the features it returned.
    configure_mlflow(world.settings)
    model = load_version(NEXT_SPEND.registered_model, next_spend_champion)
    expected = model.predict(model_input(pd.DataFrame([body["features"]]), NEXT_SPEND.features))
    assert np.isclose(body["spend_next_30d"], expected[0], rtol=1e-3)
    # churn's own route and its default route give the same churn answer.
    churn = server.post("/models/churn/predict", json={"customer_id": customer}).json()
    default = server.post("/predict", json={"customer_id": customer}).json()
    assert churn["model_name"] == default["model_name"] == CHURN.registered_model
    assert churn["churn"] == default["churn"] and churn["probability"] == default["probability"]
    assert "spend_next_30d" not in default


def test_batches_logs_and_metrics_are_per_model(world, server, known_customers,
                                                next_spend_champion) -> None:  # fmt: skip
    asked = [known_customers[1], 9_999_999, known_customers[2]]
    response = answered(server, "/models/next_spend/predict/batch", {"customer_ids": asked})
    assert response.status_code == 200, response.text
    items = response.json()
    assert [i["customer_id"] for i in items] == asked
    assert items[1]["type"] == "unknown_customer"
    logged = read_prediction_log(
        world.settings.storage.prediction_log_path("next_spend"), NEXT_SPEND
    )
    assert {asked[0], asked[2]} <= set(logged["customer_id"])
    assert "probability" not in logged.columns and logged["prediction"].dtype == float
    metrics = server.get("/metrics").text
    assert 'model="next_spend"' in metrics and 'model="churn"' in metrics


def test_an_unknown_model_is_a_404(server) -> None:
    response = server.post("/models/nope/predict", json={"customer_id": 1})
    assert response.status_code == 404
    assert response.json()["status"] == 404


def test_its_batch_scores_and_smoke_entity_are_its_customers(
    world, server, next_spend_champion
) -> None:
    settings = world.settings
    snapshots = delta_tables.read_table(
        settings.storage.customer_features_path, columns=["customer_id", "snapshot_date"]
    )
    day = max(date.fromisoformat(d) for d in snapshots["snapshot_date"].unique())
    done = score_batch(NEXT_SPEND, settings, day)
    # Every customer its tables list by that day: scored, or unknown (no feature then).
    assert done.model_version == next_spend_champion
    assert done.scored + done.unknown == snapshots["customer_id"].nunique() and done.scored > 100
    scores = delta_tables.read_table(batch_scores_path(settings, NEXT_SPEND))
    row = scores.sort_values("customer_id").iloc[0]
    body = answered(server, "/models/next_spend/predict", {"customer_id": int(row.customer_id)})
    assert body.status_code == 200, body.text
    assert body.json()["spend_next_30d"] == pytest.approx(row.spend_next_30d, rel=1e-9)
    # The deploy step's smoke customer is one its route answers for.
    customer = smoke_entity(NEXT_SPEND, settings)
    answer = answered(server, "/models/next_spend/predict", {"customer_id": customer})
    assert answer.status_code == 200 and answer.json()["model_version"] == next_spend_champion
