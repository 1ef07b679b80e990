"""Online feature reads for serving: Feast's ``get_online_features``, tuned for the hot path.

The store is the project's Feast configuration (``data.store.feature_store_config``)
with two serving-only changes, both Feast/redis-py options rather than code of ours:

- the registry cache refreshes in a background thread (``cache_mode: thread``), so no
  request pays for a registry reload (in ``sync`` mode the first request after each
  ``cache_ttl_seconds`` re-reads the whole SQL registry: a measured p99 stall);
- the Redis client fails fast when Redis is away (socket timeouts, a single immediate
  retry instead of redis-py's default three retries with up to 10 s back-off), so a
  request gets a clear 503 at once and the pool reconnects by itself when Redis is back.

On top of those, a circuit breaker (serving/breaker.py, shared by every model of a
worker) marks the store down after a connection error or a timeout: the requests that
follow answer 503 at once instead of each waiting out the socket timeout in turn (a frozen
Redis), and one probe per ``CHURN_SERVE_RETRY_AFTER_SECONDS`` finds it up again.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import redis
from feast import FeatureService, FeatureStore
from feast.errors import FeatureServiceNotFoundException

from core.settings import Settings
from core.spec import ModelSpec
from data.store import feature_store_config, get_feature_store
from serving.breaker import CircuitBreaker, StoreDown
from serving.errors import FeatureServiceNotReady, OnlineStoreUnavailable

log = logging.getLogger(__name__)
FeatureRow = dict[str, object]
# Errors that answer 503; of those, the ones that also mark the store down (the breaker).
STORE_ERRORS = (redis.RedisError, sqlite3.OperationalError, OSError)
STORE_DOWN_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
UNAVAILABLE = "online feature store unavailable"


def serving_store_config(settings: Settings) -> dict:
    """The project's Feast configuration with the serving options described above."""
    config = feature_store_config(settings)
    config["registry"] = {**config["registry"], "cache_mode": "thread"}
    online = dict(config["online_store"])
    if online["type"] == "redis":
        timeout = settings.serving.online_timeout_seconds
        online["connection_string"] += (
            f",socket_timeout={timeout},socket_connect_timeout={timeout},retry=null"
        )
    config["online_store"] = online
    return config


def online_store_breaker(settings: Settings) -> CircuitBreaker:
    """The breaker of the online store: down for ``CHURN_SERVE_RETRY_AFTER_SECONDS``."""
    return CircuitBreaker("online feature store", settings.serving.retry_after_seconds)


def build_serving_store(settings: Settings) -> FeatureStore:
    """A FeatureStore over ``feature_repo/`` with the serving configuration."""
    return get_feature_store(settings, serving_store_config(settings))


class OnlineFeatures:
    """Reads one model's feature service online; built once per worker and model.

    Models share one ``store`` (one registry cache) and one ``breaker`` (one online store)
    when they are passed in.
    """

    def __init__(
        self,
        settings: Settings,
        spec: ModelSpec,
        store: FeatureStore | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.settings = settings
        self.spec = spec
        self.store = store or build_serving_store(settings)
        self.breaker = breaker or online_store_breaker(settings)
        self._service: FeatureService | None = None
        self._redis = redis.Redis.from_url(
            settings.storage.redis_url,
            socket_timeout=settings.serving.online_timeout_seconds,
            socket_connect_timeout=settings.serving.online_timeout_seconds,
            retry=None,  # fail fast like Feast's own client (retry=null): readiness must not wait
        ) if settings.storage.redis_url else None  # fmt: skip

    @property
    def service(self) -> FeatureService:
        """The spec's feature service, looked up in the registry until it is there.

        A model whose service is not registered yet (a model added since the last feature
        pipeline run) is not ready; the other models serve meanwhile.
        """
        if self._service is None:
            name = self.spec.feature_service
            try:
                service = self.store.get_feature_service(name)
            except FeatureServiceNotFoundException as error:
                raise FeatureServiceNotReady(
                    f"feature service {name} is not registered yet: run feature_pipeline"
                ) from error
            served = [f.name for p in service.feature_view_projections for f in p.features]
            if sorted(served) != sorted(self.spec.feature_names):
                raise FeatureServiceNotReady(
                    f"feature service {name} serves {sorted(served)}, but the "
                    f"{self.spec.name} spec declares {sorted(self.spec.feature_names)}"
                )
            self._service = service
        return self._service

    def not_ready_reason(self) -> str | None:
        """None when the feature service is registered and serves the spec's features,
        else why not."""
        try:
            self.service  # noqa: B018 -- the property looks it up until it is registered
        except FeatureServiceNotReady as error:
            return str(error)
        return None

    def is_ready(self) -> bool:
        """Whether the feature service is registered and serves the spec's features."""
        return self.not_ready_reason() is None

    def read(self, entity_ids: Sequence[int | str]) -> list[FeatureRow | None]:
        """One feature dict per entity, ``None`` for an entity without online features.

        Raises :class:`FeatureServiceNotReady` or :class:`OnlineStoreUnavailable`.
        """
        key = self.spec.entity_key
        service = self.service
        try:
            response = self.breaker.call(
                self.store.get_online_features,
                STORE_DOWN_ERRORS,
                features=service,
                entity_rows=[{key: c} for c in entity_ids],
            )
        except StoreDown as down:
            raise OnlineStoreUnavailable(f"{UNAVAILABLE}: {down}") from None
        except STORE_ERRORS as error:
            raise OnlineStoreUnavailable(f"{UNAVAILABLE}: {error}") from error
        columns = response.to_dict()
        rows: list[FeatureRow | None] = []
        for i in range(len(entity_ids)):
            row = {c: columns[c][i] for c in self.spec.feature_names}
            rows.append(None if all(v is None for v in row.values()) else row)
        return rows

    def unavailable_reason(self) -> str | None:
        """None when the online store answers now (Redis PING through the breaker; the
        SQLite file exists), else why not."""
        if self._redis is None:
            path = Path(self.store.config.online_store.path)
            return None if path.exists() else f"{UNAVAILABLE}: {path} does not exist"
        try:
            self.breaker.call(self._redis.ping, STORE_DOWN_ERRORS)
        except StoreDown as down:
            return f"{UNAVAILABLE}: {down}"
        except redis.RedisError as error:
            return f"{UNAVAILABLE}: {error}"
        return None

    def is_reachable(self) -> bool:
        """Whether the online store answers now (see :meth:`unavailable_reason`)."""
        return self.unavailable_reason() is None

    def close(self) -> None:
        """Stop the registry refresh thread and drop connections."""
        # A caching registry in "thread" mode refreshes on a public Timer attribute.
        refresh = getattr(self.store.registry, "registry_refresh_thread", None)
        if refresh is not None:
            refresh.cancel()
        if self._redis is not None:
            self._redis.close()
