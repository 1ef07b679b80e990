"""Property-based fuzzing of the served OpenAPI schema: no input makes the service answer 5xx."""

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

pytestmark = pytest.mark.slow


def test_no_generated_request_gets_a_5xx(server: httpx.Client):
    base_url = str(server.base_url).rstrip("/")
    schema = schemathesis.openapi.from_dict(server.get("/docs.json").json())
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert any(op.path == "/predict" for op in operations)
    for operation in operations:
        mode = (
            list(schemathesis.GenerationMode)
            if operation.path.startswith("/predict")
            else [schemathesis.GenerationMode.POSITIVE]
        )
        for generation_mode in mode:

            @given(case=operation.as_strategy(generation_mode=generation_mode))
            @settings(
                max_examples=60 if operation.path.startswith("/predict") else 5,
                deadline=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def call(case) -> None:
                response = case.call(base_url=base_url, timeout=10)
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.path} {case.body!r} -> {response.text}")

            call()
    assert failures == []
