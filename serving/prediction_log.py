"""Durable log of every served prediction, read by monitoring.

One SQLite database (WAL mode) under the state folder. A record is committed before the
response is sent, so an acknowledged prediction survives a crash or restart.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from feature_repo.transforms import FEATURE_COLUMNS

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    logged_at TEXT NOT NULL,
    customer_id INTEGER NOT NULL,
    model_version INTEGER NOT NULL,
    variant TEXT NOT NULL,
    {", ".join(f"{c} {'TEXT' if c == 'customer_segment' else 'REAL'}" for c in FEATURE_COLUMNS)},
    probability REAL NOT NULL,
    prediction INTEGER NOT NULL
)
"""
_COLUMNS = (
    "logged_at",
    "customer_id",
    "model_version",
    "variant",
    *FEATURE_COLUMNS,
    "probability",
    "prediction",
)


@dataclass(frozen=True)
class PredictionRecord:
    logged_at: datetime
    customer_id: int
    model_version: int
    variant: str
    features: dict[str, object]
    probability: float
    prediction: int

    def row(self) -> tuple:
        return (
            self.logged_at.isoformat(),
            self.customer_id,
            self.model_version,
            self.variant,
            *(self.features[c] for c in FEATURE_COLUMNS),
            self.probability,
            self.prediction,
        )


class PredictionLog:
    """Append-only prediction log in SQLite."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed record survives a process crash.
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(_SCHEMA)

    def append(self, records: Sequence[PredictionRecord]) -> None:
        placeholders = ", ".join("?" for _ in _COLUMNS)
        with self._lock:
            self._conn.executemany(
                f"INSERT INTO predictions ({', '.join(_COLUMNS)}) VALUES ({placeholders})",
                [r.row() for r in records],
            )

    def close(self) -> None:
        self._conn.close()


def read_prediction_log(path: Path, since: datetime | None = None) -> pd.DataFrame:
    """Logged predictions (optionally only those logged at or after ``since``)."""
    if not path.exists():
        return pd.DataFrame(columns=list(_COLUMNS))
    query = f"SELECT {', '.join(_COLUMNS)} FROM predictions"
    params: tuple = ()
    if since is not None:
        query += " WHERE logged_at >= ?"
        params = (since.isoformat(),)
    with sqlite3.connect(path) as conn:
        frame = pd.read_sql_query(query + " ORDER BY id", conn, params=params)
    frame["logged_at"] = pd.to_datetime(frame["logged_at"], utc=True, format="ISO8601")
    return frame
