"""Starting and stopping the BentoML server as a real process (demo, tests, benchmarks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from core.settings import PROJECT_ROOT, Settings

SERVICE = "serving.service:ChurnPredictor"


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
    """
    port = port or settings.serving.port
    home = os.environ.get("BENTOML_HOME") or str(
        settings.storage.state_dir / "serving" / f"bentoml-{port}"
    )
    return {"CHURN_STATE_DIR": str(settings.storage.state_dir), "BENTOML_HOME": home}


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

    def __enter__(self) -> str:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **server_env(self.settings, self.port), **self.extra_env}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                serve_command(self.settings, self.port, self.target), cwd=PROJECT_ROOT, env=env,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # its workers share the group, stopped together
            )  # fmt: skip
        try:
            if self.wait_ready:
                self._wait_ready()
            else:
                self.wait_alive()
        except BaseException:
            self.stop()
            raise
        return self.url

    def wait_alive(self, timeout: float | None = None) -> None:
        """Wait until the process answers /livez (it may still be not ready)."""
        self._wait_for("/livez", timeout or self.ready_timeout)

    def alive(self) -> bool:
        """Whether the server process is still running."""
        return self.process is not None and self.process.poll() is None

    def _wait_ready(self) -> None:
        self._wait_for("/readyz", self.ready_timeout)

    def _wait_for(self, endpoint: str, timeout: float) -> None:
        """Poll ``endpoint`` until it answers 200; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"bentoml serve exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                if httpx.get(f"{self.url}{endpoint}", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{endpoint} not 200 within {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass

    def __exit__(self, *exc: object) -> None:
        self.stop()
