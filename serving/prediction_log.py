"""Durable log of every served prediction, read by monitoring.

Two stores behind one interface (:func:`open_prediction_log` to write,
:func:`read_predictions` to read), chosen by ``settings.storage.prediction_log_backend``:

- **PostgreSQL** (when ``CHURN_POSTGRES_URL`` is set): the tables ``<model>_predictions``
  and ``<model>_shadow_predictions`` of the database ``CHURN_PREDICTION_DATABASE``. Any
  number of serving replicas on any number of hosts append to it; an acknowledged
  prediction is a committed row.
- **SQLite** (the embedded default): one database (WAL mode) per model under the state
  folder, for one host. Durability rule: a record is committed before the response is
  sent, so an acknowledged prediction survives a crash or restart of the service. With
  ``synchronous=NORMAL`` in WAL mode a commit is an append to the WAL file (no fsync): it
  survives a process crash; an OS crash or power loss can lose the last commits since the
  previous checkpoint. The checkpoint (which fsyncs and copies the WAL into the database)
  is taken off the request path: automatic checkpoints are off on the writing connection
  and :meth:`PredictionLog.checkpoint` runs from a background thread of the service
  (SQLite runs a PASSIVE checkpoint concurrently with writers). WAL needs every writer and
  reader on one host: the Helm chart refuses more than one serving replica on it.

The columns derive from the model's spec (:func:`log_columns`). Shadow scores (A/B shadow
mode) go to their own table, so the monitoring window holds only the answers clients
received.

A store that cannot take the write (PostgreSQL stopped or unreachable, SQLite locked past
its busy timeout) raises :class:`PredictionLogUnavailable` from :meth:`append` and
:meth:`ping`: the service answers 503 (the prediction was not acknowledged) instead of 500.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from core.spec import EntityId, ModelSpec

if TYPE_CHECKING:
    from core.settings import Settings

PREDICTIONS = "predictions"
SHADOW_PREDICTIONS = "shadow_predictions"
KEY_COLUMNS = ("logged_at", "customer_id", "model_version", "variant")
# libpq's connect_timeout (seconds): an unreachable host fails after this, not the TCP timeout
POSTGRES_CONNECT_TIMEOUT = 3


class PredictionLogUnavailable(RuntimeError):
    """The log store did not take the write (or answer the ping): the write is not
    acknowledged (with PostgreSQL, a commit whose answer was lost may still be stored)."""


def _unavailable(error: BaseException) -> PredictionLogUnavailable:
    """``error`` as a :class:`PredictionLogUnavailable` with the driver's first line."""
    text = str(getattr(error, "orig", None) or error).strip()
    reason = text.splitlines()[0] if text else type(error).__name__
    return PredictionLogUnavailable(f"prediction log unavailable: {reason}")


def log_columns(spec: ModelSpec) -> tuple[str, ...]:
    """The columns of ``spec``'s log: who and when, the features served, the model outputs."""
    return (*KEY_COLUMNS, *spec.feature_names, *spec.output_columns)


def _table_sql(spec: ModelSpec, table: str) -> str:
    features = [f"{f.name} {'TEXT' if f.kind == 'categorical' else 'REAL'}" for f in spec.features]
    outputs = (
        ["probability REAL NOT NULL", "prediction INTEGER NOT NULL"]
        if spec.task == "classification"
        else ["prediction REAL NOT NULL"]
    )
    key = "INTEGER" if spec.entity_key_dtype == "int64" else "TEXT"
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        f"logged_at TEXT NOT NULL, customer_id {key} NOT NULL, model_version INTEGER NOT NULL, "
        f"variant TEXT NOT NULL, {', '.join(features + outputs)})"
    )


@dataclass(frozen=True)
class PredictionRecord:
    """One answered prediction. ``probability`` is None for a regression."""

    logged_at: datetime
    customer_id: EntityId  # the spec's entity key, in the log's customer_id column
    model_version: int
    variant: str
    features: dict[str, object]
    probability: float | None
    prediction: float | int

    def row(self, spec: ModelSpec) -> tuple:
        outputs = (
            (self.probability, self.prediction)
            if spec.task == "classification"
            else (self.prediction,)
        )
        return (
            self.logged_at.isoformat(),
            self.customer_id,
            self.model_version,
            self.variant,
            *(self.features[c] for c in spec.feature_names),
            *outputs,
        )


