"""Property-based fuzzing of the served OpenAPI schema: no input makes the service answer
5xx, and every answer of the API routes (errors included) matches its documented schema."""

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.slow

# The API routes document every status and body they answer (serving/errors.py); BentoML's
# infrastructure routes document only their 200, so they are held to "no 5xx" alone.
API_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def is_api_route(path: str) -> bool:
    """The prediction routes (as opposed to BentoML's health, metrics and docs routes)."""
    return path.startswith("/predict")


def test_no_generated_request_gets_a_5xx_or_an_undocumented_answer(server: httpx.Client):
    base_url = str(server.base_url).rstrip("/")
    schema = schemathesis.openapi.from_dict(server.get("/docs.json").json())
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert any(op.path == "/predict" for op in operations)
    for operation in operations:
        is_api = is_api_route(operation.path)
        mode = (
            list(schemathesis.GenerationMode) if is_api else [schemathesis.GenerationMode.POSITIVE]
        )
        for generation_mode in mode:

            @given(case=operation.as_strategy(generation_mode=generation_mode))
            @settings(
                max_examples=60 if is_api else 5,
                deadline=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def call(case) -> None:
                response = case.call(base_url=base_url, timeout=10)
                seen = f"{case.method} {case.path} {case.body!r} -> {response.status_code}"
                if response.status_code >= 500:
                    failures.append(f"{seen} {response.text}")
                if not is_api_route(case.path):
                    return
                if "IODescriptor" in response.text:  # BentoML's generated class names
                    failures.append(f"{seen} names an internal class: {response.text}")
                try:
                    case.validate_response(response, checks=API_CHECKS)
                except Exception as failure:  # schemathesis' FailureGroup: one per check
                    failures.append(f"{seen} {failure}")

            call()
    assert failures == []
