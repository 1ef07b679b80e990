"""The BentoML service, as a real server process, against the session's champion."""

from datetime import datetime

import pandas as pd
import pytest
from serving_support import metric_values

from core.schema import model_input
from data import delta_tables
from data.store import get_feature_store, get_training_frame
from data.transforms import end_of_day
from models import registry
from models.catalog import load_specs
from models.churn.spec import SPEC as CHURN
from models.onnx_model import TOLERANCE
from models.tracking import configure_mlflow
from serving.errors import ErrorBody
from serving.prediction_log import read_prediction_log

NAME = CHURN.registered_model

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
    last_day = max(
        delta_tables.partition_dates(settings.storage.customer_features_path, "snapshot_date")
    )
    entity_rows = pd.DataFrame({"customer_id": customers, "event_timestamp": end_of_day(last_day)})
    offline = get_training_frame(get_feature_store(settings), entity_rows, CHURN.feature_service)
    configure_mlflow(settings)
    champion = registry.alias_version(settings, NAME, registry.CHAMPION)
    model = registry.load_version(NAME, champion)
    expected = model.predict_proba(model_input(offline, CHURN.features))[:, 1]
    decisions = model.predict(model_input(offline, CHURN.features))

    for row, probability, decision in zip(offline.itertuples(), expected, decisions, strict=True):
        prediction = served_by_id[row.customer_id]
        assert prediction["model_version"] == champion
        assert prediction["model_name"] == NAME
        # Served by the verified ONNX copy: same decision, probability within its tolerance.
        assert prediction["churn"] == bool(decision)
        assert prediction["probability"] == pytest.approx(probability, abs=TOLERANCE)
        for feature in CHURN.feature_names:
            assert prediction["features"][feature] == pytest.approx(getattr(row, feature))

    logged = read_prediction_log(
        settings.storage.prediction_log_path(CHURN.name), CHURN, since=started
    )
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


def test_the_churn_model_answers_on_its_own_route_as_on_predict(server, known_customers):
    customer = known_customers[0]
    default = server.post("/predict", json={"customer_id": customer})
    named = server.post("/models/churn/predict", json={"customer_id": customer})
    assert default.status_code == named.status_code == 200, named.text
    assert named.json() == default.json()
    batch = server.post("/models/churn/predict/batch", json={"customer_ids": [customer]})
    assert batch.status_code == 200 and batch.json() == [default.json()]


@pytest.mark.parametrize("name", [spec.name for spec in load_specs()])
def test_every_model_has_its_routes(server, known_customers, name):
    spec = next(s for s in load_specs() if s.name == name)
    response = server.post(f"/models/{name}/predict", json={"customer_id": known_customers[0]})
    # The session world trains only the churn model: another model has no champion (503).
    assert response.status_code in ((200, 404) if name == "churn" else (200, 404, 503))
    if response.status_code == 200:
        body = response.json()
        assert body["model_name"] == spec.registered_model and spec.output in body
        assert set(body["features"]) == set(spec.feature_names)
    unknown = server.post(f"/models/{name}/predict", json={"customer_id": "abc"})
    assert unknown.status_code == 400
    assert assert_error_body(unknown).error == "customer_id: Input should be a valid integer"


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/predict", {"customer_id": 10_000_000}, 404, "unknown customer_id"),
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
    error = assert_error_body(response)
    assert says in error.error


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_nan_and_infinite_ids_are_a_400(server, literal):
    body = b'{"customer_id": ' + literal + b"}"
    response = server.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert assert_error_body(response).error == "customer_id: Input should be a valid integer"


