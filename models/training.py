"""Training: a point-in-time training set from Feast, the spec's estimator, MLflow tracking.

Steps (one Airflow task each in ``<model>_training_pipeline``):
``build_training_set`` -> ``train_and_log`` -> ``models.registry.register_model`` ->
``models.promotion.gate``. Everything model-specific (labels, feature service, suite,
estimator, metrics) comes from the model's spec (``core/spec.py``).
"""

from __future__ import annotations

import logging
import subprocess
from datetime import timedelta
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from feast.errors import FeatureServiceNotFoundException
from mlflow.data.delta_dataset_source import DeltaDatasetSource
from mlflow.models import infer_signature
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.pipeline import Pipeline

from core import clock
from core.locks import training_lock
from core.schema import EVENT_TIMESTAMP, model_input
from core.settings import PROJECT_ROOT, Settings
from core.spec import ModelSpec
from core.steps import TrainedModel, TrainingSet
from data import delta_tables
from data.store import get_feature_store, get_training_frame, tables_of
from expectations.validation import validate_training_set
from models.catalog import check_gate_overrides
from models.evaluation import log_holdout_evaluation
from models.tracking import configure_mlflow

log = logging.getLogger(__name__)
# Exact requirements of the logged model: inferring them takes ~11 s in a subprocess and
# picks up unrelated packages of this environment.
MODEL_REQUIREMENTS = ["scikit-learn==1.9.1", "pandas==2.3.3", "numpy", "mlflow==3.17.2"]


def skops_trusted_types(model) -> list[str]:
    """The types skops (MLflow's default sklearn format) refuses unless named, in ``model``.

    Only scikit-learn's own are trusted (tree predictors, the threshold tuner's scorer, ...),
    whatever estimator a spec builds; any other type makes logging the model fail.
    """
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    foreign = [t for t in untrusted if not t.startswith("sklearn.")]
    if foreign:
        raise TypeError(f"the model holds types skops will not load unnamed: {foreign}")
    return untrusted


class TrainingDataNotReady(RuntimeError):
    """There is not enough labelled data for a training set; retrying will not change that."""


