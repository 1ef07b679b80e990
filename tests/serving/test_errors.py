"""The error contract's conversions, on the bodies BentoML 1.4 and Starlette render."""

import json

import pytest

from serving.errors import ErrorBody, convert_error, error_payload, field_path, patch_openapi


def converted(status: int, body: bytes, method: str = "POST", path: str = "/predict") -> dict:
    data = json.loads(convert_error(status, body, method, path, allow=None))
    ErrorBody.model_validate(data)
    assert data["status"] == status
    return data


@pytest.mark.parametrize(
    ("loc", "path"),
    [(["customer_id"], "customer_id"), (["customer_ids", 2], "customer_ids[2]"),
     ([], "body"), (["a", "b", 0, "c"], "a.b[0].c")],
)  # fmt: skip
def test_field_paths_read_like_the_request(loc, path):
    assert field_path(loc) == path


def test_bodies_already_in_the_shape_pass_unchanged():
    body = error_payload(503, "online feature store unavailable: x", retry_after_seconds=1)
    assert convert_error(503, body, "POST", "/predict", None) == body


def test_bentoml_exception_lists_keep_their_message():
    data = converted(404, b'[{"error":"task_id not found"}]')
    assert (data["error"], data["type"]) == ("task_id not found", "not_found")


def test_bentoml_unexpected_errors_are_internal_errors():
    body = b'{"error":"An unexpected error has occurred, please check the server log."}'
    assert converted(500, body)["type"] == "internal_error"


def test_plain_text_errors_keep_their_text():
    data = converted(503, b"Service is not ready", "GET", "/readyz")
    assert (data["error"], data["type"]) == ("Service is not ready", "unavailable")


def test_validation_errors_drop_the_class_name():
    body = (
        b'{"error":"1 validation error for PredictRequestIODescriptor","detail":'
        b'[{"type":"model_type","loc":[],"msg":"Input should be a valid dictionary or '
        b'instance of PredictRequestIODescriptor"}]}'
    )
    data = converted(400, body)
    assert "IODescriptor" not in json.dumps(data)
    assert data["error"] == "body: Input should be a JSON object"


def test_openapi_patch_replaces_bentoml_error_responses():
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/NotFound"}}}}
    spec = {
        "paths": {"/predict": {"post": {"responses": {"200": {}, "404": ref}}}},
        "components": {"schemas": {"NotFound": {}}},
    }
    patch_openapi(spec, {"/predict": [404, 415]})
    responses = spec["paths"]["/predict"]["post"]["responses"]
    assert set(responses) == {"200", "404", "415"}
    assert "NotFound" not in spec["components"]["schemas"]
    assert {"Error", "ErrorDetail"} <= set(spec["components"]["schemas"])
