"""ASGI middleware in front of the BentoML app: bearer-key auth, JSON-only bodies, a request
body limit, and the one error contract (serving/errors.py) on every response.

The settings are read when the app is built (not at import). The key is compared in
constant time and never logged; health, metrics and OpenAPI routes stay open so probes
and scrapers need no secret.

BentoML 1.4 renders its own errors (validation, routing, its exceptions) in shapes of its
own and offers no public hook to change them, so the guard rewrites error responses on
their way out, and documents the contract in the OpenAPI document it serves.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any

from core.settings import get_settings
from serving.errors import convert_error, error_payload, patch_openapi

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
PROTECTED_PREFIX = ("/predict", "/models/")  # the prediction routes of every model
OPENAPI_PATH = "/docs.json"
JSON_MEDIA_TYPE = b"application/json"


class RequestGuard:
    """401 without the configured bearer key, 415 for a body that is not JSON, 413 for a
    body over the size limit; every error answer in the shape of serving/errors.py.

    ``error_statuses`` maps each API route to the error statuses it can answer, for the
    OpenAPI document (``/docs.json``).
    """

    def __init__(self, app: ASGIApp, error_statuses: Mapping[str, Sequence[int]] | None = None):
        settings = get_settings()
        self.app = app
        key = settings.serving.api_key
        self.expected = f"Bearer {key.get_secret_value()}".encode() if key else None
        self.max_body = settings.serving.max_body_bytes
        self.error_statuses = dict(error_statuses or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == OPENAPI_PATH and scope["method"] == "GET":
            send = _openapi_patcher(send, self.error_statuses)
        send = _error_rewriter(scope, send)
        if not path.startswith(PROTECTED_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self.expected is not None and not hmac.compare_digest(
            headers.get(b"authorization", b""), self.expected
        ):
            await reply(send, 401, "missing or wrong API key (Authorization: Bearer <key>)",
                        [(b"www-authenticate", b'Bearer realm="churn"')])  # fmt: skip
            return
        content_type = headers.get(b"content-type")
        # No Content-Type is read as JSON (BentoML's default); any other type is refused
        # here, because BentoML would otherwise parse form and multipart bodies too.
        if scope["method"] == "POST" and content_type is not None and not _is_json(content_type):
            shown = content_type.decode("latin-1")[:100]
            await reply(send, 415, f"unsupported Content-Type '{shown}': send the body as "
                        "application/json")  # fmt: skip
            return
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await reply(send, 413, f"request body larger than {self.max_body} bytes")
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # client went away mid-body
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                await reply(send, 413, f"request body larger than {self.max_body} bytes")
                return
        await self.app(scope, _replay(bytes(body), receive), send)


def _is_json(content_type: bytes) -> bool:
    """``application/json``, with or without parameters such as ``charset``."""
    return content_type.split(b";", 1)[0].strip().lower() == JSON_MEDIA_TYPE


def _replay(body: bytes, original: Receive) -> Receive:
    """A receive callable that hands the app the buffered body, then the server's events."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await original()

    return receive


def _buffered(
    send: Send, wants: Callable[[Message], bool], rewrite: Callable[[Message, bytes], bytes]
) -> Send:
    """A send callable that holds a response ``wants(start)`` picks until its body is whole,
    then sends ``rewrite(start, body)`` as a JSON body instead; others pass straight through.
    """
    start: Message | None = None
    body = bytearray()

    async def wrapped(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            if not wants(message):
                await send(message)
                return
            start = message
            return
        if start is None or message["type"] != "http.response.body":
            await send(message)
            return
        body.extend(message.get("body", b""))
        if message.get("more_body", False):
            return
        payload = rewrite(start, bytes(body))
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in _BODY_HEADERS]
        headers += [
            (b"content-type", JSON_MEDIA_TYPE),
            (b"content-length", str(len(payload)).encode()),
        ]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": payload, "more_body": False})

    return wrapped


_BODY_HEADERS = {b"content-type", b"content-length"}


def _error_rewriter(scope: Scope, send: Send) -> Send:
    """Error responses (4xx/5xx) leave in the contract's shape; others pass unchanged."""
    method, path = scope["method"], scope["path"]

    def rewrite(start: Message, body: bytes) -> bytes:
        headers = start.get("headers", [])
        allow = next((v.decode("latin-1") for k, v in headers if k.lower() == b"allow"), None)
        return convert_error(start["status"], body, method, path, allow)

    return _buffered(send, lambda start: start["status"] >= 400, rewrite)


def _openapi_patcher(send: Send, error_statuses: Mapping[str, Sequence[int]]) -> Send:
    """``/docs.json`` with the error contract documented on the API routes."""

    def rewrite(_: Message, body: bytes) -> bytes:
        spec = json.loads(body)
        patch_openapi(spec, error_statuses)
        return json.dumps(spec).encode()

    return _buffered(send, lambda start: start["status"] == 200, rewrite)


async def reply(
    send: Send,
    status: int,
    error: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a small JSON error response in the contract's shape."""
    payload = error_payload(status, error)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", JSON_MEDIA_TYPE),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