def build_training_set(spec: ModelSpec, settings: Settings, run_name: str) -> TrainingSet:
    """Join the spec's labels to point-in-time features with Feast; split off a time holdout.

    The holdout is the last ``spec.holdout_days`` of label dates: the model is judged on
    customers and weeks it has not seen, as it will be in production. The folder is named
    after ``run_name``, suffixed when a run of that name has one already
    (:func:`claim_folder`): a run never overwrites another's training set.
    """
    with training_lock(settings, spec.name):
        check_gate_overrides(settings)  # a misnamed override fails now, not after training
        # Each version is read before its table: a table written while this runs is then at a
        # newer version than recorded, never an older one.
        data_versions = dict(spec.label_versions(settings))
        labels = spec.build_labels(settings)
        if labels.empty:
            raise TrainingDataNotReady(
                f"no {spec.name} labels yet: run feature_pipeline on enough days first"
            )
        store = get_feature_store(settings)
        try:
            tables = tables_of(store, spec.feature_service)
        except FeatureServiceNotFoundException as error:
            raise TrainingDataNotReady(
                f"feature service {spec.feature_service} is not registered: run feature_pipeline"
            ) from error
        data_versions = {
            **{
                t: delta_tables.table_version(settings.storage.delta_table_path(t)) or 0
                for t in tables
            },
            **data_versions,
        }
        # The Delta read order of the labels varies from one write to the next; the model's CV
        # folds and early-stopping split follow row order, so a fixed order keeps training
        # reproducible: the same labels and seed give the same model.
        labels = labels.sort_values([EVENT_TIMESTAMP, spec.entity_key], kind="stable")
        frame = get_training_frame(store, labels[list(spec.label_columns)], spec.feature_service)
        missing = sorted(set(spec.feature_names) - set(frame.columns))
        if missing:
            raise ValueError(
                f"feature service {spec.feature_service} does not serve the {spec.name} spec's "
                f"features {missing}: the spec and feature_repo/ disagree"
            )
        frame = frame.dropna(subset=list(spec.feature_names))
        checked = validate_training_set(
            frame, settings, name=f"{spec.training_suite}-{run_name}",
            suite_name=spec.training_suite, features=spec.features,
        )  # fmt: skip
        last_label = frame[EVENT_TIMESTAMP].max().date()
        holdout_start = last_label - timedelta(days=spec.holdout_days - 1)
        is_holdout = frame[EVENT_TIMESTAMP].dt.date >= holdout_start
        out = claim_folder(settings.storage.state_dir / "training_sets" / spec.name, run_name)
        train_path, holdout_path = out / "train.parquet", out / "holdout.parquet"
        frame[~is_holdout].to_parquet(train_path, index=False)
        frame[is_holdout].to_parquet(holdout_path, index=False)
        result = TrainingSet(
            train_path=str(train_path),
            holdout_path=str(holdout_path),
            data_versions=data_versions,
            train_rows=int((~is_holdout).sum()),
            holdout_rows=int(is_holdout.sum()),
            label_mean=float(frame[spec.label].mean()),
            holdout_start=holdout_start.isoformat(),
            validation_result_path=str(checked.result_path) if checked.result_path else None,
            data_docs_path=str(checked.data_docs_path) if checked.data_docs_path else None,
            validation_summary=(
                f"suite `{checked.suite}` {'passed' if checked.success else 'failed'}: "
                f"{checked.evaluated} expectations on {checked.row_count} rows"
            ),
        )
        if result.train_rows == 0 or result.holdout_rows == 0:
            raise TrainingDataNotReady(f"training set too small to split: {result}")
        log.info(
            "%s training set: %d train rows, %d holdout rows from %s, %s mean %.4f; %s; %s",
            spec.name, result.train_rows, result.holdout_rows, result.holdout_start,
            spec.label, result.label_mean, result.validation_summary, out,
        )  # fmt: skip
        return result


