"""Feast operations: configuration from settings, apply, materialize, retrieval.

The Feast configuration is built from the settings: in memory for this code, and written
as ``feature_repo/feature_store.yaml`` by ``make feast-config`` for the Feast CLI, so both
read one configuration. The Delta tables are read by Feast's DuckDB offline
store, which honours the Delta log and keeps one output row per entity row.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.metadata
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import yaml
from feast import FeatureStore, RepoConfig
from feast.repo_contents import RepoContents
from feast.repo_operations import parse_repo

from core.settings import FEATURE_REPO_DIR, Settings

YAML_HEADER = (
    "# Rendered from the CHURN_* settings by data.store.write_feature_store_yaml\n"
    "# (`make feast-config`). Change the environment, not this file.\n"
)


def feast_redis_connection_string(redis_url: str) -> str:
    """Turn ``redis://[:password@]host:port/db`` into Feast's ``host:port,db=N`` form."""
    parts = urlsplit(redis_url)
    if parts.scheme not in {"redis", "rediss"}:
        raise ValueError(f"CHURN_REDIS_URL must start with redis:// or rediss://: {redis_url!r}")
    host = parts.hostname or "localhost"
    pieces = [f"{host}:{parts.port or 6379}"]
    db = parts.path.lstrip("/")
    if db:
        pieces.append(f"db={int(db)}")
    if parts.password:
        pieces.append(f"password={parts.password}")
    if parts.username:
        pieces.append(f"username={parts.username}")
    if parts.scheme == "rediss":
        pieces.append("ssl=true")
    return ",".join(pieces)


def feature_store_config(settings: Settings) -> dict:
    """The feature_store.yaml content for these settings."""
    if settings.redis_url:
        online = {
            "type": "redis",
            "connection_string": feast_redis_connection_string(settings.redis_url),
        }
    else:
        online = {"type": "sqlite", "path": str(settings.feast_dir / "online.db")}
    return {
        "project": settings.feast_project,
        "provider": "local",
        "registry": {
            "registry_type": "sql",
            "path": f"sqlite:///{settings.feast_dir / 'registry.db'}",
            "cache_ttl_seconds": 60,
        },
        "online_store": online,
        "offline_store": {"type": "duckdb"},
        "entity_key_serialization_version": 3,
    }


def write_feature_store_yaml(settings: Settings) -> Path:
    """Render feature_store.yaml from the settings (rewritten only when it changes)."""
    text = YAML_HEADER + yaml.safe_dump(feature_store_config(settings), sort_keys=False)
    path = settings.feature_store_yaml
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return path


def ensure_duckdb_delta_extension() -> None:
    """Install DuckDB's Delta extension from the ``duckdb-ext-delta`` wheel, offline.

    DuckDB would otherwise download it on first use of ``read_delta``. Installing it from
    the wheel's local repository puts it where every DuckDB connection (this code's and
    the Feast CLI's) autoloads it.
    """
    import duckdb

    with duckdb.connect() as con:
        installed = con.execute(
            "SELECT installed FROM duckdb_extensions() WHERE extension_name = 'delta'"
        ).fetchone()
        if installed and installed[0]:
            return
        wheel = importlib.metadata.distribution("duckdb-ext-delta")
        repository = Path(str(wheel.locate_file("duckdb_ext/extensions")))
        con.execute(f"INSTALL delta FROM '{repository}'")


def get_feature_store(settings: Settings, config: dict | None = None) -> FeatureStore:
    """A FeatureStore over ``feature_repo/``, configured in memory from the settings.

    ``config`` replaces :func:`feature_store_config` (serving adds its own options). The same
    configuration reaches the Feast CLI as a file through :func:`write_feature_store_yaml`.
    """
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    ensure_duckdb_delta_extension()
    config = config or feature_store_config(settings)
    return FeatureStore(config=RepoConfig(repo_path=FEATURE_REPO_DIR, **config))


@contextlib.contextmanager
def _inside_feature_repo() -> Iterator[None]:
    """Import the definition files the way the Feast CLI does (cwd and sys.path = repo).

    They are imported afresh each time: data_sources.py reads the table location from the
    environment, which may have changed since an earlier import in this process.
    """
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None) or ""
        # Top-level modules from inside the repo: the definition files, not this package.
        if "." not in name and name != __package__ and origin.startswith(str(FEATURE_REPO_DIR)):
            del sys.modules[name]
    added = str(FEATURE_REPO_DIR) not in sys.path
    if added:
        sys.path.insert(0, str(FEATURE_REPO_DIR))
    try:
        with contextlib.chdir(FEATURE_REPO_DIR):
            yield
    finally:
        if added:
            sys.path.remove(str(FEATURE_REPO_DIR))


def _parse_feature_definitions() -> RepoContents:
    with _inside_feature_repo():
        return parse_repo(FEATURE_REPO_DIR)


