"""The BentoML service, as a real server process, against the session's champion."""

import re
from datetime import datetime

import pandas as pd
import pytest

from feature_repo import delta_tables
from feature_repo.store import get_feature_store, get_training_frame
from feature_repo.transforms import FEATURE_COLUMNS, snapshot_timestamp
from models import registry
from models.training import model_input
from serving.prediction_log import read_prediction_log

pytestmark = pytest.mark.slow


def test_served_prediction_equals_registered_model_on_offline_features(
    world, server, known_customers
):
    settings = world.settings
    customers = known_customers[:25]
    started = datetime.now().astimezone()
    served = server.post("/predict/batch", json={"customer_ids": customers})
    assert served.status_code == 200, served.text
    served_by_id = {p["customer_id"]: p for p in served.json()}

    # Offline: the same customers at the time of the latest materialized snapshot.
    last_day = max(delta_tables.partition_dates(settings.customer_features_path, "snapshot_date"))
    entity_rows = pd.DataFrame(
        {"customer_id": customers, "event_timestamp": snapshot_timestamp(last_day)}
    )
    offline = get_training_frame(get_feature_store(settings), entity_rows, settings.feature_service)
    champion = registry.alias_version(settings, registry.CHAMPION)
    model = registry.load_version(settings, champion)
    expected = model.predict_proba(model_input(offline))[:, 1]

    for row, probability in zip(offline.itertuples(), expected, strict=True):
        prediction = served_by_id[row.customer_id]
        assert prediction["model_version"] == champion
        assert prediction["probability"] == pytest.approx(probability, abs=1e-12)
        for feature in FEATURE_COLUMNS:
            assert prediction["features"][feature] == pytest.approx(getattr(row, feature))

    logged = read_prediction_log(settings.prediction_log_path, since=started)
    assert set(customers) <= set(logged["customer_id"])
    assert (logged["model_version"] == champion).all()


def test_single_prediction_shape(server, known_customers):
    response = server.post("/predict", json={"customer_id": known_customers[0]})
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {
        "customer_id",
        "churn",
        "probability",
        "model_version",
        "variant",
        "features",
    }
    assert 0.0 <= body["probability"] <= 1.0 and isinstance(body["churn"], bool)


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/predict", {"customer_id": 10_000_000}, 404, "unknown customer_id"),
        ("/predict/batch", {"customer_ids": [1, 10_000_000]}, 404, "10000000"),
        ("/predict", {"customer_id": "abc"}, 400, "customer_id"),
        ("/predict", {"customer_id": 1.5}, 400, "customer_id"),
        ("/predict", {"customer_id": -3}, 400, "greater than or equal to 1"),
        ("/predict", {}, 400, "customer_id"),
        ("/predict/batch", {"customer_ids": []}, 400, "at least 1"),
        ("/predict/batch", {"customer_ids": list(range(1, 1002))}, 400, "at most 1000"),
        # wrong types
        ("/predict", {"customer_id": True}, 400, "customer_id"),
        ("/predict", {"customer_id": None}, 400, "customer_id"),
        ("/predict", {"customer_id": [1]}, 400, "customer_id"),
        ("/predict", {"customer_id": "12"}, 400, "customer_id"),
        ("/predict/batch", {"customer_ids": 5}, 400, "customer_ids"),
        ("/predict/batch", {"customer_ids": [1, "x"]}, 400, "customer_ids"),
        ("/predict/batch", {}, 400, "customer_ids"),
        # negative, zero, huge ids
        ("/predict", {"customer_id": 0}, 400, "greater than or equal to 1"),
        ("/predict", {"customer_id": 2**63}, 400, "less than or equal to"),
        ("/predict", {"customer_id": 10**400}, 400, "customer_id"),
        ("/predict/batch", {"customer_ids": [1, -1]}, 400, "greater than or equal to 1"),
        # unknown fields
        ("/predict", {"customer_id": 1, "debug": True}, 400, "Extra inputs are not permitted"),
        ("/predict/batch", {"customer_ids": [1], "x": 1}, 400, "Extra inputs are not permitted"),
    ],
)
def test_bad_input_gets_a_clear_4xx(server, path, body, status, says):
    response = server.post(path, json=body)
    assert response.status_code == status, response.text
    assert says in response.text


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_nan_and_infinite_ids_are_a_400(server, literal):
    body = b'{"customer_id": ' + literal + b"}"
    response = server.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert "customer_id" in response.text


@pytest.mark.parametrize(
    "body", [b"", b"[]", b'"x"', b"null", b'{"customer_id": 1', b"\xff\xfe", b"[1, 2]"]
)
def test_bodies_that_are_not_an_object_are_a_4xx(server, body):
    response = server.post("/predict", content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text


def test_oversized_body_is_a_413(server):
    body = b'{"customer_ids": [' + b"1, " * 40_000 + b"1]}"
    response = server.post(
        "/predict/batch", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "larger than" in response.json()["error"]


def test_unknown_customer_in_a_batch_names_it_and_logs_nothing(world, server, known_customers):
    before = len(read_prediction_log(world.settings.prediction_log_path))
    response = server.post("/predict/batch", json={"customer_ids": [known_customers[0], 9_999_999]})
    assert response.status_code == 404 and "9999999" in response.text
    assert len(read_prediction_log(world.settings.prediction_log_path)) == before


def test_per_variant_metrics(world, server, known_customers):
    served = server.post("/predict", json={"customer_id": known_customers[1]}).json()
    version = served["model_version"]
    assert version == registry.alias_version(world.settings, registry.CHAMPION)
    text = server.get("/metrics").text
    assert f'churn_predictions_total{{variant="champion",version="{version}"}}' in text
    assert "churn_prediction_seconds_bucket" in text
    # multiprocess gauges carry the worker's pid as a label
    assert re.search(rf'churn_model_version\{{alias="champion"[^}}]*\}} {version}\.0', text), text


def test_malformed_json_is_a_400(server):
    response = server.post(
        "/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "json" in response.text.lower()


def test_health_endpoints(server):
    assert server.get("/readyz").status_code == 200
    assert server.post("/predict", json={"customer_id": 1}).status_code in (200, 404)
    assert server.get("/livez").status_code == 200
    assert "/predict" in server.get("/docs.json").text
