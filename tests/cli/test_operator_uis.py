"""The operators' UIs behind their tools' own credentials: MLflow's basic-auth app.

The server is the one `make mlflow-ui` starts (same command, same environment), over a
tracking store holding a run and a registered version; requests go over HTTP as a
script's would, and through a real headless browser (Debian's Chromium, which
`make browser` installs, driven by Playwright) as a person's would.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from cli.operator_uis import MLFLOW_ADMIN, mlflow_admin_password, mlflow_ui
from core.settings import Settings, get_settings
from models.tracking import configure_mlflow, runs_page
from tests.conftest import _free_port

pytestmark = pytest.mark.slow
MODEL = "churn-model"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Headless, and no calls home: this machine's closed network refuses them, many at a time.
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> Iterator[tuple[Settings, str, str, str]]:
    """A tracking store with one run and one registered version, and the UI over it."""
    import mlflow

    root = tmp_path_factory.mktemp("operator_uis")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CHURN_STATE_DIR", str(root / "state"))
        for name in ("CHURN_POSTGRES_URL", "CHURN_MLFLOW_SERVER_URI"):
            env.delenv(name, raising=False)
        settings = get_settings()
        client = configure_mlflow(settings)
        # Its own experiment: an earlier test's active experiment is not in this store.
        experiment = client.create_experiment("operator-uis")
        with mlflow.start_run(experiment_id=experiment, run_name="train-churn-test") as run:
            mlflow.log_metric("f1", 0.9)
        client.create_registered_model(MODEL)
        version = client.create_model_version(MODEL, str(root), run_id=run.info.run_id)
        client.set_registered_model_alias(MODEL, "champion", version.version)
        server = mlflow_ui(settings, port=_free_port())
    log_path = root / "mlflow.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            server.command,
            env={**os.environ, **server.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the server and its workers stop as one group
        )
    deadline = time.monotonic() + 300
    try:
        while True:
            try:
                if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {log_path.read_text()}")
            time.sleep(0.5)
        yield settings, server.url, run.info.run_id, experiment
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_mlflow_needs_a_login_and_anonymous_writes_are_refused(mlflow_server):
    state, url, run_id, experiment = mlflow_server
    anonymous = httpx.Client(base_url=url, timeout=30)
    # No login: no page, no read, no alias move (which serving would follow).
    assert anonymous.get("/").status_code == 401
    assert anonymous.post("/api/2.0/mlflow/runs/search", json={}).status_code == 401
    moved = anonymous.post(
        "/api/2.0/mlflow/registered-models/alias",
        json={"name": MODEL, "alias": "champion", "version": "1"},
    )
    assert moved.status_code in (401, 403)

    admin = httpx.Client(
        base_url=url, timeout=30, auth=(MLFLOW_ADMIN, mlflow_admin_password(state))
    )
    # Logged in: the UI's page and the runs list it shows.
    page = admin.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    runs = admin.post("/api/2.0/mlflow/runs/search", json={"experiment_ids": [experiment]})
    assert runs.status_code == 200
    assert run_id in {r["info"]["run_id"] for r in runs.json().get("runs", [])}


def test_a_user_the_admin_adds_reads_but_cannot_move_an_alias(mlflow_server):
    state, url, *_ = mlflow_server
    admin = httpx.Client(
        base_url=url, timeout=30, auth=(MLFLOW_ADMIN, mlflow_admin_password(state))
    )
    created = admin.post(
        "/api/2.0/mlflow/users/create", json={"username": "analyst", "password": "a-long-pass-1"}
    )
    assert created.status_code == 200, created.text
    analyst = httpx.Client(base_url=url, timeout=30, auth=("analyst", "a-long-pass-1"))
    alias = {"name": MODEL, "alias": "champion"}
    read = analyst.get("/api/2.0/mlflow/registered-models/alias", params=alias)
    assert read.status_code == 200 and read.json()["model_version"]["version"] == "1"
    moved = analyst.post(
        "/api/2.0/mlflow/registered-models/alias",
        json={"name": MODEL, "alias": "champion", "version": "1"},
    )
    assert moved.status_code == 403


def test_generated_credentials_are_readable_by_their_owner_only(mlflow_server):
    state = mlflow_server[0]
    folder = state.storage.state_dir / "credentials"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for secret in folder.iterdir():
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    auth_config = state.storage.mlflow_dir / "basic_auth.ini"
    assert stat.S_IMODE(auth_config.stat().st_mode) == 0o600
    assert mlflow_admin_password(state) not in auth_config.read_text()


# The answer's status is all a navigation needs; the UI's scripts may load slowly on a
# busy machine, and the runs table is awaited on its own.
PATIENT = {"wait_until": "commit", "timeout": 90_000}


def settled_content(page) -> str:
    """The page's HTML once it stopped navigating (after a refused login Chromium moves on
    to its own error page, and reading the page meanwhile fails)."""
    from playwright.sync_api import Error

    for _ in range(20):
        page.wait_for_load_state("load", timeout=90_000)
        try:
            return page.content()
        except Error as error:
            if "navigating" not in str(error):
                raise
    raise AssertionError("the page never stopped navigating")


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: `make browser` installs Debian's")
def test_a_browser_logs_in_and_opens_on_the_runs_list(mlflow_server, tmp_path):
    from playwright.sync_api import Error, sync_playwright

    state, url, _, experiment = mlflow_server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            # No login, or a wrong password: the browser's navigation fails at the
            # basic-auth challenge, nothing of the UI loads.
            login = {"username": MLFLOW_ADMIN, "password": mlflow_admin_password(state)}
            for credentials in (None, {**login, "password": "not-the-password"}):
                stranger = browser.new_context(http_credentials=credentials).new_page()
                try:
                    status = stranger.goto(runs_page(url, experiment), **PATIENT).status
                except Error as error:  # Chromium gave up on the challenge
                    assert "ERR_INVALID_AUTH_CREDENTIALS" in str(error)
                    status = 401
                assert status == 401, credentials
                assert "train-churn-test" not in settled_content(stranger)

            page = browser.new_context(http_credentials=login).new_page()
            opened = page.goto(runs_page(url, experiment), **PATIENT)
            assert opened is not None and opened.status == 200
            # The React app renders the experiment's runs table with the run's name.
            page.get_by_text("train-churn-test").first.wait_for(timeout=90_000)
            page.screenshot(path=str(tmp_path / "mlflow_runs.png"))
            assert "workflowType=machine_learning" in page.url
        finally:
            browser.close()