def claim_folder(parent: Path, name: str) -> Path:
    """A new folder ``parent/name``, or ``name-2``, ``name-3``, ... when taken.

    mkdir creates or fails atomically, so two processes (two `churn train` started in the
    same second: one run name) never get the same folder, lock or no lock.
    """
    parent.mkdir(parents=True, exist_ok=True)
    attempt = 1
    while True:
        folder = parent / (name if attempt == 1 else f"{name}-{attempt}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            attempt += 1


def evaluate(spec: ModelSpec, model, frame: pd.DataFrame) -> dict[str, float]:
    """The spec's task metrics (scikit-learn's) of ``model`` on ``frame``."""
    truth = frame[spec.label].to_numpy()
    features = model_input(frame, spec.features)
    predicted = model.predict(features)
    if spec.task == "regression":
        return {
            "mae": float(mean_absolute_error(truth, predicted)),
            "rmse": float(root_mean_squared_error(truth, predicted)),
            "r2": float(r2_score(truth, predicted)),
        }
    probability = model.predict_proba(features)[:, 1]
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "precision": float(precision_score(truth, predicted, zero_division=0)),
        "recall": float(recall_score(truth, predicted, zero_division=0)),
        "f1": float(f1_score(truth, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(truth, probability)) if len(set(truth)) > 1 else np.nan,
    }


def reference_frame(spec: ModelSpec, model, frame: pd.DataFrame) -> pd.DataFrame:
    """Features plus the model's outputs: what monitoring compares live traffic with."""
    reference = model_input(frame, spec.features)
    inputs = reference[list(spec.feature_names)]
    if spec.task == "classification":
        reference["probability"] = model.predict_proba(inputs)[:, 1]
        reference["prediction"] = model.predict(inputs).astype("int64")
    else:
        reference["prediction"] = model.predict(inputs).astype("float64")
    return reference


def training_set_hash(train: pd.DataFrame, holdout: pd.DataFrame) -> str:
    """A digest of the training set's content (rows, values, column order): a rebuilt
    training set with the same hash is the same data."""
    import hashlib

    digest = hashlib.sha256()
    for part in (train, holdout):
        digest.update(",".join(part.columns).encode())
        digest.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def estimator_params(model) -> dict[str, object]:
    """The fitted estimator's own parameters (final step of a pipeline; threshold if tuned)."""
    # Only a threshold-tuned classifier wraps the model to describe: its fitted estimator_.
    inner = model.estimator_ if hasattr(model, "best_threshold_") else model
    final = inner.steps[-1][1] if isinstance(inner, Pipeline) else inner
    params: dict[str, object] = {f"model.{k}": v for k, v in final.get_params(deep=False).items()}
    params["model.estimator"] = type(final).__name__
    threshold = getattr(model, "best_threshold_", None)  # a tuned threshold is public, fitted
    if threshold is not None:
        params["model.decision_threshold"] = round(float(threshold), 4)
    return params


def model_signature(spec: ModelSpec, model, example: pd.DataFrame):
    """Input columns and the model's output (churn probability, or the predicted value)."""
    output = (
        model.predict_proba(example)[:, 1]
        if spec.task == "classification"
        else model.predict(example)
    )
    return infer_signature(example, output)


def train_and_log(
    spec: ModelSpec,
    training_set: TrainingSet,
    settings: Settings,
    dag_run_id: str = "manual",
    trigger: dict[str, str] | None = None,
    params: dict[str, object] | None = None,
    tags: dict[str, str] | None = None,
) -> TrainedModel:
    """Fit the spec's estimator, evaluate on the holdout, and log everything to an MLflow run.

    ``trigger`` (why this run: ``reason``, ``kind``, ``requested_at``) is tagged on the run
    as ``trigger.*``. ``params`` replace estimator parameters (``set_params`` names: a
    tuned trial's); they are logged as ``estimator.<name>``. ``tags`` are added as they are.
    """
    configure_mlflow(settings, spec.experiment)
    train = pd.read_parquet(training_set.train_path)
    holdout = pd.read_parquet(training_set.holdout_path)
    model = spec.make_estimator(spec, settings.random_seed)
    if params:
        model.set_params(**params)
    model.fit(model_input(train, spec.features), train[spec.label])
    metrics = evaluate(spec, model, holdout)
    example = model_input(holdout.head(5), spec.features)
    signature = model_signature(spec, model, example)
    first_table, first_version = next(iter(training_set.data_versions.items()))
    dataset = mlflow.data.from_pandas(
        train,
        source=DeltaDatasetSource(
            path=str(settings.storage.delta_table_path(first_table)),
            delta_table_version=first_version,
        ),
        targets=spec.label,
        name=f"{spec.feature_service}@{first_table}_v{first_version}",
    )
    with mlflow.start_run(run_name=f"train-{spec.name}-{dag_run_id}") as run:
        mlflow.log_params(
            {
                **estimator_params(model),
                "train_rows": training_set.train_rows,
                "holdout_rows": training_set.holdout_rows,
                "holdout_start": training_set.holdout_start,
                "label_mean": round(training_set.label_mean, 4),
                "random_seed": settings.random_seed,
                **{f"estimator.{k}": v for k, v in (params or {}).items()},
            }
        )
        mlflow.log_metrics(metrics)
        mlflow.log_input(dataset, context="training")
        mlflow.set_tags(lineage_tags(spec, training_set, settings, dag_run_id))
        mlflow.set_tag("lineage.training_set_hash", training_set_hash(train, holdout))
        mlflow.set_tags(
            {f"trigger.{k}": v for k, v in (trigger or {"reason": "manual run"}).items()}
        )
        if tags:
            mlflow.set_tags(tags)
        mlflow.set_tags(validation_tags(training_set))
        mlflow.set_tag(
            "mlflow.note.content",
            run_story(spec, training_set, settings, trigger or {"reason": "manual run"}),
        )
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            pip_requirements=MODEL_REQUIREMENTS,
            skops_trusted_types=skops_trusted_types(model),
        )
        if settings.evaluate_holdout:
            log_holdout_evaluation(
                spec, model, info.model_uri, holdout, settings.random_seed, evaluate
            )
        reference_dir = settings.storage.state_dir / "tmp" / run.info.run_id
        reference_dir.mkdir(parents=True, exist_ok=True)
        reference_path = reference_dir / "reference.parquet"
        reference_frame(spec, model, holdout).to_parquet(reference_path, index=False)
        mlflow.log_artifact(str(reference_path), artifact_path="monitoring")
    log.info(
        "trained %s: MLflow run %s in experiment %s; holdout %s",
        spec.name, run.info.run_id, spec.experiment,
        ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()),
    )  # fmt: skip
    return TrainedModel(run_id=run.info.run_id, model_uri=info.model_uri, metrics=metrics)


