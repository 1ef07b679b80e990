"""The server process: a busy port is refused up front, only the started server is talked to,
and a killed ``bentoml serve`` leaves no worker serving (issue 24, items 2 and 3)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from platform_support import tools_imported_by
from serving_support import free_tcp_port

import cli.demo
from cli.main import main
from core.processes import port_free, running, tree
from serving import server as server_module
from serving.server import BentoServer, PortBusy


class ForeignServer:
    """Someone else's HTTP server on a port: answers 200 to everything, records each request."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                requests.append(f"{self.command} {self.path}")
                body = b'{"model_version": 1, "churn_probability": 0.5}'
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", free_tcp_port()), Handler)
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def foreign() -> Iterator[ForeignServer]:
    server = ForeignServer()
    yield server
    server.close()


def test_a_busy_port_is_refused_before_any_server_starts(state, foreign):
    server = BentoServer(state, port=foreign.port)
    with pytest.raises(PortBusy) as refused:
        server.__enter__()
    message = str(refused.value)
    assert f"port {foreign.port} on 127.0.0.1 is already in use" in message
    assert f"by pid {os.getpid()}" in message  # the holder: this test process
    assert "CHURN_SERVE_PORT=" in message and "make demo" in message
    assert server.process is None, "no bentoml serve was started"
    assert foreign.requests == []


def test_churn_serve_refuses_a_busy_port_naming_it(state, foreign, monkeypatch, capsys):
    monkeypatch.setenv("CHURN_SERVE_PORT", str(foreign.port))
    started = []
    monkeypatch.setattr(os, "execve", lambda *args: started.append(args))
    with pytest.raises(SystemExit) as refused:
        main(["serve"])
    message = str(refused.value.code)
    assert message.startswith(f"churn serve: port {foreign.port} on 127.0.0.1 is already in use")
    assert "Stop that process, or choose another port with CHURN_SERVE_PORT" in message
    assert "e.g. `CHURN_SERVE_PORT=" in message and " make serve`" in message
    assert started == [] and foreign.requests == []


def test_churn_demo_refuses_a_busy_port_before_it_resets_anything(state, foreign, monkeypatch):
    monkeypatch.setenv("CHURN_SERVE_PORT", str(foreign.port))
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # the CLI sets it
    kept = state.storage.state_dir / "platform.db"  # a part the demo's reset removes
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text("earlier state")
    monkeypatch.setattr(cli.demo, "reset_state", lambda _: pytest.fail("the demo went on"))
    with pytest.raises(SystemExit) as refused:
        main(["demo"])
    message = str(refused.value.code)
    assert message.startswith(f"churn demo: port {foreign.port} on 127.0.0.1 is already in use")
    assert "CHURN_SERVE_PORT=" in message and "make demo`" in message
    assert kept.read_text() == "earlier state" and foreign.requests == []


def test_the_readiness_wait_never_takes_a_foreign_server_for_its_own(state, foreign):
    """A process that started (alive) but does not hold the port: the foreign server that
    answers 200 on it is not accepted, nor even asked."""
    server = BentoServer(state, port=foreign.port, ready_timeout=3)
    server.log_path.parent.mkdir(parents=True, exist_ok=True)
    server.log_path.touch()
    server._log_start = 0
    server.process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        with pytest.raises(TimeoutError) as waited:
            server._wait_ready()
        assert f"the port is held by pid {os.getpid()}" in str(waited.value)
        server.process.kill()
        server.process.wait()
        with pytest.raises(RuntimeError, match="bentoml serve exited with -9"):
            server.wait_alive(timeout=3)
    finally:
        server.stop(grace_seconds=1)
    assert foreign.requests == []


@pytest.mark.slow
def test_a_server_that_could_not_bind_is_reported_not_replaced_by_the_foreign_one(
    state, foreign, monkeypatch
):
    """The issue's run: the port is taken after the up-front check (here: the check
    skipped), ``bentoml serve`` fails to bind; the wait reports the busy port instead of
    accepting the foreign server that answers there."""
    monkeypatch.setattr(server_module, "ensure_port_free", lambda *args, **kwargs: None)
    server = BentoServer(state, port=foreign.port, ready_timeout=120)
    with pytest.raises(PortBusy, match=f"port {foreign.port} on 127.0.0.1 is already in use"):
        server.__enter__()
    assert "Could not bind" in server.log_path.read_text()
    assert foreign.requests == []


@pytest.mark.slow
def test_a_killed_server_leaves_no_worker_serving(state):
    """kill -9 of the ``bentoml serve`` main process: its worker (in a session of its own)
    notices and exits; nothing listens on the port and ``make serve`` can start again."""
    port = free_tcp_port()
    server = BentoServer(state, port=port, wait_ready=False)  # no champion: alive, not ready
    server.__enter__()
    try:
        workers = tree(server.process.pid)[1:]
        assert workers, "bentoml serve started no worker"
        assert server.owns_port()
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (
            any(running(w) for w in workers) or not port_free("127.0.0.1", port)
        ):
            time.sleep(0.2)
        left = [w.pid for w in workers if running(w)]
        assert left == [], f"workers still running after their supervisor died: {left}"
        assert port_free("127.0.0.1", port)
        # The worker knew its supervisor (CHURN_SERVE_SUPERVISOR_PID matched its parent, or
        # it would have stopped at start-up) and noticed it die.
        pid = server.process.pid
        assert f"(pid {pid}) is gone: stopping this worker" in server.log_path.read_text()
    finally:
        server.stop(grace_seconds=2)


@pytest.mark.slow
def test_stopping_a_server_stops_its_workers_too(state):
    """The worker lives in a session of its own: stop() reaches it (SIGTERM, then SIGKILL)."""
    server = BentoServer(state, port=free_tcp_port(), wait_ready=False)
    server.__enter__()
    workers = tree(server.process.pid)[1:]
    report = server.stop()
    assert report is not None and report.survivors == []
    assert {w.pid for w in workers} <= {e.pid for e in report.ended}
    assert not any(running(w) for w in workers)
    assert port_free("127.0.0.1", server.port)


def test_the_service_definition_loads_without_the_heavy_tools():
    """`bentoml serve`'s parent process imports the service module only to read its
    definition: Feast, MLflow, ONNX Runtime and scikit-learn are left to the worker
    (Predictor.__init__), so a server start pays their import once, not twice."""
    loaded = (
        "import serving.service as service\n"
        "assert sorted(service.API_MODELS) == sorted(spec.name for spec in service.SPECS)"
    )
    tools = ("feast", "mlflow", "onnxruntime", "onnx", "sklearn", "great_expectations")
    assert tools_imported_by(loaded, tools) == []
