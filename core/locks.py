"""One run at a time: the locks that serialise the platform's pipelines.

Three kinds, each named after what it protects:

- :func:`feature_store_lock`: the feature pipeline of one feature store (Feast project),
  so two runs never validate, ingest or archive the same landed batches at once;
- :func:`training_lock`: the training pipeline of one model;
- :func:`registry_lock`: the gate, rollbacks and every other alias move of one registered
  model, so two decisions never interleave.

Without PostgreSQL a lock is a file lock (``filelock``) under ``$CHURN_STATE_DIR/locks/``:
it serialises the processes of one host, which is all that shares that folder. With
``CHURN_POSTGRES_URL`` it is a PostgreSQL session advisory lock in the platform's database,
so processes on several hosts (Airflow workers, pods) serialise too; PostgreSQL releases
it when the holding connection ends, so a killed holder never leaves it behind.

A second run waits up to ``CHURN_LOCK_TIMEOUT_SECONDS``, then is refused with
:class:`LockBusy`, which names the lock and its holder. Locks are reentrant within a
thread: a pipeline holds its lock across its steps, and each step takes it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.settings import Settings

# How often a waiting run asks PostgreSQL again.
POLL_SECONDS = 0.2


class LockBusy(RuntimeError):
    """Another run holds the lock longer than the configured wait."""

    def __init__(self, name: str, holder: str, waited: float):
        self.name = name
        self.holder = holder
        super().__init__(
            f"{name} is busy: held by {holder}; waited {waited:.0f} s "
            "(CHURN_LOCK_TIMEOUT_SECONDS). Run it again when that run has finished."
        )


_held = threading.local()


def _depth() -> dict[str, int]:
    if not hasattr(_held, "depth"):
        _held.depth = {}
    return _held.depth


def describe_process() -> str:
    """Who holds a lock: pid, host and command, as an operator would look for it."""
    command = " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:]) if sys.argv else "?"
    return f"pid {os.getpid()} on {socket.gethostname()} ({command[:200]})"


@contextlib.contextmanager
def hold(settings: Settings, name: str) -> Iterator[None]:
    """Hold the lock ``name`` for the block (reentrant within the thread)."""
    depth = _depth()
    if depth.get(name):
        depth[name] += 1
        try:
            yield
        finally:
            depth[name] -= 1
        return
    backend = _postgres_lock if settings.storage.postgres_url else _file_lock
    with backend(settings, name):
        depth[name] = 1
        try:
            yield
        finally:
            del depth[name]


def feature_store_lock(settings: Settings) -> contextlib.AbstractContextManager[None]:
    """The feature pipeline of this feature store (one Feast project)."""
    return hold(settings, f"feature_pipeline.{settings.feast_project}")


def training_lock(settings: Settings, model: str) -> contextlib.AbstractContextManager[None]:
    """The training pipeline of one model (training sets, runs, registration)."""
    return hold(settings, f"training.{model}")


def registry_lock(
    settings: Settings, registered_model: str
) -> contextlib.AbstractContextManager[None]:
    """The aliases of one registered model (gate, rollbacks, promotions by hand)."""
    return hold(settings, f"registry.{registered_model}")


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


@contextlib.contextmanager
def _file_lock(settings: Settings, name: str) -> Iterator[None]:
    from filelock import FileLock, Timeout

    folder = settings.storage.locks_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_file_name(name)}.lock"
    # The holder is described beside the lock, not in it: the lock file is the OS lock's.
    holder_path = path.with_suffix(".holder")
    lock = FileLock(path, timeout=settings.lock_timeout_seconds)
    started = time.monotonic()
    try:
        lock.acquire()
    except Timeout:
        try:
            holder = holder_path.read_text().strip() or "another process"
        except OSError:
            holder = "another process"
        raise LockBusy(name, holder, time.monotonic() - started) from None
    try:
        holder_path.write_text(describe_process())
        yield
    finally:
        with contextlib.suppress(OSError):
            holder_path.write_text("")
        lock.release()


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (PostgreSQL's advisory locks take a bigint)."""
    digest = hashlib.blake2b(f"churn-platform:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextlib.contextmanager
def _postgres_lock(settings: Settings, name: str) -> Iterator[None]:
    import psycopg2

    from core.backends import ensure_postgres_database

    ensure_postgres_database(settings, settings.storage.platform_database)
    key = advisory_key(name)
    # application_name is what pg_stat_activity shows, so a refused run can name the holder.
    holder = f"churn {name} pid {os.getpid()}@{socket.gethostname()}"[:63]
    conn = psycopg2.connect(
        settings.storage.postgres_database_url(settings.storage.platform_database),
        application_name=holder,
    )
    conn.autocommit = True
    try:
        started = time.monotonic()
        deadline = started + settings.lock_timeout_seconds
        with conn.cursor() as cur:
            while True:
                cur.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                if cur.fetchone()[0]:
                    break
                if time.monotonic() >= deadline:
                    raise LockBusy(name, _postgres_holder(cur, key), time.monotonic() - started)
                time.sleep(min(POLL_SECONDS, max(deadline - time.monotonic(), 0)))
        try:
            yield
        finally:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (key,))
    finally:
        conn.close()


def _postgres_holder(cur: Any, key: int) -> str:
    # A bigint advisory key is split into classid (high 32 bits) and objid (low 32 bits).
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    cur.execute(
        "SELECT a.pid, a.client_addr, a.application_name FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
        "AND l.granted AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 1",
        (unsigned >> 32, unsigned & 0xFFFFFFFF),
    )
    row = cur.fetchone()
    if row is None:
        return "another session (gone by now)"
    pid, address, application = row
    return f"PostgreSQL backend {pid} from {address or 'local socket'} ({application})"
