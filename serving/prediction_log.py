"""Durable log of every served prediction, read by monitoring.

One SQLite database (WAL mode) per model under the state folder, its columns derived from
the model's spec (:func:`log_columns`). Durability rule: a record is
committed before the response is sent, so an acknowledged prediction survives a crash or
restart of the service. With ``synchronous=NORMAL`` in WAL mode a commit is an append to
the WAL file (no fsync): it survives a process crash; an OS crash or power loss can lose
the last commits since the previous checkpoint. The checkpoint (which fsyncs and copies the
WAL into the database) is taken off the request path: automatic checkpoints are off on the
writing connection and :meth:`PredictionLog.checkpoint` runs from a background thread of the
service (SQLite runs a PASSIVE checkpoint concurrently with writers).

Shadow scores (A/B shadow mode) go to their own table, ``shadow_predictions``, so the
monitoring window (:func:`read_prediction_log`) holds only the answers clients received.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from core.spec import ModelSpec

PREDICTIONS = "predictions"
SHADOW_PREDICTIONS = "shadow_predictions"
KEY_COLUMNS = ("logged_at", "customer_id", "model_version", "variant")


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
    key = "INTEGER" if spec.entity_key == "customer_id" else "TEXT"
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        f"logged_at TEXT NOT NULL, customer_id {key} NOT NULL, model_version INTEGER NOT NULL, "
        f"variant TEXT NOT NULL, {', '.join(features + outputs)})"
    )


@dataclass(frozen=True)
class PredictionRecord:
    """One answered prediction. ``probability`` is None for a regression."""

    logged_at: datetime
    customer_id: int
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
            self._conn.executemany(
                self._inserts[SHADOW_PREDICTIONS if shadow else PREDICTIONS], rows
            )

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
