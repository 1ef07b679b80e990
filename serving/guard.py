"""ASGI middleware in front of the BentoML app: bearer-key auth and a request body limit.

Both read the settings when the app is built (not at import). The key is compared in
constant time and never logged; health, metrics and OpenAPI routes stay open so probes
and scrapers need no secret.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from feature_repo.settings import get_settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
PROTECTED_PREFIX = "/predict"


class RequestGuard:
    """401 without the configured bearer key, 413 for a body over the size limit."""

    def __init__(self, app: ASGIApp) -> None:
        settings = get_settings()
        self.app = app
        key = settings.serve_api_key
        self.expected = f"Bearer {key.get_secret_value()}".encode() if key else None
        self.max_body = settings.serve_max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED_PREFIX):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self.expected is not None and not hmac.compare_digest(
            headers.get(b"authorization", b""), self.expected
        ):
            await reply(send, 401, "missing or wrong API key (Authorization: Bearer <key>)",
                        [(b"www-authenticate", b'Bearer realm="churn"')])  # fmt: skip
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


async def reply(
    send: Send, status: int, error: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Send a small JSON error response."""
    payload = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
