"""``make airflow-stop`` leaves no process, SIGTERM ignored or not (issue 24, item 3).

Real process trees shaped like Airflow's, started by the same function as ``make airflow``
(``spawn_component``) and stopped by the same function as ``make airflow-stop``: a
component whose children ignore SIGTERM, one of them a "task runner" in a process group of
its own with a child of its own; and a component that died before the stop, leaving its
children behind.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from cli import airflow_runner
from core.processes import running
from core.settings import get_settings

ROOT = Path(__file__).resolve().parents[2]

FAKE = """
import os, signal, subprocess, sys, time
role, ready = sys.argv[1], sys.argv[2]
me = [sys.executable, __file__]
if role.startswith("component"):
    subprocess.Popen(me + ["stubborn", ready])
    subprocess.Popen(me + ["runner", ready])
    if role == "component-dies":
        sys.exit(0)  # dies and leaves its children running
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a polite leader
elif role == "runner":
    os.setpgid(0, 0)  # like Airflow's task runner: a process group of its own
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    subprocess.Popen(me + ["stubborn", ready])
else:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(os.path.join(ready, str(os.getpid())), "w").close()
while True:
    time.sleep(0.1)
"""


def marked(home: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get(airflow_runner.SERVICE_MARKER) == str(home):
                found += [process] if running(process) else []
    return found


def in_groups(groups: set[int]) -> list[int]:
    """Running processes in ``groups`` (a zombie runs nothing: its reaper is just slow)."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(process.pid) in groups and running(process):
                found.append(process.pid)
    return found


@pytest.fixture
def fake_airflow(state, tmp_path, monkeypatch):
    """Two fake components under a fresh Airflow home; yields (settings, their pids)."""
    monkeypatch.setenv("CHURN_AIRFLOW_HOME_DIR", str(tmp_path / "airflow"))
    settings = get_settings()
    script, ready = tmp_path / "fake_component.py", tmp_path / "ready"
    script.write_text(FAKE)
    ready.mkdir()
    command = [sys.executable, str(script)]
    env = dict(os.environ)
    scheduler = airflow_runner.spawn_component(
        settings, "scheduler", [*command, "component", str(ready)], env
    )
    airflow_runner.spawn_component(
        settings, "triggerer", [*command, "component-dies", str(ready)], env
    )
    deadline = time.monotonic() + 30
    while len(list(ready.iterdir())) < 7 and time.monotonic() < deadline:
        time.sleep(0.05)  # 4 processes of the scheduler's tree, 3 left by the triggerer
    assert len(list(ready.iterdir())) == 7, "the fake components did not start"
    pids = {int(p.name) for p in ready.iterdir()} | {scheduler}
    yield settings, pids
    for pid in pids:  # whatever a failed test left
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()


def test_airflow_stop_leaves_no_process_even_ones_ignoring_sigterm(fake_airflow):
    settings, pids = fake_airflow
    groups = {os.getpgid(pid) for pid in pids}
    assert len(groups) == 4  # the two components' groups and the two runners' own groups

    stopped = airflow_runner.stop_airflow(settings, grace_seconds=2)

    assert list(stopped.components) == ["scheduler"]  # the triggerer was dead already
    assert stopped.report.survivors == []
    assert {e.pid for e in stopped.report.ended} == pids
    stubborn = {e.pid for e in stopped.report.ended if e.how == "SIGKILL"}
    assert len(stubborn) == 6  # all but the polite scheduler ignored SIGTERM
    assert not any(psutil.pid_exists(pid) and running(psutil.Process(pid)) for pid in pids)
    assert marked(settings.airflow_home) == []
    assert in_groups(groups) == []
    assert not list((settings.airflow_home / "run").glob("*.pid"))
    summary = stopped.summary()
    assert summary.startswith("scheduler (pid ")
    assert "7 process(es) stopped, 6 of them with SIGKILL after ignoring SIGTERM" in summary
    # Nothing left: a second stop finds nothing.
    again = airflow_runner.stop_airflow(settings, grace_seconds=2)
    assert again.summary() == "no Airflow component was running; no process was running"


def test_a_stale_pid_file_never_stops_another_process(state, tmp_path, monkeypatch):
    monkeypatch.setenv("CHURN_AIRFLOW_HOME_DIR", str(tmp_path / "airflow"))
    settings = get_settings()
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pid_file = settings.airflow_home / "run" / "scheduler.pid"
        pid_file.parent.mkdir(parents=True)
        # A reused pid: not the process `make airflow` started (another start time), nor,
        # in a pid-only file of an older release, an airflow process at all.
        for content in (f"{stranger.pid} 1234567890.5", str(stranger.pid)):
            pid_file.write_text(content)
            stopped = airflow_runner.stop_airflow(settings, grace_seconds=1)
            assert stopped.components == {} and stopped.report.ended == []
            assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.slow
def test_make_airflow_stop_reports_what_it_stopped(fake_airflow):
    """The command behind the make target, its default 20 s grace included."""
    settings, _ = fake_airflow
    churn = [sys.executable, "-m", "cli.main"]  # `churn`, from this checkout
    done = subprocess.run(
        [*churn, "airflow", "stop"], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("airflow stop: scheduler (pid ")
    assert "7 process(es) stopped, 6 of them with SIGKILL after ignoring SIGTERM" in done.stdout
    assert marked(settings.airflow_home) == []
