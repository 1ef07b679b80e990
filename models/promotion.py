"""Promotion: the gate that moves ``champion``, and the training pipeline that ends in it.

Kept apart from :mod:`models.registry` because the gate scores versions with the training
code's metrics; serving reads aliases from the registry without loading training code.
"""

from __future__ import annotations

import pandas as pd

from core.settings import Settings
from core.steps import GateDecision, TrainingRun
from models.registry import (
    CHAMPION,
    PREVIOUS_CHAMPION,
    alias_version,
    load_version,
    register_model,
)
from models.tracking import configure_mlflow
from models.training import build_training_set, evaluate, train_and_log


def gate(version: int, holdout_path: str, settings: Settings) -> GateDecision:
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
    return decision


def _verdict(promoted: bool) -> str:
    return "promoted" if promoted else "rejected"


def run_training_pipeline(settings: Settings, run_name: str) -> TrainingRun:
    """The four steps of ``training_pipeline`` in this process, without Airflow."""
    training_set = build_training_set(settings, run_name=run_name)
    trained = train_and_log(training_set, settings, dag_run_id=run_name)
    registered = register_model(trained, settings)
    decision = gate(registered.version, training_set.holdout_path, settings)
    return TrainingRun(training_set, trained, registered, decision)
