"""The platform database: the platform's own records, written by several processes.

Retraining requests and decisions (:mod:`monitoring.retraining`) and performance alerts
(:mod:`monitoring.alerts`) live here: PostgreSQL (``CHURN_PLATFORM_DATABASE`` on
``CHURN_POSTGRES_URL``) when configured, SQLite under the state folder otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.backends import create_tables
from core.settings import Settings

__all__ = ["as_utc", "create_tables", "platform_engine", "platform_table", "rows_of"]


def platform_engine(settings: Settings) -> Any:
    """A SQLAlchemy engine on the platform database (created on first use)."""
    import sqlalchemy as sa

    if settings.storage.postgres_url:
        from core.backends import ensure_postgres_database

        ensure_postgres_database(settings, settings.storage.platform_database)
    else:
        settings.storage.state_dir.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(settings.storage.platform_database_url)
    if engine.dialect.name == "sqlite":
        # SQLite's default deferred transaction lets two processes read the same last
        # record; BEGIN IMMEDIATE takes the write lock first (SQLAlchemy's recipe).
        @sa.event.listens_for(engine, "connect")
        def _autocommit_driver(dbapi_connection, _record) -> None:
            dbapi_connection.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _begin_immediate(connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def platform_table(name: str, *columns: Any) -> Any:
    """A table of the platform database: an ``id``, the ``model`` it concerns, ``columns``."""
    import sqlalchemy as sa

    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(100), nullable=False, index=True),
        *columns,
    )


def rows_of(settings: Settings, table: Any, model: str) -> list[Any]:
    """Every row of ``table`` about ``model``, oldest first."""
    import sqlalchemy as sa

    engine = platform_engine(settings)
    try:
        create_tables(engine, table.metadata)
        with engine.connect() as conn:
            query = sa.select(table).where(table.c.model == model).order_by(table.c.id)
            return list(conn.execute(query).mappings())
    finally:
        engine.dispose()


def as_utc(value: datetime | None) -> datetime | None:
    """A stored time as UTC (SQLite gives naive datetimes back; every time here is UTC)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value
