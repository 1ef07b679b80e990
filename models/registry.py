"""Model registry steps: register a challenger, gate it against the champion, roll back.

Aliases, not stages: ``challenger`` marks the newest registered version, ``champion`` the
one serving, ``previous_champion`` the one it replaced (for rollback).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)

from core.settings import Settings
from models.tracking import configure_mlflow
from models.training import build_training_set, evaluate, train_and_log

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"


def register_model(trained: dict, settings: Settings) -> dict:
    """Register the logged model as a new version and point ``challenger`` at it."""
    client = configure_mlflow(settings)
    run = client.get_run(trained["run_id"])
    lineage = {k: v for k, v in run.data.tags.items() if k.startswith("lineage.")}
    version = mlflow.register_model(
        trained["model_uri"], settings.model_name, tags={**lineage, "run_id": trained["run_id"]}
    )
    client.set_registered_model_alias(settings.model_name, CHALLENGER, version.version)
    return {"version": int(version.version), "run_id": trained["run_id"]}


# What MLflow answers when the model or the alias does not exist (any other error, such as
# an unreachable registry, is raised).
NOT_FOUND_CODES = {ErrorCode.Name(RESOURCE_DOES_NOT_EXIST), ErrorCode.Name(INVALID_PARAMETER_VALUE)}


def alias_version(settings: Settings, alias: str, client: MlflowClient | None = None) -> int | None:
    """The version an alias points at, or None when the alias (or the model) is not set."""
    client = client or configure_mlflow(settings)
    try:
        return int(client.get_model_version_by_alias(settings.model_name, alias).version)
    except MlflowException as error:
        if error.error_code in NOT_FOUND_CODES:
            return None
        raise


@dataclass(frozen=True)
class GateDecision:
    version: int
    promoted: bool
    reason: str
    f1: float
    champion_version: int | None
    champion_f1: float | None


def load_version(settings: Settings, version: int):
    """The registered scikit-learn model of ``version``."""
    return mlflow.sklearn.load_model(f"models:/{settings.model_name}/{version}")


def gate(version: int, holdout_path: str, settings: Settings) -> dict:
    """Promote ``version`` to champion only if it beats the champion's F1 on the same holdout.

    With no champion yet, the version must reach ``settings.min_f1``. The decision and
    its reason are written on the version (tags and description).
    """
    client = configure_mlflow(settings)
    holdout = pd.read_parquet(holdout_path)
    f1 = evaluate(load_version(settings, version), holdout)["f1"]
    champion = alias_version(settings, CHAMPION, client)
    champion_f1 = None
    if champion is None:
        promoted = f1 >= settings.min_f1
        reason = (
            f"first model: F1 {f1:.4f} {'>=' if promoted else '<'} minimum {settings.min_f1:.4f}"
        )
    elif champion == version:
        promoted, reason = False, f"version {version} is already the champion"
    else:
        champion_f1 = evaluate(load_version(settings, champion), holdout)["f1"]
        promoted = f1 > champion_f1
        reason = (
            f"F1 {f1:.4f} {'beats' if promoted else 'does not beat'} champion v{champion} "
            f"F1 {champion_f1:.4f} on the same holdout ({len(holdout)} rows)"
        )
    name = settings.model_name
    if promoted:
        if champion is not None:
            client.set_registered_model_alias(name, PREVIOUS_CHAMPION, str(champion))
        client.set_registered_model_alias(name, CHAMPION, str(version))
    decision = GateDecision(version, promoted, reason, f1, champion, champion_f1)
    client.set_model_version_tag(name, str(version), "gate.decision", _verdict(promoted))
    client.set_model_version_tag(name, str(version), "gate.reason", reason)
    client.set_model_version_tag(name, str(version), "gate.f1", f"{f1:.6f}")
    if champion_f1 is not None:
        client.set_model_version_tag(name, str(version), "gate.champion_f1", f"{champion_f1:.6f}")
    client.update_model_version(
        name, str(version), description=f"Gate: {_verdict(promoted)}. {reason}"
    )
    return asdict(decision)


def _verdict(promoted: bool) -> str:
    return "promoted" if promoted else "rejected"


def run_training_pipeline(settings: Settings, run_name: str) -> dict:
    """The four steps of ``training_pipeline`` in this process, without Airflow."""
    training_set = build_training_set(settings, run_name=run_name)
    trained = train_and_log(training_set, settings, dag_run_id=run_name)
    registered = register_model(trained, settings)
    decision = gate(registered["version"], training_set["holdout_path"], settings)
    return {"training_set": training_set, "trained": trained, "gate": decision}


def rollback_champion(settings: Settings) -> dict:
    """Point ``champion`` back at ``previous_champion`` (the version it replaced)."""
    client = configure_mlflow(settings)
    previous = alias_version(settings, PREVIOUS_CHAMPION)
    current = alias_version(settings, CHAMPION)
    if previous is None:
        raise RuntimeError("no previous champion to roll back to")
    client.set_registered_model_alias(settings.model_name, CHAMPION, str(previous))
    if current is not None:
        client.set_registered_model_alias(settings.model_name, PREVIOUS_CHAMPION, str(current))
    return {"champion": previous, "rolled_back_from": current}
