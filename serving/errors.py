"""The API's one error contract: the error body, its OpenAPI schema, and the conversion of
errors that BentoML or Starlette render in their own shapes.

Every error answer of the API is a JSON object ``{"error", "status", "type"}`` with
optional ``details`` (one entry per invalid field) and ``retry_after_seconds`` (503).
``error`` is the human message, ``type`` the stable machine code. See docs/serving.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema


# Raised by serving/features.py; defined here so that the API's definition names them
# without importing Feast (see serving/service.py).
class OnlineStoreUnavailable(RuntimeError):
    """The online store did not answer (Redis stopped, unreachable or timing out)."""


class FeatureServiceNotReady(RuntimeError):
    """The model's feature service is not in the Feast registry yet, or does not serve the
    spec's features (no feature pipeline has applied the definitions since it was added)."""


ErrorType = Literal[
    "invalid_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "unknown_customer",
    "method_not_allowed",
    "payload_too_large",
    "unsupported_media_type",
    "headers_too_large",
    "too_many_requests",
    "internal_error",
    "unavailable",
    "timeout",
    "http_error",
]

TYPE_BY_STATUS: dict[int, ErrorType] = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    431: "headers_too_large",
    500: "internal_error",
    503: "unavailable",
    504: "timeout",
}

# What each status means on this API, for the OpenAPI document.
DESCRIPTIONS: dict[int, str] = {
    400: "Invalid body: not JSON, not an object, or a field breaks its rule (see details)",
    401: "Missing or wrong API key (only when CHURN_SERVE_API_KEY is set)",
    404: "Unknown customer: the online store holds no features for it (nothing is logged)",
    413: "Request body larger than CHURN_SERVE_MAX_BODY_BYTES",
    415: "Content-Type is not application/json",
    431: "Request headers larger than CHURN_SERVE_MAX_HEADER_BYTES (all lines together)",
    500: "Unexpected server error (a bug: see the server log)",
    503: (
        "No model loaded yet, or the online store or the prediction log store is unavailable "
        "(nothing was logged); retry after Retry-After"
    ),
}

ERROR_SCHEMA = "Error"
REF_TEMPLATE = "#/components/schemas/{model}"
# More field messages than this are counted, not spelled out, in the "error" string.
MESSAGE_FIELDS = 5
MAX_TEXT = 200  # characters of a plain-text error body (or of a path) kept in a message


class ErrorDetail(BaseModel):
    """One invalid field of a request body."""

    field: str = Field(description='Path of the field, e.g. "customer_ids[2]"; "body" itself')
    message: str = Field(description="What is wrong with it")
    code: str = Field(description="pydantic's error type, e.g. int_type, missing")


class ErrorBody(BaseModel):
    """The body of every error response."""

    model_config = ConfigDict(title="Error")
    error: str = Field(description="Human-readable message")
    status: int = Field(description="The HTTP status code, repeated")
    type: ErrorType = Field(description="Stable machine-readable error code")
    # SkipJsonSchema keeps `null` out of the schema: absent fields are omitted, never null.
    details: list[ErrorDetail] | SkipJsonSchema[None] = Field(
        default=None, description="Invalid fields (400 only)"
    )
    retry_after_seconds: int | SkipJsonSchema[None] = Field(
        default=None, description="Seconds to wait before retrying (503 only)"
    )


def error_payload(
    status: int,
    message: str,
    error_type: ErrorType | None = None,
    details: Sequence[ErrorDetail] | None = None,
    retry_after_seconds: int | None = None,
) -> bytes:
    """The JSON bytes of an error body; ``error_type`` defaults to the status's code."""
    body = ErrorBody(
        error=message,
        status=status,
        type=error_type or TYPE_BY_STATUS.get(status, "http_error"),
        details=list(details) if details is not None else None,
        retry_after_seconds=retry_after_seconds,
    )
    return body.model_dump_json(exclude_none=True).encode()


def is_error_body(data: object, status: int) -> bool:
    """Whether ``data`` already follows the contract (our own answers pass unchanged)."""
    return (
        isinstance(data, dict)
        and isinstance(data.get("error"), str)
        and data.get("status") == status
        and isinstance(data.get("type"), str)
    )


