"""Feast operations: configuration from settings, apply, materialize, retrieval.

The Feast configuration is built from the settings: in memory for this code, and written
as ``feature_repo/feature_store.yaml`` (``make feast-config``, and before every apply) for
the Feast CLI, so both read one configuration. The definitions are applied by the Feast
CLI itself (``feast apply``); everything else reads the registry through a
``FeatureStore``. The Delta tables are read by Feast's DuckDB offline store, which honours
the Delta log and keeps one output row per entity row.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.metadata
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import yaml
from feast import FeatureStore, RepoConfig

from core.clock import wall_now
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
    """The feature_store.yaml content for these settings (pure: nothing is created).

    The registry is Feast's SQL registry, on PostgreSQL when ``CHURN_POSTGRES_URL`` is set
    (its own database, ``CHURN_FEAST_REGISTRY_DATABASE``), else in a SQLite file. The batch
    engine and the offline store are Feast's own, named by their Feast type with their
    options passed through as given (``CHURN_FEAST_BATCH_ENGINE[_OPTIONS]``,
    ``CHURN_FEAST_OFFLINE_STORE[_OPTIONS]``).
    """
    storage = settings.storage
    if storage.redis_url:
        online = {
            "type": "redis",
            "connection_string": feast_redis_connection_string(storage.redis_url),
        }
    else:
        online = {"type": "sqlite", "path": str(storage.feast_dir / "online.db")}
    return {
        "project": settings.feast_project,
        "provider": "local",
        "registry": {
            "registry_type": "sql",
            "path": storage.feast_registry_url,
            "cache_ttl_seconds": 60,
        },
        "online_store": online,
        "offline_store": {
            "type": storage.feast_offline_store,
            **storage.feast_offline_store_options,
        },
        "batch_engine": {"type": storage.feast_batch_engine, **storage.feast_batch_engine_options},
        "entity_key_serialization_version": 3,
    }


def prepare_feast_backends(settings: Settings) -> None:
    """Create what the Feast configuration points at: the state folder, and the registry's
    PostgreSQL database when ``CHURN_POSTGRES_URL`` is set (Feast creates its tables)."""
    settings.storage.feast_dir.mkdir(parents=True, exist_ok=True)
    if settings.storage.postgres_url:
        from core.backends import ensure_postgres_database

        ensure_postgres_database(settings, settings.storage.feast_registry_database)


def write_feature_store_yaml(settings: Settings) -> Path:
    """Render feature_store.yaml from the settings (rewritten only when it changes)."""
    text = YAML_HEADER + yaml.safe_dump(feature_store_config(settings), sort_keys=False)
    path = settings.storage.feature_store_yaml
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    prepare_feast_backends(settings)
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
    prepare_feast_backends(settings)
    ensure_duckdb_delta_extension()
    config = config or feature_store_config(settings)
    return FeatureStore(config=RepoConfig(repo_path=FEATURE_REPO_DIR, **config))


class FeastApplyFailed(RuntimeError):
    """``feast apply`` refused the definitions in ``feature_repo/`` (its output says why)."""


def feast_executable() -> str:
    """The ``feast`` command of this environment (next to this Python, else on PATH)."""
    beside = Path(sys.executable).with_name("feast")
    if beside.exists():
        return str(beside)
    found = shutil.which("feast")
    if found is None:
        raise FeastApplyFailed("the feast command is not installed in this environment")
    return found


def apply_feature_definitions(settings: Settings) -> list[str]:
    """``feast apply`` on ``feature_repo/`` with the Feast CLI, exactly as a user runs it.

    The configuration is rendered from the settings first (:func:`write_feature_store_yaml`),
    so the CLI and this process use one registry and one online store. The CLI runs in its
    own process: Feast imports the definition files as top-level modules, and only a fresh
    interpreter imports them with the current settings (a test, say, that changed
    ``CHURN_STATE_DIR``). Returns the names of the objects registered.
    """
    path = write_feature_store_yaml(settings)
    ensure_duckdb_delta_extension()
    command = [
        feast_executable(), "--chdir", str(FEATURE_REPO_DIR),
        "--feature-store-yaml", str(path), "apply",
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as error:
        raise FeastApplyFailed(f"feast apply did not finish in {error.timeout} s") from error
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-3000:]
        raise FeastApplyFailed(f"feast apply failed ({done.returncode}):\n{output}")
    store = get_feature_store(settings)
    keep_newer_online_rows(store)
    objects = [
        *store.list_entities(),
        *store.list_data_sources(),
        *store.list_feature_views(),
        *store.list_feature_services(),
    ]
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


class MaterializationFailed(RuntimeError):
    """Some feature views could not be materialized (the others were)."""

    def __init__(self, failures: dict[str, str], done: list[str]):
        self.failures, self.done = failures, done
        lines = "; ".join(f"{view}: {why}" for view, why in failures.items())
        super().__init__(f"materialized {done or 'nothing'}; failed: {lines}")


class OnlineRowsMissing(RuntimeError):
    """After a materialization, the online store lacks rows the offline store holds."""


def batch_engine_type(store: FeatureStore) -> str:
    """The Feast batch engine this store materializes with (``local``, ``ray.engine``...)."""
    engine = store.config.batch_engine_config
    return engine if isinstance(engine, str) else engine.get("type", "local")


def _utc(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")


def check_online_rows(
    store: FeatureStore, view_name: str, start: datetime, end: datetime, chunk: int = 20_000
) -> int:
    """Raise :class:`OnlineRowsMissing` unless every entity's latest row in the window is
    online (that row or a newer one). Returns the number of entities checked.

    Feast's Ray engine logs a failed online write in its worker and reports the job as
    succeeded, so the write is checked where it landed: the offline store's latest event
    time per entity (Feast's ``pull_latest_from_table_or_query``, the read every engine
    materializes from) against the event time the online store returns (``online_read``).
    Rows older than the view's TTL are left out: Feast's Ray engine drops them before the
    write (it filters on now - TTL), the local engine writes them.
    """
    from feast.infra.offline_stores.offline_utils import get_offline_store_from_config
    from feast.infra.online_stores.helpers import get_online_store_from_config
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.type_map import python_values_to_proto_values

    view = store.get_feature_view(view_name)
    source = view.batch_source
    (join_key,) = [column.name for column in view.entity_columns]
    value_type = view.entity_columns[0].dtype.to_value_type()
    if view.ttl:
        # Feast's engine filters on its own wall clock, so the check must too.
        start = max(start, wall_now() - view.ttl)
    expected = (
        get_offline_store_from_config(store.config.offline_store)
        .pull_latest_from_table_or_query(
            config=store.config,
            data_source=source,
            join_key_columns=[join_key],
            feature_name_columns=[view.features[0].name],
            timestamp_field=source.timestamp_field,
            created_timestamp_column=source.created_timestamp_column,
            start_date=start,
            end_date=end,
        )
        .to_df()
    )
    online = get_online_store_from_config(store.config.online_store)
    keys = expected[join_key].tolist()
    # Online stores keep whole seconds (Redis): compare at that resolution.
    stamps = pd.to_datetime(expected[source.timestamp_field], utc=True).dt.floor("s").tolist()
    missing: list = []
    for first in range(0, len(keys), chunk):
        batch = keys[first : first + chunk]
        values = python_values_to_proto_values(batch, value_type)
        entity_keys = [EntityKey(join_keys=[join_key], entity_values=[v]) for v in values]
        read = online.online_read(
            store.config, view, entity_keys, requested_features=[view.features[0].name]
        )
        for key, want, (got, _) in zip(batch, stamps[first : first + chunk], read, strict=True):
            if got is None or _utc(got) < want:
                missing.append(key)
    if missing:
        raise OnlineRowsMissing(
            f"{len(missing)} of {len(keys)} entities of {view_name} are not online with their "
            f"latest row after materializing with the {batch_engine_type(store)} engine "
            f"(first: {missing[:5]}); the engine's write failed (see its worker logs)"
        )
    return len(keys)


def materialize(
    store: FeatureStore, start: datetime, end: datetime, feature_services: Sequence[str]
) -> list[str]:
    """Load the latest feature row per entity within ``[start, end]`` into the online store.

    Only the feature views the ``feature_services`` read are materialized, each on its own,
    so one model's view (a view whose table is not written yet, say) never holds up
    another's: every view is tried, then :class:`MaterializationFailed` names the views
    that failed. Returns the views materialized. With any engine but Feast's local one,
    the online rows are checked after each view (:func:`check_online_rows`): an engine
    that swallows a write error fails here all the same.
    """
    views = sorted({v for service in feature_services for v in feature_views_of(store, service)})
    check = batch_engine_type(store) != "local"
    done, failures = [], {}
    with heap_frozen_for_gc():
        for view in views:
            try:
                store.materialize(start_date=start, end_date=end, feature_views=[view])
                if check:
                    check_online_rows(store, view, start, end)
            except Exception as error:  # any source or store error: the next view still runs
                failures[view] = f"{type(error).__name__}: {str(error)[:300]}"
            else:
                done.append(view)
    if failures:
        raise MaterializationFailed(failures, done)
    return done


def feature_views_of(store: FeatureStore, feature_service: str) -> list[str]:
    """The names of the feature views a feature service reads."""
    service = store.get_feature_service(feature_service)
    return sorted({projection.name for projection in service.feature_view_projections})


def tables_of(store: FeatureStore, feature_service: str) -> list[str]:
    """The Delta tables (folder names) behind the feature views a feature service reads."""
    tables = []
    for name in feature_views_of(store, feature_service):
        source = store.get_feature_view(name).batch_source
        tables.append(Path(source.path).name)  # type: ignore[attr-defined]
    return sorted(set(tables))


def get_training_frame(
    store: FeatureStore, entity_rows: pd.DataFrame, feature_service: str
) -> pd.DataFrame:
    """Point-in-time join of the feature service onto ``entity_rows``.

    ``entity_rows`` needs the entity key and ``event_timestamp`` (integer or string keys);
    any other column (the label) is carried through. Output rows keep the input order.
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
    entity_ids: Sequence[int | str],
    feature_service: str,
    include_event_timestamps: bool = False,
    entity_key: str = "customer_id",
) -> pd.DataFrame:
    """The online feature vectors of ``entity_ids`` (all-null rows for unknown entities).

    Keys are passed as given: integer and string entity keys both work (Feast serializes
    them by the entity's value type).
    """
    response = store.get_online_features(
        features=store.get_feature_service(feature_service),
        entity_rows=[{entity_key: c} for c in entity_ids],
    )
    return pd.DataFrame(response.to_dict(include_event_timestamps=include_event_timestamps))


def unknown_entities(online: pd.DataFrame, entity_key: str = "customer_id") -> list[int | str]:
    """Entities (keys of ``entity_key``) for which the online store holds no feature at all."""
    features = [c for c in online.columns if c != entity_key and not c.endswith("__ts")]
    missing = online[features].isna().all(axis=1)
    return online.loc[missing, entity_key].tolist()