def validation_tags(training_set: TrainingSet) -> dict[str, str]:
    """Where the training set's Great Expectations result and the Data Docs are."""
    tags = {"validation.training_set": training_set.validation_summary or "not recorded"}
    if training_set.validation_result_path:
        tags["validation.result_path"] = training_set.validation_result_path
    if training_set.data_docs_path:
        tags["validation.data_docs"] = training_set.data_docs_path
    return tags


def run_story(
    spec: ModelSpec, training_set: TrainingSet, settings: Settings, trigger: dict[str, str]
) -> str:
    """The run's description (Markdown, shown on its MLflow page): which data, checked how,
    why it ran; the gate adds its decision (:func:`models.promotion.gate`)."""
    tables = ", ".join(f"`{t}` v{v}" for t, v in training_set.data_versions.items())
    lines = [
        f"**{spec.registered_model}** ({spec.description}) on feature service "
        f"`{spec.feature_service}`.",
        "",
        f"- **Data**: Delta tables {tables} under `{settings.storage.delta_dir}`; "
        f"{training_set.train_rows} training and {training_set.holdout_rows} holdout rows "
        f"(holdout from {training_set.holdout_start}); `lineage.training_set_hash` "
        f"rebuilds it (`churn reproduce {spec.name} <version>`).",
        f"- **Great Expectations**: training set {training_set.validation_summary or '-'}"
        + (
            f" (result `{training_set.validation_result_path}`)"
            if training_set.validation_result_path
            else ""
        )
        + (
            f"; every landed batch's validation is in the Data Docs `{training_set.data_docs_path}`"
            if training_set.data_docs_path
            else ""
        )
        + ".",
        f"- **Why it ran**: {trigger.get('kind', 'manual')}: {trigger.get('reason', 'manual run')}"
        + (f" (requested {trigger['requested_at']})" if trigger.get("requested_at") else "")
        + (f"; drift report `{trigger['drift_report']}`" if trigger.get("drift_report") else "")
        + (
            f"; alert: {trigger['alert']}"
            if trigger.get("alert") and trigger["alert"] != trigger.get("reason")
            else ""
        )
        + ".",
        f"- **Code**: commit `{git_commit()[:12]}`.",
    ]
    return "\n".join(lines)


def lineage_tags(
    spec: ModelSpec, training_set: TrainingSet, settings: Settings, dag_run_id: str
) -> dict[str, str]:
    """Where the model came from: data versions, feature service, code, orchestration run."""
    return {
        "lineage.model": spec.name,
        "lineage.feature_service": spec.feature_service,
        "lineage.delta_dir": str(settings.storage.delta_dir),
        **{f"lineage.delta.{t}_version": str(v) for t, v in training_set.data_versions.items()},
        "lineage.holdout_start": training_set.holdout_start,
        "lineage.git_commit": git_commit(),
        "lineage.dag_run_id": dag_run_id,
        "lineage.trained_on": clock.today(settings).isoformat(),
    }
