"""Model registry steps: register a challenger, read aliases, roll back (no training code).

The gate, which scores versions, lives in :mod:`models.promotion`.

Aliases, not stages: ``challenger`` marks the newest registered version, ``champion`` the
one serving, ``previous_champion`` the one it replaced (for rollback). Whatever reads and
moves them holds the registered model's lock (:func:`core.locks.registry_lock`), so two
moves never interleave.

A rollback is one way: the version ``champion`` leaves is tagged ``rolled_back`` (with
``rollback.reason`` / ``rollback.at``) and ``previous_champion`` is cleared, so a second
rollback refuses (:class:`NoRollbackTarget`) instead of promoting the version just rolled
back from. A version tagged ``rolled_back`` is never a rollback target; it loses the tag
only when it becomes champion again (an operator's ``promote_by_hand`` or the gate).
"""

from __future__ import annotations

import logging
from datetime import datetime

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)

from core import clock
from core.locks import registry_lock
from core.logs import stderr_to_log
from core.settings import Settings
from core.spec import ModelSpec
from core.steps import RegisteredVersion, Rollback, TrainedModel
from models.aliases import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION
from models.onnx_model import export_verified
from models.tracking import configure_mlflow

log = logging.getLogger(__name__)

# Written on a version each time it becomes champion: the start of its "time to production".
CHAMPION_SINCE = "champion.since"
# "true" on a version champion was rolled back from, until it is champion again.
ROLLED_BACK = "rolled_back"


class NoRollbackTarget(RuntimeError):
    """There is no version ``champion`` can move back to."""


def set_champion(client: MlflowClient, model_name: str, version: int, replaced: int | None) -> None:
    """Point ``champion`` at ``version``; ``replaced`` (the old one) becomes
    ``previous_champion``. Every promotion goes through here, so each new champion carries
    the time it was promoted (tag ``champion.since``), which the deploy step measures from.
    """
    if replaced is not None and replaced != version:
        client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, str(replaced))
    client.set_registered_model_alias(model_name, CHAMPION, str(version))
    client.set_model_version_tag(
        # A timing (time to production), not a decision: the wall clock.
        model_name,
        str(version),
        CHAMPION_SINCE,
        clock.wall_now().isoformat(),
    )
    # Champion again (by hand or by the gate): a later rollback may come back to it.
    if ROLLED_BACK in client.get_model_version(model_name, str(version)).tags:
        client.delete_model_version_tag(model_name, str(version), ROLLED_BACK)


def register_model(spec: ModelSpec, trained: TrainedModel, settings: Settings) -> RegisteredVersion:
    """Register the logged model as a new version and point ``challenger`` at it.

    Its ONNX copy (what serving scores) is converted, verified on the holdout and logged
    first: a model that fails raises ``OnnxVerificationError`` and is not registered.
    """
    client = configure_mlflow(settings)
    run = client.get_run(trained.run_id)
    lineage = {k: v for k, v in run.data.tags.items() if k.startswith("lineage.")}
    onnx_tags = export_verified(trained.run_id, trained.model_uri, client, spec.features, spec.task)
    with stderr_to_log(log):  # MLflow prints "Created version ..." to stderr
        version = mlflow.register_model(
            trained.model_uri,
            spec.registered_model,
            tags={**lineage, "run_id": trained.run_id, **onnx_tags},
        )
    with registry_lock(settings, spec.registered_model):
        client.set_registered_model_alias(spec.registered_model, CHALLENGER, version.version)
        log.info(
            "registered %s version %s (alias %s) from run %s; ONNX copy verified",
            spec.registered_model, version.version, CHALLENGER, trained.run_id,
        )  # fmt: skip
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


def rollback_target(
    settings: Settings, model_name: str, client: MlflowClient | None = None
) -> int | None:
    """The version a rollback would restore: ``previous_champion``, unless it is the
    champion itself or a version that was rolled back (None: there is none)."""
    client = client or configure_mlflow(settings)
    previous = alias_version(settings, model_name, PREVIOUS_CHAMPION, client)
    if previous is None or previous == alias_version(settings, model_name, CHAMPION, client):
        return None
    return None if _rolled_back(client, model_name, previous) else previous


def _rolled_back(client: MlflowClient, model_name: str, version: int) -> bool:
    return client.get_model_version(model_name, str(version)).tags.get(ROLLED_BACK) == "true"