@pytest.mark.parametrize(
    "body", [b"", b"[]", b'"x"', b"null", b'{"customer_id": 1', b"\xff\xfe", b"[1, 2]"]
)
def test_bodies_that_are_not_an_object_are_a_4xx(server, body):
    response = server.post("/predict", content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert assert_error_body(response).type == "invalid_request"


def test_oversized_body_is_a_413(server):
    body = b'{"customer_ids": [' + b"1, " * 40_000 + b"1]}"
    response = server.post(
        "/predict/batch", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    error = assert_error_body(response)
    assert error.type == "payload_too_large"
    assert error.error == "request body larger than 65536 bytes"


def test_one_over_the_batch_limit_names_the_field(server):
    response = server.post("/predict/batch", json={"customer_ids": list(range(1, 1002))})
    assert response.status_code == 400, response.text
    error = assert_error_body(response)
    assert error.error == "customer_ids: List should have at most 1000 items, not 1001"
    assert [(d.field, d.code) for d in error.details or []] == [("customer_ids", "too_long")]
    at_limit = server.post("/predict/batch", json={"customer_ids": list(range(1, 1001))})
    assert at_limit.status_code == 200 and len(at_limit.json()) == 1000


def test_unknown_customer_is_a_404_object_of_the_error_shape(world, server):
    before = len(read_prediction_log(world.settings.storage.prediction_log_path(CHURN.name), CHURN))
    response = server.post("/predict", json={"customer_id": 10_000_000})
    assert response.status_code == 404
    assert response.json() == {
        "error": "unknown customer_id (no online features): 10000000",
        "status": 404,
        "type": "unknown_customer",
    }
    assert (
        len(read_prediction_log(world.settings.storage.prediction_log_path(CHURN.name), CHURN))
        == before
    )


def test_batch_with_unknown_customers_answers_the_known_and_logs_only_them(
    world, server, known_customers
):
    known = known_customers[2:4]
    asked = [known[0], 9_999_999, known[1], 9_999_998]
    path = world.settings.storage.prediction_log_path(CHURN.name)
    before = read_prediction_log(path, CHURN)
    response = server.post("/predict/batch", json={"customer_ids": asked})
    assert response.status_code == 200, response.text
    items = response.json()
    assert [item["customer_id"] for item in items] == asked  # request order
    assert [item["variant"] for item in (items[0], items[2])] == ["champion", "champion"]
    assert items[1] == {
        "customer_id": 9_999_999,
        "error": "unknown customer_id (no online features)",
        "type": "unknown_customer",
    }
    assert items[3]["type"] == "unknown_customer" and "churn" not in items[3]
    logged = read_prediction_log(path, CHURN)
    assert len(logged) == len(before) + 2
    assert sorted(logged["customer_id"].iloc[len(before) :]) == sorted(known)


def test_batch_of_only_unknown_customers_is_a_200_and_logs_nothing(world, server):
    path = world.settings.storage.prediction_log_path(CHURN.name)
    before = len(read_prediction_log(path, CHURN))
    response = server.post("/predict/batch", json={"customer_ids": [9_999_997, 9_999_997]})
    assert response.status_code == 200, response.text
    assert [item["type"] for item in response.json()] == ["unknown_customer"] * 2
    assert len(read_prediction_log(path, CHURN)) == before


@pytest.mark.parametrize(
    ("body", "message", "fields"),
    [
        ({"customer_id": "abc"}, "customer_id: Input should be a valid integer", ["customer_id"]),
        ([1], "body: Input should be a JSON object", ["body"]),
        (
            {"customer_id": 0, "debug": 1},
            "customer_id: Input should be greater than or equal to 1; "
            "debug: Extra inputs are not permitted",
            ["customer_id", "debug"],
        ),
    ],
)
def test_validation_errors_name_the_field_not_internal_classes(server, body, message, fields):
    response = server.post("/predict", json=body)
    assert response.status_code == 400
    assert "IODescriptor" not in response.text
    error = assert_error_body(response)
    assert error.error == message
    assert [d.field for d in error.details or []] == fields


def test_batch_validation_errors_give_the_item_path(server):
    response = server.post("/predict/batch", json={"customer_ids": [1, "x", -1]})
    assert response.status_code == 400
    error = assert_error_body(response)
    assert error.error == (
        "customer_ids[1]: Input should be a valid integer; "
        "customer_ids[2]: Input should be greater than or equal to 1"
    )
    assert [(d.field, d.code) for d in error.details or []] == [
        ("customer_ids[1]", "int_type"),
        ("customer_ids[2]", "greater_than_equal"),
    ]


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/vnd.bentoml+pickle",
    ],
)
def test_bodies_that_are_not_json_are_a_415(server, content_type):
    body = b'{"customer_id": 1}'
    for path in ("/predict", "/predict/batch"):
        response = server.post(path, content=body, headers={"content-type": content_type})
        assert response.status_code == 415, response.text
        error = assert_error_body(response)
        assert error.type == "unsupported_media_type"
        assert error.error == (
            f"unsupported Content-Type '{content_type}': send the body as application/json"
        )