def apply_feature_definitions(store: FeatureStore) -> list[str]:
    """``feast apply`` in-process: register every object declared in ``feature_repo/``.

    The data sources are registered first, on their own: registering a new or changed
    source overwrites the stamps of the object passed in with the registry's clock, and a
    view applied from those same objects would embed that stamp instead of the fixed one in
    data_sources.py, which every later ``feast plan`` would report as a change. The views
    are then applied from a fresh parse, whose sources carry the fixed stamps.
    """
    store.apply(list(_parse_feature_definitions().data_sources))
    repo = _parse_feature_definitions()
    objects = [
        *repo.entities,
        *repo.data_sources,
        *repo.feature_views,
        *repo.feature_services,
    ]
    store.apply(objects)
    # `feast apply` also records the online tables it manages (the registry's Infra); so
    # does this, or the CLI's `feast plan` would report "Created sqlite table ..." after it.
    _, _, infra = store.plan(repo)
    store.registry.update_infra(infra, store.project, commit=True)
    keep_newer_online_rows(store)
    return sorted(obj.name for obj in objects)


def keep_newer_online_rows(store: FeatureStore) -> None:
    """Make the SQLite online store ignore writes older than the row they would replace.

    Feast's SQLite store upserts whatever it is given, so materializing an older window
    after a newer one would put old values back online (Redis compares event times and
    keeps the newer). A trigger on each online table gives SQLite the same rule.
    """
    config = store.config
    if config.online_store.type != "sqlite":
        return
    path = Path(config.online_store.path)
    if not path.is_absolute():
        path = Path(config.repo_path or FEATURE_REPO_DIR) / path
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        for view in store.list_feature_views():
            table = f"{config.project}_{view.name}"
            conn.execute(
                f'CREATE TRIGGER IF NOT EXISTS "{table}_keep_newer" BEFORE UPDATE ON "{table}" '
                "WHEN NEW.event_ts < OLD.event_ts BEGIN SELECT RAISE(IGNORE); END"
            )


@contextlib.contextmanager
def heap_frozen_for_gc() -> Iterator[None]:
    """Keep the objects that exist now out of the garbage collector's full passes.

    Feast converts every row to protobuf in Python, so a large materialization allocates
    enough to set off repeated full collections, each of which walks the whole import heap
    (Feast, pandas, ibis, MLflow): about a fifth of a 100k-row load into Redis (measured in
    docs/benchmarks.md). While frozen, those objects are not collected; on exit they go
    back to the collector. A heap the process froze itself is left alone.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def materialize(
    store: FeatureStore, start: datetime, end: datetime, feature_service: str | None = None
) -> None:
    """Load the latest feature row per entity within ``[start, end]`` into the online store.

    With ``feature_service``, only the feature views it serves are materialized, so one
    model's views (or a view whose table is not written yet) never hold up another's.
    """
    views = feature_views_of(store, feature_service) if feature_service else None
    with heap_frozen_for_gc():
        store.materialize(start_date=start, end_date=end, feature_views=views)


def feature_views_of(store: FeatureStore, feature_service: str) -> list[str]:
    """The names of the feature views a feature service reads."""
    service = store.get_feature_service(feature_service)
    return sorted({projection.name for projection in service.feature_view_projections})


def get_training_frame(
    store: FeatureStore, entity_rows: pd.DataFrame, feature_service: str
) -> pd.DataFrame:
    """Point-in-time join of the feature service onto ``entity_rows``.

    ``entity_rows`` needs ``customer_id`` and ``event_timestamp``; any other column (such as
    the label) is carried through. Output rows keep the input order, one per input row.
    """
    rows = entity_rows.reset_index(drop=True).copy()
    rows["_row"] = range(len(rows))
    job = store.get_historical_features(
        entity_df=rows, features=store.get_feature_service(feature_service)
    )
    frame = job.to_df().sort_values("_row").drop(columns="_row").reset_index(drop=True)
    if len(frame) != len(rows):
        raise RuntimeError(
            f"historical retrieval returned {len(frame)} rows for {len(rows)} entity rows"
        )
    return frame


def get_online_features(
    store: FeatureStore,
    customer_ids: Sequence[int],
    feature_service: str,
    include_event_timestamps: bool = False,
) -> pd.DataFrame:
    """The online feature vectors of ``customer_ids`` (all-null rows for unknown customers)."""
    response = store.get_online_features(
        features=store.get_feature_service(feature_service),
        entity_rows=[{"customer_id": int(c)} for c in customer_ids],
    )
    return pd.DataFrame(response.to_dict(include_event_timestamps=include_event_timestamps))


def unknown_customers(online: pd.DataFrame) -> list[int]:
    """Customers for which the online store holds no feature at all."""
    features = [c for c in online.columns if c != "customer_id" and not c.endswith("__ts")]
    missing = online[features].isna().all(axis=1)
    return [int(c) for c in online.loc[missing, "customer_id"]]