class PredictionLog:
    """Append-only prediction log in SQLite; :meth:`append` returns once committed."""

    def __init__(self, path: Path, spec: ModelSpec, auto_checkpoint: bool = True):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.spec = spec
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed record survives a process crash.
        self._conn.execute("PRAGMA synchronous=NORMAL")
        if not auto_checkpoint:  # the owner calls checkpoint() off the request path
            self._conn.execute("PRAGMA wal_autocheckpoint=0")
        for table in (PREDICTIONS, SHADOW_PREDICTIONS):
            self._conn.execute(_table_sql(spec, table))
        columns = log_columns(spec)
        placeholders = ", ".join("?" for _ in columns)
        self._inserts = {
            table: f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
            for table in (PREDICTIONS, SHADOW_PREDICTIONS)
        }

    def append(self, records: Sequence[PredictionRecord], shadow: bool = False) -> None:
        """Commit ``records`` (to the shadow table when ``shadow``); returns when durable."""
        rows = [r.row(self.spec) for r in records]
        with self._lock:
            try:
                self._conn.executemany(
                    self._inserts[SHADOW_PREDICTIONS if shadow else PREDICTIONS], rows
                )
            except sqlite3.OperationalError as error:  # locked past busy_timeout, disk full
                raise _unavailable(error) from error

    def ping(self) -> None:
        """Raise :class:`PredictionLogUnavailable` unless the database answers."""
        with self._lock:
            try:
                self._conn.execute("SELECT 1").fetchone()
            except sqlite3.OperationalError as error:
                raise _unavailable(error) from error

    def checkpoint(self) -> None:
        """Copy the WAL into the database (PASSIVE: never blocks writers for long)."""
        with contextlib.closing(sqlite3.connect(self.path, timeout=5)) as conn:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        """Checkpoint and close the writing connection."""
        with self._lock:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                self._conn.close()


def read_prediction_log(
    path: Path, spec: ModelSpec, since: datetime | None = None, table: str = PREDICTIONS
) -> pd.DataFrame:
    """Logged predictions of ``spec`` (optionally only those logged at or after ``since``).

    ``table=SHADOW_PREDICTIONS`` reads the challenger's shadow scores instead.
    """
    if table not in (PREDICTIONS, SHADOW_PREDICTIONS):
        raise ValueError(f"unknown prediction table {table!r}")
    columns = log_columns(spec)
    if not path.exists():
        return pd.DataFrame(columns=list(columns))
    query = f"SELECT {', '.join(columns)} FROM {table}"
    params: tuple = ()
    if since is not None:
        query += " WHERE logged_at >= ?"
        params = (since.isoformat(),)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        if not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)
        ).fetchone():
            return pd.DataFrame(columns=list(columns))
        frame = pd.read_sql_query(query + " ORDER BY id", conn, params=params)
    frame["logged_at"] = pd.to_datetime(frame["logged_at"], utc=True, format="ISO8601")
    return frame


class PredictionWriter(Protocol):
    """What the service and the replay write through, whichever the store."""

    def append(self, records: Sequence[PredictionRecord], shadow: bool = False) -> None: ...
    def ping(self) -> None: ...
    def checkpoint(self) -> None: ...
    def close(self) -> None: ...


def _postgres_table(spec: ModelSpec, table: str) -> Any:
    """``<model>_<table>`` in PostgreSQL, with the same columns as the SQLite log."""
    import sqlalchemy as sa

    features = [
        sa.Column(f.name, sa.Text if f.kind == "categorical" else sa.Float(53))
        for f in spec.features
    ]
    outputs = (
        [
            sa.Column("probability", sa.Float(53), nullable=False),
            sa.Column("prediction", sa.Integer, nullable=False),
        ]
        if spec.task == "classification"
        else [sa.Column("prediction", sa.Float(53), nullable=False)]
    )
    key = sa.BigInteger if spec.entity_key_dtype == "int64" else sa.Text
    return sa.Table(
        f"{spec.name}_{table}",
        sa.MetaData(),
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("customer_id", key, nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("variant", sa.Text, nullable=False),
        *features,
        *outputs,
    )


def _postgres_engine(settings: Settings) -> Any:
    import sqlalchemy as sa

    from core.backends import ensure_postgres_database

    ensure_postgres_database(settings, settings.storage.prediction_database)
    return sa.create_engine(
        settings.storage.prediction_database_url,
        pool_pre_ping=True,  # a connection the server dropped (restart) is replaced
        connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT},
    )


