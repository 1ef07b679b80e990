"""Starting and stopping the BentoML server as a real process (demo, tests, benchmarks).

A server is only started on a free port (:func:`ensure_port_free`: a busy port is refused
up front, naming the port, its holder and ``CHURN_SERVE_PORT``), and :class:`BentoServer`
only ever talks to the server it started: its readiness wait sends no request until a
process of the tree it started listens on the port (a port holds one listener, so the
answer comes from that server), and fails as soon as that process exits. Stopping it
stops the whole tree, the workers BentoML starts in sessions of their own included
(:func:`core.processes.stop_processes`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from core.processes import (
    StopReport,
    listening,
    next_free_port,
    port_free,
    port_holders,
    stop_processes,
    tree,
)
from core.settings import PROJECT_ROOT, Settings
from serving.lifeline import SUPERVISOR_VARIABLE

SERVICE = "serving.service:ChurnPredictor"


class PortBusy(RuntimeError):
    """The serving port is taken: no server was started (and none is talked to)."""

    def __init__(self, host: str, port: int, command: str = "make serve") -> None:
        holders = port_holders(port)
        held = f" by {'; '.join(holders)}" if holders else ""
        other = next_free_port(host, port) or port + 1
        super().__init__(
            f"port {port} on {host} is already in use{held}, so the server was not started. "
            f"Stop that process, or choose another port with CHURN_SERVE_PORT, e.g. "
            f"`CHURN_SERVE_PORT={other} {command}`."
        )
        self.host, self.port = host, port


def ensure_port_free(host: str, port: int, command: str = "make serve") -> None:
    """Raise :class:`PortBusy` unless a server could bind ``host:port`` now."""
    if not port_free(host, port):
        raise PortBusy(host, port, command)


def serve_command(settings: Settings, port: int | None = None, target: str = SERVICE) -> list[str]:
    """``bentoml serve`` for ``target`` on the configured host and ``port``."""
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    return [
        bentoml, "serve", target,
        "--host", settings.serving.host, "--port", str(port or settings.serving.port),
    ]  # fmt: skip


def server_env(settings: Settings, port: int | None = None) -> dict[str, str]:
    """Environment of a server process: its own BentoML home under the state folder.

    BentoML keeps its Prometheus multiprocess files in ``$BENTOML_HOME`` and a starting
    server clears them; a home shared by every server on the machine (``~/bentoml``) lets
    one server wipe another's metrics. One home per port keeps them apart.

    The caller adds ``CHURN_SERVE_SUPERVISOR_PID`` (:func:`supervised_command`).
    """
    port = port or settings.serving.port
    home = os.environ.get("BENTOML_HOME") or str(
        settings.storage.state_dir / "serving" / f"bentoml-{port}"
    )
    return {"CHURN_STATE_DIR": str(settings.storage.state_dir), "BENTOML_HOME": home}


def supervised_command(command: list[str]) -> list[str]:
    """``command`` run with its own pid in ``CHURN_SERVE_SUPERVISOR_PID`` (``exec`` keeps the
    pid): a worker whose parent is not that process was orphaned (:mod:`serving.lifeline`)."""
    return ["/bin/sh", "-c", f'export {SUPERVISOR_VARIABLE}=$$; exec "$@"', "sh", *command]


class BentoServer:
    """``with BentoServer(settings) as url:`` runs ``bentoml serve`` until the block ends."""

    def __init__(
        self,
        settings: Settings,
        port: int | None = None,
        ready_timeout: float = 180,
        target: str = SERVICE,
        env: dict[str, str] | None = None,
        wait_ready: bool = True,
    ):
        self.settings = settings
        self.target = target
        self.extra_env = env or {}
        self.wait_ready = wait_ready
        self.port = port or settings.serving.port
        self.ready_timeout = ready_timeout
        self.url = f"http://{settings.serving.host}:{self.port}"
        self.log_path = settings.storage.state_dir / "serving" / f"server-{self.port}.log"
        self.process: subprocess.Popen | None = None
        self.started: list[psutil.Process] = []

    def __enter__(self) -> str:
        ensure_port_free(self.settings.serving.host, self.port, command="make demo")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **server_env(self.settings, self.port), **self.extra_env}
        with open(self.log_path, "ab") as log:
            self._log_start = log.tell()  # this start's lines follow (the log is appended to)
            self.process = subprocess.Popen(
                supervised_command(serve_command(self.settings, self.port, self.target)),
                cwd=PROJECT_ROOT, env=env,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # a group of its own (its workers get sessions of theirs)
            )  # fmt: skip
        try:
            if self.wait_ready:
                self._wait_ready()
            else:
                self.wait_alive()
        except BaseException:
            self.stop()
            raise
        # Its processes, stopped with it even if the main one is gone by then.
        self.started = tree(self.process.pid)
        return self.url

    def wait_alive(self, timeout: float | None = None) -> None:
        """Wait until the process answers /livez (it may still be not ready)."""
        self._wait_for("/livez", timeout or self.ready_timeout)

    def alive(self) -> bool:
        """Whether the server process is still running."""
        return self.process is not None and self.process.poll() is None

    def _wait_ready(self) -> None:
        self._wait_for("/readyz", self.ready_timeout)

    def owns_port(self) -> bool:
        """Whether a process of the tree this server started listens on its port."""
        return self.process is not None and listening(
            [p.pid for p in tree(self.process.pid)], self.port
        )

    def _wait_for(self, endpoint: str, timeout: float) -> None:
        """Poll ``endpoint`` of the server started here until it answers 200.

        No request is sent until the started process tree listens on the port, so a foreign
        server on the port is never talked to, let alone taken for this one; fails as soon
        as the started process exits (a port taken meanwhile: :class:`PortBusy`).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._fail_if_exited()
            if self.owns_port():
                try:
                    ok = httpx.get(f"{self.url}{endpoint}", timeout=1).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self._fail_if_exited()
                if ok and self.owns_port():
                    return
            time.sleep(0.5)
        holders = port_holders(self.port) if not self.owns_port() else []
        foreign = f"; the port is held by {'; '.join(holders)}, not by it" if holders else ""
        raise TimeoutError(
            f"the server started here did not answer {endpoint} with 200 within {timeout}s"
            f"{foreign}; see {self.log_path}"
        )

    def _fail_if_exited(self) -> None:
        if self.process is None or self.process.poll() is None:
            return
        with open(self.log_path, "rb") as log:
            log.seek(self._log_start)
            if b"Could not bind" in log.read():  # the port was taken after the check
                raise PortBusy(self.settings.serving.host, self.port, command="make demo")
        raise RuntimeError(
            f"bentoml serve exited with {self.process.returncode}; see {self.log_path}"
        )

    def stop(self, grace_seconds: float = 20) -> StopReport | None:
        """Stop the server and every process it started (SIGTERM, SIGKILL after the grace)."""
        if self.process is None:
            return None
        # Once reaped, its pid may be another process's: then only the processes seen at
        # the start are its (psutil knows their start times).
        leaders = [self.process.pid] if self.process.poll() is None else []
        report = stop_processes(leaders, grace_seconds, members=self.started)
        self.process.wait(timeout=10)
        return report

    def __exit__(self, *exc: object) -> None:
        self.stop()
