"""The operators' UIs of the local stack, each behind its own tool's credentials.

- MLflow runs as ``mlflow server --app-name basic-auth``: MLflow's own users and
  permissions. Every request needs a login; the ``admin`` user (the platform's own, which
  may write: aliases, tags, runs) gets a generated password the first time, and users an
  admin creates read by default (``default_permission = READ``).
- Evidently's UI runs with its own write secret (``EVIDENTLY_SECRET``): dashboards can be
  read, but creating or deleting a project needs the ``evidently-secret`` header.

Generated credentials live under ``$CHURN_STATE_DIR/credentials/`` (folder 700, files
600), and are passed to the servers through their environment, never on a command line
(which every user of the host can read with ``ps``).
"""

from __future__ import annotations

import configparser
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings

MLFLOW_ADMIN = "admin"
MLFLOW_UI_PORT = 5000


@dataclass(frozen=True)
class ServerCommand:
    """A server to start: its command line and the environment it adds (secrets)."""

    command: list[str]
    env: dict[str, str]
    url: str


def private_folder(path: Path) -> Path:
    """``path`` created if missing, readable by its owner only (700)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to a file only its owner can read (600), from its creation on."""
    private_folder(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    path.chmod(0o600)  # an older file of looser mode keeps its mode through O_TRUNC
    return path


def state_secret(settings: Settings, name: str) -> str:
    """The secret ``name`` of this state folder, generated once (``credentials/<name>``)."""
    path = settings.storage.state_dir / "credentials" / name
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(24)
    write_private(path, value)
    return value


def _tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def mlflow_ui(settings: Settings, port: int = MLFLOW_UI_PORT) -> ServerCommand:
    """``mlflow server`` over the project's tracking store with MLflow's basic-auth app."""
    mlflow_dir = private_folder(settings.storage.mlflow_dir)
    config = configparser.ConfigParser()
    config["mlflow"] = {
        "default_permission": "READ",
        "database_uri": f"sqlite:///{mlflow_dir / 'basic_auth.db'}",
        "admin_username": MLFLOW_ADMIN,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
    }
    auth_config = mlflow_dir / "basic_auth.ini"
    with auth_config.open("w") as out:
        config.write(out)
    auth_config.chmod(0o600)
    command = [
        _tool("mlflow"), "server", "--app-name", "basic-auth",
        "--backend-store-uri", settings.storage.mlflow_tracking_uri,
        "--default-artifact-root", settings.storage.mlflow_artifact_location,
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
        # Read by MLflow only when it creates the admin user (first start of this state).
        "MLFLOW_AUTH_ADMIN_PASSWORD": mlflow_admin_password(settings),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": state_secret(settings, "mlflow-flask-secret-key"),
    }
    return ServerCommand(command, env, f"http://127.0.0.1:{port}")


def mlflow_admin_password(settings: Settings) -> str:
    return state_secret(settings, "mlflow-admin-password")


def evidently_ui(settings: Settings, port: int) -> ServerCommand:
    """Evidently's own UI over the platform's workspace (one project per model spec)."""
    workspace = settings.storage.evidently_workspace_dir
    workspace.mkdir(parents=True, exist_ok=True)
    command = [
        _tool("evidently"), "ui", "--workspace", str(workspace),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    env = {"EVIDENTLY_SECRET": evidently_secret(settings)}
    return ServerCommand(command, env, f"http://127.0.0.1:{port}")


def evidently_secret(settings: Settings) -> str:
    return state_secret(settings, "evidently-ui-secret")
