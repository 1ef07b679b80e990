"""The BentoML service, as a real server process, against the session's champion."""

from datetime import datetime

import httpx
import pandas as pd
import pytest

from feature_repo import delta_tables
from feature_repo.store import get_feature_store, get_training_frame
from feature_repo.transforms import FEATURE_COLUMNS, snapshot_timestamp
from models import registry
from models.training import model_input
from serving.prediction_log import read_prediction_log
from serving.server import BentoServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(world, free_port):
    with (
        BentoServer(world.settings, port=free_port) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def known_customers(world) -> list[int]:
    snapshots = delta_tables.read_table(
        world.settings.customer_features_path, columns=["customer_id"]
    )
    return sorted(int(c) for c in snapshots["customer_id"].unique())


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
    ],
)
def test_bad_input_gets_a_clear_4xx(server, path, body, status, says):
    response = server.post(path, json=body)
    assert response.status_code == status, response.text
    assert says in response.text


def test_malformed_json_is_a_400(server):
    response = server.post(
        "/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "json" in response.text.lower()


def test_health_endpoints(server):
    assert server.get("/readyz").status_code == 200
    assert server.get("/livez").status_code == 200
    assert "/predict" in server.get("/docs.json").text
