"""serving.lifeline: a worker ends with the supervisor that started it (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from core.processes import running
from serving.lifeline import SUPERVISOR_VARIABLE
from serving.server import supervised_command

ROOT = Path(__file__).resolve().parents[2]
WORKER = (
    f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); "
    "from serving.lifeline import exit_with_parent; exit_with_parent(poll_seconds=0.1); "
    "time.sleep(120)"
)


def supervisor(supervisor_pid: str | None) -> subprocess.Popen:
    """A stand-in for ``bentoml serve``: starts one worker and sleeps. ``supervisor_pid``:
    what the worker is told its supervisor is ("own": the stand-in's pid, as
    ``supervised_command`` does; None: nothing, as in the Kubernetes chart)."""
    code = (
        "import os, subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {WORKER!r}]); "
        "time.sleep(120)"
    )
    command = [sys.executable, "-c", code]
    env = {k: v for k, v in os.environ.items() if k != SUPERVISOR_VARIABLE}
    if supervisor_pid == "own":
        command = supervised_command(command)
    elif supervisor_pid is not None:
        env[SUPERVISOR_VARIABLE] = supervisor_pid
    return subprocess.Popen(command, env=env, start_new_session=True)


def the_worker(parent: subprocess.Popen) -> psutil.Process:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = psutil.Process(parent.pid).children()
        if children:
            return children[0]
        time.sleep(0.05)
    raise AssertionError("no worker started")


def gone_within(process: psutil.Process, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while running(process) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not running(process)


@pytest.mark.parametrize("told", ["own", None])
def test_a_worker_exits_when_its_supervisor_is_killed(told):
    parent = supervisor(told)
    worker = the_worker(parent)
    try:
        assert worker.environ().get(SUPERVISOR_VARIABLE) == (str(parent.pid) if told else None)
        time.sleep(1.5)  # imported and watching
        assert running(worker), "the worker keeps running while its supervisor does"
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert gone_within(worker, 5), "the orphaned worker is still running"
    finally:
        parent.kill()
        parent.wait()
        if running(worker):
            worker.kill()


def test_a_worker_orphaned_before_it_started_watching_exits_at_once():
    """Its parent is not the supervisor it was told of: that one died while the worker was
    importing, and another process adopted it."""
    parent = supervisor("1")
    worker = the_worker(parent)
    try:
        assert gone_within(worker, 10)
        assert parent.poll() is None, "only the worker stopped"
    finally:
        parent.kill()
        parent.wait()
        if running(worker):
            worker.kill()
