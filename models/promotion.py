"""Promotion: the gate that moves ``champion``, and the training pipeline that ends in it.

Both read the model's spec: the metric compared, its direction, the first version's minimum.

Kept apart from :mod:`models.registry` because the gate scores versions with the training
code's metrics; serving reads aliases from the registry without loading training code.
"""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import EvaluationResult, MetricThreshold
from mlflow.models.evaluation.validation import ModelValidationFailedException

from core.locks import registry_lock, training_lock
from core.settings import Settings
from core.spec import ModelSpec
from core.steps import GateDecision, TrainingRun
from models.catalog import check_gate_overrides
from models.registry import (
    CHAMPION,
    alias_version,
    load_version,
    register_model,
    set_champion,
)
from models.tracking import configure_mlflow
from models.training import build_training_set, evaluate
from models.tuning import train_model

log = logging.getLogger(__name__)


def gate(spec: ModelSpec, version: int, holdout_path: str, settings: Settings) -> GateDecision:
    """Promote ``version`` to champion only if it beats the champion on the same holdout.

    The score is the spec's ``gate_metric``; MLflow's ``validate_evaluation_results``
    decides, with the spec's :func:`gate_threshold`. With no champion yet, the version must
    reach the spec's minimum (``CHURN_GATE_MIN_SCORES`` may replace it). The decision and its
    reason are written on the version (tags and description).

    It decides holding the registered model's lock: a second gate waits, then compares with
    the champion this one left, so two gates never both promote from the same champion.
    """
    with registry_lock(settings, spec.registered_model):
        return _decide(spec, version, holdout_path, settings)


def _decide(spec: ModelSpec, version: int, holdout_path: str, settings: Settings) -> GateDecision:
    """:func:`gate`'s decision, its lock held."""
    check_gate_overrides(settings)
    client = configure_mlflow(settings)
    name, metric = spec.registered_model, spec.gate_metric
    holdout = pd.read_parquet(holdout_path)
    score = evaluate(spec, load_version(name, version), holdout)[metric]
    champion = alias_version(settings, name, CHAMPION, client)
    champion_score = None
    if champion is None:
        minimum = spec.minimum(settings)
        promoted, failure = validate_gate(spec, score, None, settings)
        word = ("reaches" if promoted else "misses") + (
            " minimum" if spec.greater_is_better else " maximum"
        )
        reason = f"first model: {metric} {score:.4f} {word} {minimum:.4f}"
    elif champion == version:
        promoted, failure = False, None
        reason = f"version {version} is already the champion"
    else:
        champion_score = evaluate(spec, load_version(name, champion), holdout)[metric]
        promoted, failure = validate_gate(spec, score, champion_score, settings)
        reason = (
            f"{metric} {score:.4f} {'beats' if promoted else 'does not beat'} champion "
            f"v{champion} {metric} {champion_score:.4f} on the same holdout ({len(holdout)} rows)"
        )
    if failure:
        reason += f" (MLflow validation: {failure})"
    awaiting = promoted and champion is not None and settings.promotion_requires_live_verdict
    if awaiting:
        promoted = False
        reason += "; stays challenger until the live A/B verdict (promotion_requires_live_verdict)"
    if promoted:
        set_champion(client, name, version, champion)
    decision = GateDecision(
        version, promoted, reason, metric, score, champion, champion_score, awaiting
    )
    verdict = "awaiting_live_verdict" if awaiting else _verdict(promoted)
    client.set_model_version_tag(name, str(version), "gate.decision", verdict)
    client.set_model_version_tag(name, str(version), "gate.reason", reason)
    client.set_model_version_tag(name, str(version), "gate.metric", metric)
    client.set_model_version_tag(
        name, str(version), "gate.validation", str(gate_threshold(spec, champion is None, settings))
    )
    client.set_model_version_tag(name, str(version), f"gate.{metric}", f"{score:.6f}")
    if champion_score is not None:
        client.set_model_version_tag(
            name, str(version), f"gate.champion_{metric}", f"{champion_score:.6f}"
        )
    client.update_model_version(name, str(version), description=f"Gate: {verdict}. {reason}")
    record_on_run(client, name, version, verdict, reason)
    log.info("gate %s version %d: %s. %s", name, version, verdict, reason)
    return decision


def record_on_run(client, name: str, version: int, verdict: str, reason: str) -> None:
    """The gate's decision on the version's training run too: tags and its description's
    last line, so the run page tells the whole story."""
    run_id = client.get_model_version(name, str(version)).run_id
    story = client.get_run(run_id).data.tags.get("mlflow.note.content", "")
    kept = [line for line in story.splitlines() if not line.startswith("- **Gate**")]
    kept.append(f"- **Gate**: {verdict} as v{version} of `{name}`: {reason}.")
    client.set_tag(run_id, "mlflow.note.content", "\n".join(kept))
    client.set_tag(run_id, "gate.decision", verdict)
    client.set_tag(run_id, "gate.reason", reason)
    client.set_tag(run_id, "registered.version", str(version))


def gate_threshold(spec: ModelSpec, first: bool, settings: Settings) -> MetricThreshold:
    """MLflow's threshold of the gate metric: the floor for a first version, else the
    improvement over the champion the spec asks for."""
    if first:
        return MetricThreshold(
            threshold=spec.minimum(settings), greater_is_better=spec.greater_is_better
        )
    return MetricThreshold(
        min_absolute_change=spec.gate_min_absolute_change,
        min_relative_change=spec.gate_min_relative_change,
        greater_is_better=spec.greater_is_better,
    )


def validate_gate(
    spec: ModelSpec, score: float, champion_score: float | None, settings: Settings
) -> tuple[bool, str | None]:
    """MLflow's model validation of the candidate's holdout score against
    :func:`gate_threshold` (and the champion's score on the same holdout): whether it
    passed, and MLflow's message when it did not."""
    metric = spec.gate_metric
    threshold = gate_threshold(spec, champion_score is None, settings)
    baseline = (
        None
        if champion_score is None
        else EvaluationResult(metrics={metric: champion_score}, artifacts={})
    )
    candidate = EvaluationResult(metrics={metric: score}, artifacts={})
    try:
        mlflow.validate_evaluation_results({metric: threshold}, candidate, baseline)
    except ModelValidationFailedException as failed:
        return False, " ".join(str(failed.message).split())
    return True, None


def _verdict(promoted: bool) -> str:
    return "promoted" if promoted else "rejected"


def run_training_pipeline(spec: ModelSpec, settings: Settings, run_name: str) -> TrainingRun:
    """The four steps of the spec's training pipeline in this process, without Airflow,
    under the model's training lock (a second run waits, or is refused).

    The MLflow run is named after the training set's folder: ``run_name``, suffixed when
    another run took that name, so two runs never share one.
    """
    with training_lock(settings, spec.name):
        training_set = build_training_set(spec, settings, run_name=run_name)
        run_name = Path(training_set.train_path).parent.name
        trained = train_model(spec, training_set, settings, dag_run_id=run_name)
        registered = register_model(spec, trained, settings)
        decision = gate(spec, registered.version, training_set.holdout_path, settings)
        return TrainingRun(training_set, trained, registered, decision)
