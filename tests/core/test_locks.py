"""One run at a time: file locks by default, PostgreSQL advisory locks when configured.

The PostgreSQL cases run on the test's own throwaway server, never the machine's.

A second process holds the lock for real (a subprocess), as a second `make features` or
`make train` would; the run under test must wait, then be refused with the holder's name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.locks import LockBusy, advisory_key, feature_store_lock, hold, registry_lock
from core.settings import PROJECT_ROOT, Settings, get_settings
from models.training import claim_folder

HOLDER = textwrap.dedent(
    """
    import sys, time
    from core.locks import hold
    from core.settings import get_settings

    with hold(get_settings(), sys.argv[1]):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


def start_holder(name: str, seconds: float = 60.0) -> subprocess.Popen[str]:
    """Another process that takes the lock ``name`` and keeps it ``seconds``."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, name, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    return holder


def with_timeout(monkeypatch: pytest.MonkeyPatch, seconds: float) -> Settings:
    monkeypatch.setenv("CHURN_LOCK_TIMEOUT_SECONDS", str(seconds))
    return get_settings()


@pytest.fixture(params=["file", "postgresql"])
def backend(request: pytest.FixtureRequest, state: Settings, monkeypatch) -> str:
    """Each test on file locks, then on advisory locks of the test's own PostgreSQL."""
    if request.param == "postgresql":
        server = request.getfixturevalue("own_postgres")
        monkeypatch.setenv("CHURN_POSTGRES_URL", server.url)
        # A database of its own: another test's leftovers never hold these locks.
        monkeypatch.setenv("CHURN_PLATFORM_DATABASE", f"locks_{os.getpid()}")
    return request.param


def test_a_second_process_waits_then_is_refused_with_the_holders_name(
    backend: str, monkeypatch
) -> None:
    settings = with_timeout(monkeypatch, 0.6)
    holder = start_holder("training.churn")
    try:
        started = time.monotonic()
        with pytest.raises(LockBusy) as busy, hold(settings, "training.churn"):
            pass
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert waited >= 0.6
    message = str(busy.value)
    assert "training.churn is busy" in message
    assert f"pid {holder.pid}" in message
    # Freed by the holder's end (a kill, not a release): the next run gets it.
    with hold(settings, "training.churn"):
        pass


def test_a_run_waits_for_the_holder_to_finish(backend: str, monkeypatch) -> None:
    settings = with_timeout(monkeypatch, 30)
    holder = start_holder("registry.churn-model", seconds=1.0)
    started = time.monotonic()
    with registry_lock(settings, "churn-model"):
        waited = time.monotonic() - started
    holder.wait()
    assert holder.returncode == 0
    assert 0.3 < waited < 30


def test_locks_are_reentrant_in_a_thread_and_independent_by_name(backend: str, monkeypatch) -> None:
    settings = with_timeout(monkeypatch, 0)
    with (
        feature_store_lock(settings),
        feature_store_lock(settings),
        registry_lock(settings, "churn-model"),
    ):
        pass
    holder = start_holder(f"feature_pipeline.{settings.feast_project}", seconds=30)
    try:
        with pytest.raises(LockBusy), feature_store_lock(settings):
            pass
        with registry_lock(settings, "churn-model"):  # another name: not blocked
            pass
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_never_leaves_a_file_lock_behind(state: Settings, monkeypatch) -> None:
    settings = with_timeout(monkeypatch, 5)
    holder = start_holder("training.next_spend")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with hold(settings, "training.next_spend"):
        assert (settings.storage.locks_dir / "training.next_spend.lock").exists()


def test_advisory_keys_are_stable_signed_64_bit_and_distinct() -> None:
    keys = {advisory_key(n) for n in ("training.churn", "training.next_spend", "registry.churn")}
    assert len(keys) == 3
    assert all(-(2**63) <= k < 2**63 for k in keys)
    assert advisory_key("training.churn") == advisory_key("training.churn")


def test_two_runs_of_one_name_get_two_training_set_folders(tmp_path: Path) -> None:
    first = claim_folder(tmp_path / "training_sets" / "churn", "train-churn-20260701T000000")
    second = claim_folder(tmp_path / "training_sets" / "churn", "train-churn-20260701T000000")
    assert first != second
    assert first.is_dir() and second.is_dir()
    assert second.name == "train-churn-20260701T000000-2"


def test_churn_features_while_another_run_holds_the_store_says_so(
    state: Settings, monkeypatch, capsys
) -> None:
    from cli.main import main

    settings = with_timeout(monkeypatch, 0.3)
    holder = start_holder(f"feature_pipeline.{settings.feast_project}")
    try:
        with pytest.raises(SystemExit) as refused:
            main(["features"])
    finally:
        holder.kill()
        holder.wait()
    assert str(refused.value).startswith(f"not run: feature_pipeline.{settings.feast_project}")
    assert f"pid {holder.pid}" in str(refused.value)
    assert "Traceback" not in capsys.readouterr().err