def _postgres_down_errors() -> tuple[type[BaseException], ...]:
    """SQLAlchemy's errors for a server that is away (not for a bad statement)."""
    import sqlalchemy as sa

    return (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)


class PostgresPredictionLog:
    """Append-only prediction log in PostgreSQL; :meth:`append` returns once committed.

    Safe for many writers on many hosts: each append is its own transaction.
    """

    def __init__(self, settings: Settings, spec: ModelSpec):
        from core.backends import create_tables

        self.spec = spec
        self._engine = _postgres_engine(settings)
        self._tables = {t: _postgres_table(spec, t) for t in (PREDICTIONS, SHADOW_PREDICTIONS)}
        for table in self._tables.values():
            create_tables(self._engine, table.metadata)
        self._columns = log_columns(spec)
        self._down_errors = _postgres_down_errors()

    def append(self, records: Sequence[PredictionRecord], shadow: bool = False) -> None:
        """Commit ``records`` (to the shadow table when ``shadow``); returns when durable."""
        if not records:
            return
        rows = [dict(zip(self._columns, r.row(self.spec), strict=True)) for r in records]
        for row, record in zip(rows, records, strict=True):
            row["logged_at"] = record.logged_at  # a timestamptz, not its text
        table = self._tables[SHADOW_PREDICTIONS if shadow else PREDICTIONS]
        try:
            with self._engine.begin() as conn:
                conn.execute(table.insert(), rows)
        except self._down_errors as error:  # server stopped, restarting or unreachable
            raise _unavailable(error) from error

    def ping(self) -> None:
        """Raise :class:`PredictionLogUnavailable` unless the server answers ``SELECT 1``."""
        import sqlalchemy as sa

        try:
            with self._engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except self._down_errors as error:
            raise _unavailable(error) from error

    def checkpoint(self) -> None:
        """Nothing to do: PostgreSQL makes each commit durable itself."""

    def close(self) -> None:
        self._engine.dispose()


def open_prediction_log(
    settings: Settings, spec: ModelSpec, auto_checkpoint: bool = True
) -> PredictionWriter:
    """The model's prediction log in the configured store (see the module's docstring)."""
    if settings.storage.prediction_log_backend == "postgresql":
        return PostgresPredictionLog(settings, spec)
    return PredictionLog(
        settings.storage.prediction_log_path(spec.name), spec, auto_checkpoint=auto_checkpoint
    )


def read_predictions(
    settings: Settings, spec: ModelSpec, since: datetime | None = None, table: str = PREDICTIONS
) -> pd.DataFrame:
    """The model's logged predictions (since ``since``), oldest first, from either store:
    the one read path of monitoring."""
    if table not in (PREDICTIONS, SHADOW_PREDICTIONS):
        raise ValueError(f"unknown prediction table {table!r}")
    if settings.storage.prediction_log_backend == "sqlite":
        return read_prediction_log(
            settings.storage.prediction_log_path(spec.name), spec, since, table
        )
    import sqlalchemy as sa

    columns = log_columns(spec)
    engine = _postgres_engine(settings)
    try:
        stored = _postgres_table(spec, table)
        if not sa.inspect(engine).has_table(stored.name):
            return pd.DataFrame(columns=list(columns))
        query = sa.select(*(stored.c[c] for c in columns)).order_by(stored.c.id)
        if since is not None:
            query = query.where(stored.c.logged_at >= since)
        with engine.connect() as conn:
            frame = pd.read_sql_query(query, conn)
    finally:
        engine.dispose()
    frame["logged_at"] = pd.to_datetime(frame["logged_at"], utc=True)
    return frame
