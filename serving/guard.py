"""ASGI middleware in front of the BentoML app: bearer-key auth, JSON-only bodies, request
header and body limits, no redirects, and the one error contract (serving/errors.py) on
every response.

The settings are read when the app is built (not at import). The key is compared in
constant time and never logged; health, metrics and OpenAPI routes stay open so probes
and scrapers need no secret.

What the HTTP server refuses itself never reaches the guard: BentoML runs uvicorn with its
httptools parser, which answers a malformed request (an invalid or repeated Content-Length,
Transfer-Encoding together with Content-Length) with a plain-text 400 and closes the
connection, and BentoML has no setting to change that. See docs/serving.md.

BentoML 1.4 renders its own errors (validation, routing, its exceptions) in shapes of its
own and offers no public hook to change them, so the guard rewrites error responses on
their way out, and documents the contract in the OpenAPI document it serves.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from core.settings import get_settings
from serving.errors import MAX_TEXT, convert_error, error_payload, patch_openapi

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
PROTECTED_PREFIX = ("/predict", "/models/")  # the prediction routes of every model
OPENAPI_PATH = "/docs.json"
JSON_MEDIA_TYPE = b"application/json"
AUTH_SCHEME = b"bearer"  # compared lower-cased: auth schemes are case-insensitive (RFC 9110)
# Each header line on the wire is "name: value" plus CRLF, four bytes more than name + value.
HEADER_LINE_OVERHEAD = 4


class RequestGuard:
    """431 for headers over their size limit, 401 without the configured bearer key, 415 for
    a body that is not JSON, 400 for an invalid Content-Length, 413 for a body over the size
    limit, 404 instead of a redirect; every error answer in the shape of serving/errors.py.

    ``error_statuses`` maps each API route to the error statuses it can answer, for the
    OpenAPI document (``/docs.json``).
    """

    def __init__(self, app: ASGIApp, error_statuses: Mapping[str, Sequence[int]] | None = None):
        settings = get_settings()
        self.app = app
        key = settings.serving.api_key
        self.key = key.get_secret_value().encode() if key else None
        self.max_body = settings.serving.max_body_bytes
        self.max_headers = settings.serving.max_header_bytes
        self.error_statuses = dict(error_statuses or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == OPENAPI_PATH and scope["method"] == "GET":
            send = _openapi_patcher(send, self.error_statuses)
        send = _error_rewriter(scope, send)
        raw_headers: list[tuple[bytes, bytes]] = list(scope.get("headers") or [])
        # The server (httptools) reads headers of any size; bounding them here at least keeps
        # megabytes of them away from auth, routing and every middleware after this one.
        if header_bytes(raw_headers) > self.max_headers:
            await reply(send, 431, f"request headers larger than {self.max_headers} bytes")
            return
        send = _redirect_refuser(scope, send)
        if not path.startswith(PROTECTED_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = dict(raw_headers)
        if self.key is not None and not bearer_matches(headers.get(b"authorization"), self.key):
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
        try:
            declared = content_length(raw_headers)
        except ValueError as invalid:
            await reply(send, 400, str(invalid))
            return
        if declared is not None and declared > self.max_body:
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


def header_bytes(headers: Iterable[tuple[bytes, bytes]]) -> int:
    """The size of the header lines as sent, ``name: value`` and CRLF each."""
    return sum(len(name) + len(value) + HEADER_LINE_OVERHEAD for name, value in headers)


def bearer_matches(authorization: bytes | None, key: bytes) -> bool:
    """Whether ``Authorization`` carries ``key`` with the Bearer scheme in any letter case.

    The key is compared in constant time whatever the scheme, so neither a wrong scheme nor
    a wrong key answers faster than the other.
    """
    scheme, _, credentials = (authorization or b"").partition(b" ")
    # httptools keeps a header value's trailing whitespace, which is not part of it (RFC 9110).
    key_matches = hmac.compare_digest(credentials.strip(b" \t"), key)
    return scheme.lower() == AUTH_SCHEME and key_matches


def content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The declared body length (None without one); ``ValueError`` unless every
    Content-Length is the same non-negative decimal integer."""
    values = {value.strip(b" \t") for name, value in headers if name.lower() == b"content-length"}
    if not values:
        return None
    shown = b", ".join(sorted(values)).decode("latin-1")[:MAX_TEXT]
    if len(values) > 1 or not next(iter(values)).isdigit():
        raise ValueError(f"invalid Content-Length '{shown}': send one non-negative integer")
    return int(next(iter(values)))


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


def _redirect_refuser(scope: Scope, send: Send) -> Send:
    """A redirect leaves as a 404 naming the path it pointed at, with no ``Location``.

    Starlette's router (BentoML leaves its ``redirect_slashes`` on and has no setting for
    it) answers ``/predict/`` with a redirect to an absolute URL built from the Host header,
    which the client chooses: behind a cache or in a crafted link it sends others to any
    host. The service has no redirect of its own, so none is let out.
    """
    method, path = scope["method"], scope["path"][:MAX_TEXT]
    refused = False

    async def wrapped(message: Message) -> None:
        nonlocal refused
        if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
            headers = message.get("headers", [])
            location = next((v for k, v in headers if k.lower() == b"location"), None)
            if location is not None:
                refused = True
                target = urlsplit(location.decode("latin-1")).path[:MAX_TEXT]
                await reply(send, 404, f"no such endpoint: {method} {path}; did you mean "
                            f"{target}?")  # fmt: skip
                return
        if not refused:  # else the redirect's own body, already answered
            await send(message)

    return wrapped


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
