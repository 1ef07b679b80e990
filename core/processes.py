"""Processes the platform starts in the background, and stopping them so that none is left.

A service started here (``bentoml serve``, Airflow's components) starts processes of its
own, and some leave its process group: BentoML's supervisor (circus) starts each worker in
a session of its own, Airflow's task supervisor puts each task runner in a group of its
own. Signalling the group that was started therefore misses them, and a process that
ignores SIGTERM outlives a polite stop. :func:`stop_processes` stops every process of a
tree for sure:

1. it collects the processes: each leader, its descendants, the members of its process
   group, the processes the caller saw in the tree earlier and, with a ``marker``, every
   process of this user whose environment carries it (the services are started with one,
   which their descendants inherit, so a process whose parent died and that left the group
   is still found; best effort: a process that renames itself with ``setproctitle`` may
   overwrite the environment the system shows of it);
2. it sends SIGTERM to each leader's group and to every collected process whose parent is
   not collected (an orphan: nobody else will stop it), and waits up to ``grace_seconds``
   for all of them, collecting the processes they start meanwhile;
3. it sends SIGKILL to what is left, waits for it, and reports each process and how it
   ended, and any that survived (a process of another user it may not signal).

A zombie counts as gone: it runs nothing and holds no port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import psutil

POLL_SECONDS = 0.1  # how often a stop looks whether the processes are gone
COLLECT_SECONDS = 0.5  # how often it looks for processes started meanwhile


@dataclass(frozen=True)
class Ended:
    """One stopped process: its pid, command and how it ended."""

    pid: int
    command: str
    how: str  # "SIGTERM" (or already exiting), "SIGKILL"


@dataclass
class StopReport:
    """What :func:`stop_processes` stopped, and what it could not."""

    ended: list[Ended] = field(default_factory=list)
    survivors: list[Ended] = field(default_factory=list)

    @property
    def killed(self) -> list[Ended]:
        """The processes that ignored SIGTERM for the whole grace period."""
        return [e for e in self.ended if e.how == "SIGKILL"]

    def summary(self) -> str:
        if not self.ended and not self.survivors:
            return "no process was running"
        text = f"{len(self.ended)} process(es) stopped"
        if self.killed:
            pids = ", ".join(str(e.pid) for e in self.killed)
            text += f", {len(self.killed)} of them with SIGKILL after ignoring SIGTERM ({pids})"
        if self.survivors:
            left = "; ".join(f"{e.pid} {e.command}" for e in self.survivors)
            text += f"; STILL RUNNING: {left}"
        return text


def describe(process: psutil.Process) -> str:
    """A process's command line, shortened (its name when the command is not readable)."""
    try:
        command = " ".join(process.cmdline()) or process.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return "?"
    return command if len(command) <= 120 else command[:117] + "..."


def running(process: psutil.Process) -> bool:
    """Whether ``process`` (the very process, not a reuse of its pid) still runs."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True


def tree(pid: int) -> list[psutil.Process]:
    """The process ``pid`` and its descendants (empty when it is gone)."""
    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return []
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return [root]


def _scan(groups: set[int], marker: tuple[str, str] | None) -> list[psutil.Process]:
    """One pass over this user's processes: members of ``groups``, carriers of ``marker``."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            in_group = os.getpgid(process.pid) in groups
            if in_group or (marker and process.environ().get(marker[0]) == marker[1]):
                found.append(process)
    return found


def stop_processes(
    leaders: Iterable[int],
    grace_seconds: float = 10.0,
    marker: tuple[str, str] | None = None,
    kill_wait_seconds: float = 5.0,
    members: Iterable[psutil.Process] = (),
) -> StopReport:
    """Stop ``leaders``, everything they started, ``members`` (processes seen in their
    tree before) and every process carrying ``marker``.

    See the module docstring. ``leaders`` must be the caller's processes (a child it has
    not reaped, or one it checked), never a pid read from a stale file and maybe reused (a
    ``psutil.Process`` in ``members`` is safe: it knows its start time). Never signals this
    process or its ancestors.
    """
    members = list(members)
    spared = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    leaders = [pid for pid in leaders if pid > 1 and pid not in spared]
    known: dict[int, psutil.Process] = {}
    commands: dict[int, str] = {}

    def collect() -> None:
        found = [p for pid in leaders for p in tree(pid)] + _scan(set(leaders), marker) + members
        for process in [*found, *known.values()]:
            if running(process):
                with contextlib.suppress(psutil.Error):
                    found += process.children(recursive=True)
        for process in found:
            if process.pid not in spared and process.pid not in known and running(process):
                known[process.pid] = process
                commands[process.pid] = describe(process)

    def alive() -> list[psutil.Process]:
        return [p for p in known.values() if running(p)]

    collect()
    for pid in leaders:
        if pid != os.getpgrp():  # never this process's own group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)  # the leader's group: the polite way in
    for process in alive():
        with contextlib.suppress(psutil.Error, OSError):
            # An orphan outside the signalled groups: nobody else would stop it.
            if process.ppid() not in known and os.getpgid(process.pid) not in leaders:
                process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    next_collect = time.monotonic() + COLLECT_SECONDS
    while alive() and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        if time.monotonic() >= next_collect:  # what they start meanwhile
            collect()
            next_collect = time.monotonic() + COLLECT_SECONDS
    collect()
    killed = set()
    for process in alive():
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGKILL)
            killed.add(process.pid)
    deadline = time.monotonic() + kill_wait_seconds
    while alive() and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    left = {p.pid for p in alive()}
    report = StopReport()
    for pid in sorted(known):
        how = "SIGKILL" if pid in killed else "SIGTERM"
        (report.survivors if pid in left else report.ended).append(Ended(pid, commands[pid], how))
    return report


def listening(pids: Iterable[int], port: int) -> bool:
    """Whether one of the processes ``pids`` holds a TCP socket listening on ``port``."""
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            for conn in psutil.Process(pid).net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                    return True
    return False


def port_holders(port: int) -> list[str]:
    """The processes listening on TCP ``port`` that this user may see (``pid command``)."""
    holders = []
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                if conn.pid is None:
                    holders.append("a process of another user")
                else:
                    holders.append(f"pid {conn.pid} ({describe(psutil.Process(conn.pid))})")
    return sorted(set(holders))


def port_free(host: str, port: int) -> bool:
    """Whether a server could bind ``host:port`` now (as BentoML's does, SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def next_free_port(host: str, after: int, tries: int = 100) -> int | None:
    """The first port above ``after`` that ``host`` could bind, if one of ``tries`` is."""
    return next((p for p in range(after + 1, after + 1 + tries) if port_free(host, p)), None)
