"""Online feature reads for serving: Feast's ``get_online_features``, tuned for the hot path.

The store is the project's Feast configuration (``data.store.feature_store_config``)
with two serving-only changes, both Feast/redis-py options rather than code of ours:

- the registry cache refreshes in a background thread (``cache_mode: thread``), so no
  request pays for a registry reload (in ``sync`` mode the first request after each
  ``cache_ttl_seconds`` re-reads the whole SQL registry: a measured p99 stall);
- the Redis client fails fast when Redis is away (socket timeouts, a single immediate
  retry instead of redis-py's default three retries with up to 10 s back-off), so a
  request gets a clear 503 at once and the pool reconnects by itself when Redis is back.
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

log = logging.getLogger(__name__)
FeatureRow = dict[str, object]


class OnlineStoreUnavailable(RuntimeError):
    """The online store did not answer (Redis stopped, unreachable or timing out)."""


class FeatureServiceNotReady(RuntimeError):
    """The model's feature service is not in the Feast registry yet, or does not serve the
    spec's features (no feature pipeline has applied the definitions since it was added)."""


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


def build_serving_store(settings: Settings) -> FeatureStore:
    """A FeatureStore over ``feature_repo/`` with the serving configuration."""
    return get_feature_store(settings, serving_store_config(settings))


class OnlineFeatures:
    """Reads one model's feature service online; built once per worker and model.

    Models share one ``store`` (one registry cache) when it is passed in.
    """

    def __init__(
        self, settings: Settings, spec: ModelSpec, store: FeatureStore | None = None
    ) -> None:
        self.settings = settings
        self.spec = spec
        self.store = store or build_serving_store(settings)
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

    def is_ready(self) -> bool:
        """Whether the feature service is registered and serves the spec's features."""
        try:
            return self.service is not None
        except FeatureServiceNotReady:
            return False

    def read(self, entity_ids: Sequence[int | str]) -> list[FeatureRow | None]:
        """One feature dict per entity, ``None`` for an entity without online features.

        Raises :class:`FeatureServiceNotReady` or :class:`OnlineStoreUnavailable`.
        """
        key = self.spec.entity_key
        service = self.service
        try:
            response = self.store.get_online_features(
                features=service, entity_rows=[{key: c} for c in entity_ids]
            )
        except (redis.RedisError, sqlite3.OperationalError, OSError) as error:
            raise OnlineStoreUnavailable(f"online feature store unavailable: {error}") from error
        columns = response.to_dict()
        rows: list[FeatureRow | None] = []
        for i in range(len(entity_ids)):
            row = {c: columns[c][i] for c in self.spec.feature_names}
            rows.append(None if all(v is None for v in row.values()) else row)
        return rows

    def is_reachable(self) -> bool:
        """Whether the online store answers now (Redis PING; the SQLite file exists)."""
        if self._redis is None:
            return Path(self.store.config.online_store.path).exists()
        try:
            return bool(self._redis.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        """Stop the registry refresh thread and drop connections."""
        # A caching registry in "thread" mode refreshes on a public Timer attribute.
        refresh = getattr(self.store.registry, "registry_refresh_thread", None)
        if refresh is not None:
            refresh.cancel()
        if self._redis is not None:
            self._redis.close()
