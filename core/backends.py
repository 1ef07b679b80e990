"""Preparing the optional PostgreSQL back end (one database per tool)."""

from __future__ import annotations

import contextlib
from typing import Any

from core.settings import Settings


def ensure_postgres_database(settings: Settings, database: str) -> None:
    """Create ``database`` on the configured PostgreSQL server when it does not exist."""
    import psycopg2
    from psycopg2 import errors, sql

    conn = psycopg2.connect(settings.storage.postgres_database_url("postgres"))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone() is None:
                # Another process may create it between the check and here.
                with contextlib.suppress(errors.DuplicateDatabase, errors.UniqueViolation):
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))

    finally:
        conn.close()


def create_tables(engine: Any, metadata: Any) -> None:
    """Create the tables of ``metadata`` that are missing, one process at a time.

    Two processes creating the same PostgreSQL table at once collide in its catalog, so
    creation runs under a transaction-scoped advisory lock (SQLite's BEGIN IMMEDIATE, or
    its single writer, serializes it already).
    """
    import sqlalchemy as sa

    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('churn_platform_ddl'))"))
        metadata.create_all(conn)
