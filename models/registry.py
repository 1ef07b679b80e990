"""Model registry steps: register a challenger, read aliases, roll back (no training code).

The gate, which scores versions, lives in :mod:`models.promotion`.

Aliases, not stages: ``challenger`` marks the newest registered version, ``champion`` the
one serving, ``previous_champion`` the one it replaced (for rollback).
"""

from __future__ import annotations

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)

from core.settings import Settings
from core.spec import ModelSpec
from core.steps import RegisteredVersion, Rollback, TrainedModel
from models.onnx_model import export_verified
from models.tracking import configure_mlflow

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"


def register_model(spec: ModelSpec, trained: TrainedModel, settings: Settings) -> RegisteredVersion:
    """Register the logged model as a new version and point ``challenger`` at it.

    Its ONNX copy (what serving scores) is converted, verified on the holdout and logged
    first: a model that fails raises ``OnnxVerificationError`` and is not registered.
    """
    client = configure_mlflow(settings)
    run = client.get_run(trained.run_id)
    lineage = {k: v for k, v in run.data.tags.items() if k.startswith("lineage.")}
    onnx_tags = export_verified(trained.run_id, trained.model_uri, client, spec.features, spec.task)
    version = mlflow.register_model(
        trained.model_uri,
        spec.registered_model,
        tags={**lineage, "run_id": trained.run_id, **onnx_tags},
    )
    client.set_registered_model_alias(spec.registered_model, CHALLENGER, version.version)
    return RegisteredVersion(version=int(version.version), run_id=trained.run_id)


# What MLflow answers when the model or the alias does not exist (any other error, such as
# an unreachable registry, is raised).
NOT_FOUND_CODES = {ErrorCode.Name(RESOURCE_DOES_NOT_EXIST), ErrorCode.Name(INVALID_PARAMETER_VALUE)}


def alias_version(
    settings: Settings, model_name: str, alias: str, client: MlflowClient | None = None
) -> int | None:
    """The version an alias points at, or None when the alias (or the model) is not set."""
    client = client or configure_mlflow(settings)
    try:
        return int(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException as error:
        if error.error_code in NOT_FOUND_CODES:
            return None
        raise


def load_version(model_name: str, version: int):
    """The registered scikit-learn model of ``version`` (MLflow configured by the caller)."""
    return mlflow.sklearn.load_model(f"models:/{model_name}/{version}")


def rollback_champion(settings: Settings, model_name: str) -> Rollback:
    """Point ``champion`` back at ``previous_champion`` (the version it replaced)."""
    client = configure_mlflow(settings)
    previous = alias_version(settings, model_name, PREVIOUS_CHAMPION, client)
    current = alias_version(settings, model_name, CHAMPION, client)
    if previous is None:
        raise RuntimeError(f"{model_name}: no previous champion to roll back to")
    client.set_registered_model_alias(model_name, CHAMPION, str(previous))
    if current is not None:
        client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, str(current))
    return Rollback(champion=previous, rolled_back_from=current)


def promote_by_hand(settings: Settings, model_name: str, version: int, reason: str) -> int | None:
    """Make ``version`` the champion without the gate (an operator's override).

    The replaced champion becomes ``previous_champion``, so the automatic-rollback rule
    and ``rollback_champion`` can bring it back; the reason is written on the version.
    Returns the replaced champion's version (None: there was none).
    """
    client = configure_mlflow(settings)
    current = alias_version(settings, model_name, CHAMPION, client)
    if current == version:
        raise RuntimeError(f"{model_name} v{version} is already the champion")
    if current is not None:
        client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, str(current))
    client.set_registered_model_alias(model_name, CHAMPION, str(version))
    client.set_model_version_tag(model_name, str(version), "gate.decision", "promoted_by_hand")
    client.set_model_version_tag(model_name, str(version), "gate.reason", reason)
    return current


def challenge_by_hand(settings: Settings, model_name: str, version: int, reason: str) -> None:
    """Send ``version`` to a live A/B against the champion, whatever the offline gate said.

    It becomes ``challenger`` and awaits the live verdict (``gate.decision``
    ``awaiting_live_verdict``): with A/B routing on, its share of traffic is scored by it,
    and the monitoring run promotes or rejects it on matured labels.
    """
    client = configure_mlflow(settings)
    if alias_version(settings, model_name, CHAMPION, client) == version:
        raise RuntimeError(f"{model_name} v{version} is the champion: nothing to compare with")
    client.set_registered_model_alias(model_name, CHALLENGER, str(version))
    client.set_model_version_tag(model_name, str(version), "gate.decision", "awaiting_live_verdict")
    client.set_model_version_tag(model_name, str(version), "gate.reason", reason)
