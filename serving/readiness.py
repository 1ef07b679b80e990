"""``GET /readyz`` with its reasons: the service's readiness, said in a JSON body.

BentoML's own ``/readyz`` asks ``__is_ready__()`` for a bool and answers an empty 200 or
a fixed "not ready" 503, so a probe or an operator cannot tell why. The
:class:`ReadinessRoute` middleware answers ``GET /readyz`` itself from
:meth:`Predictor.readiness` (run in a worker thread: it pings the stores):

- **200** ``{"status": "ready", "models": {...}}``: ready.
- **200** ``{"status": "degraded", "degraded": [...], "models": {...}}``: ready, but a model
  serves an older version than the registry names, because that version failed to load
  (it is retried with back-off). Not a 503 on purpose: every replica reads the same
  registry and artifact store, so "not ready" would take all of them out of the load
  balancer at once and turn a failed promotion into an outage, while the older version
  still answers correctly. ``churn_model_behind`` says the same to alerting.
- **503** + ``Retry-After``, in the error shape of serving/errors.py, ``error`` listing
  every reason: the default model's champion is not loaded, its feature service is not
  registered, the online store or the prediction log store is unreachable.

``models`` holds, per model and alias, the ``served`` version against the ``registry``
one (and, while the alias lags, ``error`` and ``retry_in_seconds``). Before the service
instance exists (start-up) BentoML's own route answers.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import bentoml
from bentoml.exceptions import BentoMLException

from serving.errors import error_payload

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
READYZ = "/readyz"


@dataclass(frozen=True)
class Readiness:
    """Whether the service takes traffic, why not, and what it serves."""

    problems: list[str] = field(default_factory=list)  # empty: ready
    degraded: list[str] = field(default_factory=list)  # ready, but lagging the registry
    models: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    retry_after_seconds: int = 1

    @property
    def ready(self) -> bool:
        return not self.problems

    def response(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Status, extra headers and JSON body of ``/readyz``."""
        if not self.ready:
            retry = self.retry_after_seconds
            message = "not ready: " + "; ".join(self.problems)
            payload = error_payload(503, message, retry_after_seconds=retry)
            return 503, [(b"retry-after", str(retry).encode())], payload
        body: dict[str, Any] = {"status": "degraded" if self.degraded else "ready"}
        if self.degraded:
            body["degraded"] = self.degraded
        body["models"] = self.models
        return 200, [], json.dumps(body).encode()


class ReadinessRoute:
    """Answers ``GET /readyz`` from the service instance's ``readiness()``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != READYZ or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        try:
            service = bentoml.get_current_service()
        except BentoMLException:  # not instantiated yet: BentoML's own answer (503)
            await self.app(scope, receive, send)
            return
        readiness: Readiness = await anyio.to_thread.run_sync(service.readiness)
        status, headers, body = readiness.response()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