@pytest.mark.parametrize("headers", [{"content-type": "application/json; charset=utf-8"}, {}])
def test_json_with_parameters_or_without_a_content_type_is_accepted(
    server, known_customers, headers
):
    body = f'{{"customer_id": {known_customers[0]}}}'.encode()
    response = server.post("/predict", content=body, headers=headers)
    assert response.status_code == 200, response.text


def test_routing_errors_use_the_error_shape(server):
    wrong_method = server.get("/predict")
    assert wrong_method.status_code == 405
    assert (
        assert_error_body(wrong_method).error == "method GET is not allowed on /predict; use POST"
    )
    no_route = server.post("/predict/nothing", json={})
    assert no_route.status_code == 404
    assert assert_error_body(no_route).error == "no such endpoint: POST /predict/nothing"


def test_openapi_documents_the_error_responses(server):
    spec = server.get("/docs.json").json()
    error_ref = {"$ref": "#/components/schemas/Error"}
    expected = {
        "/predict": {400, 401, 404, 413, 415, 431, 500, 503},
        "/predict/batch": {400, 401, 413, 415, 431, 500, 503},
    }
    for model in load_specs():
        expected[f"/models/{model.name}/predict"] = expected["/predict"]
        expected[f"/models/{model.name}/predict/batch"] = expected["/predict/batch"]
    for route, statuses in expected.items():
        responses = spec["paths"][route]["post"]["responses"]
        assert {int(s) for s in responses} == {200, *statuses}
        for status in statuses:
            assert responses[str(status)]["content"]["application/json"]["schema"] == error_ref
    assert "Retry-After" in spec["paths"]["/predict"]["post"]["responses"]["503"]["headers"]
    schemas = spec["components"]["schemas"]
    assert schemas["Error"]["required"] == ["error", "status", "type"]
    assert {"details", "retry_after_seconds"} <= set(schemas["Error"]["properties"])
    assert not {"InvalidArgument", "NotFound", "InternalServerError"} & set(schemas)
    batch = spec["paths"]["/predict/batch"]["post"]["responses"]["200"]
    assert batch["content"]["application/json"]["schema"]["items"] == {
        "$ref": "#/components/schemas/ChurnBatchItem"
    }
    assert schemas["ChurnBatchItem"]["anyOf"] == [
        {"$ref": "#/components/schemas/ChurnPrediction"},
        {"$ref": "#/components/schemas/UnknownCustomer"},
    ]
    assert set(schemas["ChurnPrediction"]["properties"]) >= {"churn", "probability", "features"}
    assert schemas["ChurnPrediction"]["properties"]["features"] == {
        "$ref": "#/components/schemas/ChurnFeatures"
    }
    assert set(schemas["ChurnFeatures"]["properties"]) == set(CHURN.feature_names)


def test_per_variant_metrics(world, server, known_customers):
    served = server.post("/predict", json={"customer_id": known_customers[1]}).json()
    version = served["model_version"]
    assert version == registry.alias_version(world.settings, NAME, registry.CHAMPION)
    text = server.get("/metrics").text
    counted = metric_values(
        text, "churn_predictions_total", model="churn", variant="champion", version=str(version)
    )
    assert counted and counted[0] >= 1, text
    assert metric_values(text, "churn_prediction_seconds_count", model="churn", variant="champion")
    assert "churn_prediction_seconds_bucket" in text
    # multiprocess gauges carry the worker's pid as a label
    served = metric_values(text, "churn_model_version", model="churn", alias="champion")
    assert served and set(served) == {float(version)}, text
    assert all("pid" in line for line in text.splitlines() if line.startswith("churn_model_v"))


def test_malformed_json_is_a_400(server):
    response = server.post(
        "/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    error = assert_error_body(response)
    assert error.error.startswith("body: Invalid JSON: ")
    assert [d.code for d in error.details or []] == ["json_invalid"]


def test_health_endpoints(server):
    assert server.get("/readyz").status_code == 200
    assert server.post("/predict", json={"customer_id": 1}).status_code in (200, 404)
    assert server.get("/livez").status_code == 200
    assert "/predict" in server.get("/docs.json").text


def assert_error_body(response) -> ErrorBody:
    """The response's body, checked to be a JSON object of the one error shape."""
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert isinstance(data, dict), data
    assert set(data) <= set(ErrorBody.model_fields), data
    error = ErrorBody.model_validate(data)
    assert error.status == response.status_code
    assert (error.details is not None) == (error.type == "invalid_request"), data
    assert "IODescriptor" not in response.text
    return error