def field_path(loc: Sequence[str | int]) -> str:
    """pydantic's ``loc`` as a user-facing path: ``("customer_ids", 2)`` -> ``customer_ids[2]``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "body"


def validation_details(errors: Sequence[Mapping[str, Any]]) -> list[ErrorDetail]:
    """pydantic's error list (as BentoML renders it) in user terms.

    Messages are pydantic's own, except the one that names the model class (the body is not
    an object): BentoML's generated class name means nothing to a client.
    """
    details = []
    for item in errors:
        code = str(item.get("type", "invalid"))
        message = str(item.get("msg", "invalid value"))
        if code in ("model_type", "model_attributes_type", "dict_type"):
            message = "Input should be a JSON object"
        details.append(ErrorDetail(field=field_path(item.get("loc") or ()), message=message,
                                   code=code))  # fmt: skip
    return details


def validation_message(details: Sequence[ErrorDetail]) -> str:
    """``customer_id: Input should be a valid integer; ...`` (the first few fields)."""
    parts = [f"{d.field}: {d.message}" for d in details[:MESSAGE_FIELDS]]
    if len(details) > MESSAGE_FIELDS:
        parts.append(f"and {len(details) - MESSAGE_FIELDS} more (see details)")
    return "; ".join(parts) or "invalid request"


def convert_error(status: int, body: bytes, method: str, path: str, allow: str | None) -> bytes:
    """Any error response body rendered by BentoML or Starlette, in the contract's shape.

    BentoML answers a validation error with ``{"error": "... for <Class>", "detail": [...]}``,
    its other exceptions with a one-item list, and Starlette's router with plain text.
    """
    try:
        data: Any = json.loads(body) if body else None
    except ValueError:
        data = None
    if is_error_body(data, status):
        return body
    if isinstance(data, list) and len(data) == 1:
        data = data[0]  # BentoML wraps its exception messages in a list
    if isinstance(data, dict) and isinstance(data.get("detail"), list):
        details = validation_details([d for d in data["detail"] if isinstance(d, dict)])
        return error_payload(status, validation_message(details), details=details)
    if data is None and status in (404, 405):  # Starlette's router answers in plain text
        path = path[:MAX_TEXT]
        if status == 404:
            return error_payload(status, f"no such endpoint: {method} {path}")
        allowed = f"; use {allow}" if allow else ""
        return error_payload(status, f"method {method} is not allowed on {path}{allowed}")
    message = data.get("error") if isinstance(data, dict) else None
    if message is None and data is None:  # plain text, e.g. Starlette's HTTPException
        message = body.decode("utf-8", "replace").strip()[:MAX_TEXT]
    if not isinstance(message, str) or not message:
        message = status_phrase(status)
    return error_payload(status, message)


def status_phrase(status: int) -> str:
    """The standard reason phrase of ``status`` ("HTTP 599" for a code it does not know)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def error_schemas() -> dict[str, Any]:
    """OpenAPI component schemas of the error body (and its nested models)."""
    schema = ErrorBody.model_json_schema(ref_template=REF_TEMPLATE, mode="serialization")
    nested = schema.pop("$defs", {})
    for field in schema["properties"].values():
        field.pop("default", None)  # optional fields are omitted, never sent as null
    return {ERROR_SCHEMA: schema, **nested}


def error_response_doc(status: int) -> dict[str, Any]:
    """The OpenAPI response object of one error status."""
    schema = {"$ref": REF_TEMPLATE.format(model=ERROR_SCHEMA)}
    doc: dict[str, Any] = {
        "description": DESCRIPTIONS.get(status, status_phrase(status)),
        "content": {"application/json": {"schema": schema}},
    }
    if status == 503:
        doc["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}}
    if status == 401:
        doc["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return doc


def patch_openapi(spec: dict[str, Any], error_statuses: Mapping[str, Sequence[int]]) -> None:
    """Document the contract in BentoML's generated OpenAPI ``spec`` (changed in place).

    BentoML 1.4 has no public hook for an API's error responses: it lists 400/404/500 with
    its own ``{"error", "detail": string}`` schemas. For each route in ``error_statuses``
    those are replaced by the statuses the route can answer, all with the ``Error`` schema;
    BentoML's error schemas are dropped once nothing refers to them.
    """
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(error_schemas())
    for route, statuses in error_statuses.items():
        for operation in spec.get("paths", {}).get(route, {}).values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for code in [c for c in responses if str(c)[0] in "45"]:
                del responses[code]
            responses.update({str(s): error_response_doc(s) for s in sorted(statuses)})
    text = json.dumps(spec["paths"])
    for name in ("InvalidArgument", "NotFound", "InternalServerError"):
        if REF_TEMPLATE.format(model=name) not in text:
            schemas.pop(name, None)