def rollback_champion(
    settings: Settings, model_name: str, reason: str, at: datetime | None = None
) -> Rollback:
    """Point ``champion`` back at ``previous_champion`` (the version it replaced).

    The version left is tagged ``rolled_back`` and both carry ``rollback.role`` /
    ``rollback.reason`` / ``rollback.at`` (``at``: the decision's time, default the
    platform's clock). ``previous_champion`` is then cleared: it named the version just
    restored, and whatever that one replaced is not known to be better than the version
    rolled back from. Raises :class:`NoRollbackTarget` when there is nothing to go back to.
    """
    with registry_lock(settings, model_name):
        client = configure_mlflow(settings)
        current = alias_version(settings, model_name, CHAMPION, client)
        previous = rollback_target(settings, model_name, client)
        if previous is None:
            where = f"champion is v{current}" if current is not None else "there is no champion"
            raise NoRollbackTarget(
                f"{model_name}: no previous champion to roll back to ({where}; a rollback clears "
                "previous_champion, and a version rolled back from is never restored by one). "
                "To serve another version, promote it by hand."
            )
        set_champion(client, model_name, previous, None)
        client.delete_registered_model_alias(model_name, PREVIOUS_CHAMPION)
        tags = {"rollback.reason": reason, "rollback.at": (at or clock.now(settings)).isoformat()}
        if current is not None:
            left = {**tags, "rollback.role": "rolled_back", ROLLED_BACK: "true"}
            for key, value in left.items():
                client.set_model_version_tag(model_name, str(current), key, value)
        for key, value in {**tags, "rollback.role": "restored"}.items():
            client.set_model_version_tag(model_name, str(previous), key, value)
        return Rollback(champion=previous, rolled_back_from=current)


def restore_previous_champion(settings: Settings, model_name: str, failed: int) -> int | None:
    """Move ``champion`` off ``failed`` (a version that did not deploy) back to
    ``previous_champion``, and clear that alias so nothing points at ``failed`` as a
    fallback. Returns the restored version (None: there is none to go back to, or only a
    version that was rolled back).
    """
    with registry_lock(settings, model_name):
        client = configure_mlflow(settings)
        previous = alias_version(settings, model_name, PREVIOUS_CHAMPION, client)
        if previous is None or previous == failed or _rolled_back(client, model_name, previous):
            return None
        if alias_version(settings, model_name, CHAMPION, client) == failed:
            set_champion(client, model_name, previous, None)
        client.delete_registered_model_alias(model_name, PREVIOUS_CHAMPION)
        return previous


def promote_by_hand(settings: Settings, model_name: str, version: int, reason: str) -> int | None:
    """Make ``version`` the champion without the gate (an operator's override).

    The replaced champion becomes ``previous_champion``, so the automatic-rollback rule
    and ``rollback_champion`` can bring it back; the reason is written on the version.
    Returns the replaced champion's version (None: there was none).
    """
    with registry_lock(settings, model_name):
        client = configure_mlflow(settings)
        current = alias_version(settings, model_name, CHAMPION, client)
        if current == version:
            raise RuntimeError(f"{model_name} v{version} is already the champion")
        set_champion(client, model_name, version, current)
        client.set_model_version_tag(model_name, str(version), "gate.decision", "promoted_by_hand")
        client.set_model_version_tag(model_name, str(version), "gate.reason", reason)
        return current


def challenge_by_hand(settings: Settings, model_name: str, version: int, reason: str) -> None:
    """Send ``version`` to a live A/B against the champion, whatever the offline gate said.

    It becomes ``challenger`` and awaits the live verdict (``gate.decision``
    ``awaiting_live_verdict``): with A/B routing on, its share of traffic is scored by it,
    and the monitoring run promotes or rejects it on matured labels.
    """
    with registry_lock(settings, model_name):
        client = configure_mlflow(settings)
        if alias_version(settings, model_name, CHAMPION, client) == version:
            raise RuntimeError(f"{model_name} v{version} is the champion: nothing to compare with")
        client.set_registered_model_alias(model_name, CHALLENGER, str(version))
        client.set_model_version_tag(
            model_name, str(version), "gate.decision", "awaiting_live_verdict"
        )
        client.set_model_version_tag(model_name, str(version), "gate.reason", reason)
