"""Training: point-in-time training set from Feast, a scikit-learn model, MLflow tracking.

Steps (one Airflow task each in ``training_pipeline``):
``build_training_set`` -> ``train_and_log`` -> ``models.registry.register_model`` ->
``models.promotion.gate``.
"""

from __future__ import annotations

import logging
import subprocess
from datetime import date, timedelta

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.delta_dataset_source import DeltaDatasetSource
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import TunedThresholdClassifierCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from core.schema import CATEGORICAL_FEATURES, FEATURE_COLUMNS, NUMERIC_FEATURES, model_input
from core.settings import PROJECT_ROOT, Settings
from core.steps import TrainedModel, TrainingSet
from data import delta_tables
from data.store import get_feature_store, get_training_frame
from expectations.validation import validate_training_set
from models.tracking import configure_mlflow

log = logging.getLogger(__name__)
LABEL = "churned"
# Exact requirements of the logged model: inferring them takes ~11 s in a subprocess and
# picks up unrelated packages of this environment.
# Types skops (MLflow's default sklearn format) refuses unless named; all are scikit-learn's
# own: tree predictors of the boosting model and the F1 scorer of the threshold tuner.
SKOPS_TRUSTED_TYPES = [
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.metrics._classification.f1_score",
    "sklearn.metrics._scorer._CurveScorer",
    "sklearn.metrics._scorer._Scorer",
    "sklearn.utils._metadata_requests.MetadataRequest",
    "sklearn.utils._metadata_requests.MethodMetadataRequest",
]
MODEL_REQUIREMENTS = ["scikit-learn==1.9.1", "pandas==2.3.3", "numpy", "mlflow==3.17.2"]


class TrainingDataNotReady(RuntimeError):
    """There is not enough labelled data for a training set; retrying will not change that."""


def build_training_set(settings: Settings, run_name: str) -> TrainingSet:
    """Join labels to point-in-time features with Feast and split off a time holdout.

    The holdout is the last ``holdout_days`` of label dates: the model is judged on
    customers and weeks it has not seen, as it will be in production.
    """
    labels = delta_tables.read_table(settings.churn_labels_path)
    if labels.empty:
        raise TrainingDataNotReady("no churn labels yet: run feature_pipeline on enough days first")
    # The Delta read order of the labels varies from one write to the next; the model's CV
    # folds and early-stopping split follow row order, so a fixed order keeps training
    # reproducible: the same labels and seed give the same model.
    labels = labels.sort_values(["event_timestamp", "customer_id"], kind="stable")
    store = get_feature_store(settings)
    frame = get_training_frame(
        store, labels[["customer_id", "event_timestamp", LABEL]], settings.feature_service
    )
    frame = frame.dropna(subset=list(FEATURE_COLUMNS))
    validate_training_set(frame, settings, name=f"training_set-{run_name}")
    last_label = frame["event_timestamp"].max().date()
    holdout_start = last_label - timedelta(days=settings.holdout_days - 1)
    is_holdout = frame["event_timestamp"].dt.date >= holdout_start
    out = settings.state_dir / "training_sets" / run_name
    out.mkdir(parents=True, exist_ok=True)
    train_path, holdout_path = out / "train.parquet", out / "holdout.parquet"
    frame[~is_holdout].to_parquet(train_path, index=False)
    frame[is_holdout].to_parquet(holdout_path, index=False)
    result = TrainingSet(
        train_path=str(train_path),
        holdout_path=str(holdout_path),
        features_version=delta_tables.table_version(settings.customer_features_path) or 0,
        labels_version=delta_tables.table_version(settings.churn_labels_path) or 0,
        train_rows=int((~is_holdout).sum()),
        holdout_rows=int(is_holdout.sum()),
        positive_rate=float(frame[LABEL].mean()),
        holdout_start=holdout_start.isoformat(),
    )
    if result.train_rows == 0 or result.holdout_rows == 0:
        raise TrainingDataNotReady(f"training set too small to split: {result}")
    return result


def make_model(seed: int) -> TunedThresholdClassifierCV:
    """Scaling + one-hot encoding + gradient boosting, with the decision threshold tuned for F1.

    Churners are a small minority at any date, so the default 0.5 threshold trades F1
    away; scikit-learn's TunedThresholdClassifierCV picks the threshold by cross-validation.
    """
    prep = ColumnTransformer(
        [
            ("numeric", StandardScaler(), list(NUMERIC_FEATURES)),
            ("segment", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL_FEATURES)),
        ]
    )
    classifier = HistGradientBoostingClassifier(
        max_iter=150, learning_rate=0.08, max_leaf_nodes=15, random_state=seed
    )
    pipeline = Pipeline([("prep", prep), ("classifier", classifier)])
    return TunedThresholdClassifierCV(pipeline, scoring="f1", cv=3, random_state=seed)


def evaluate(model, frame: pd.DataFrame) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and ROC AUC on ``frame``."""
    truth = frame[LABEL].to_numpy()
    features = model_input(frame)
    probability = model.predict_proba(features)[:, 1]
    predicted = model.predict(features)
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "precision": float(precision_score(truth, predicted, zero_division=0)),
        "recall": float(recall_score(truth, predicted, zero_division=0)),
        "f1": float(f1_score(truth, predicted, zero_division=0)),
        "roc_auc": float(roc_auc_score(truth, probability)) if len(set(truth)) > 1 else np.nan,
    }


def reference_frame(model, frame: pd.DataFrame) -> pd.DataFrame:
    """Features plus the model's outputs: what monitoring compares live traffic with."""
    reference = model_input(frame)
    reference["probability"] = model.predict_proba(reference)[:, 1]
    reference["prediction"] = model.predict(reference[list(FEATURE_COLUMNS)]).astype("int64")
    return reference


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


def train_and_log(
    training_set: TrainingSet, settings: Settings, dag_run_id: str = "manual"
) -> TrainedModel:
    """Fit the model, evaluate on the holdout, and log everything to an MLflow run."""
    configure_mlflow(settings)
    train = pd.read_parquet(training_set.train_path)
    holdout = pd.read_parquet(training_set.holdout_path)
    model = make_model(settings.random_seed)
    model.fit(model_input(train), train[LABEL])
    metrics = evaluate(model, holdout)
    example = model_input(holdout.head(5))
    signature = infer_signature(example, model.predict_proba(example)[:, 1])
    dataset = mlflow.data.from_pandas(
        train,
        source=DeltaDatasetSource(
            path=str(settings.customer_features_path),
            delta_table_version=training_set.features_version,
        ),
        targets=LABEL,
        name=f"{settings.feature_service}@features_v{training_set.features_version}",
    )
    with mlflow.start_run(run_name=f"train-{dag_run_id}") as run:
        mlflow.log_params(
            {
                **{
                    f"model.{k}": v
                    for k, v in model.estimator.named_steps["classifier"].get_params().items()
                },
                "model.decision_threshold": round(float(model.best_threshold_), 4),
                "train_rows": training_set.train_rows,
                "holdout_rows": training_set.holdout_rows,
                "holdout_start": training_set.holdout_start,
                "positive_rate": round(training_set.positive_rate, 4),
            }
        )
        mlflow.log_metrics(metrics)
        mlflow.log_input(dataset, context="training")
        mlflow.set_tags(lineage_tags(training_set, settings, dag_run_id))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            pip_requirements=MODEL_REQUIREMENTS,
            # skops (MLflow's default format) refuses tree predictors unless named.
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
        )
        reference_dir = settings.state_dir / "tmp" / run.info.run_id
        reference_dir.mkdir(parents=True, exist_ok=True)
        reference_path = reference_dir / "reference.parquet"
        reference_frame(model, holdout).to_parquet(reference_path, index=False)
        mlflow.log_artifact(str(reference_path), artifact_path="monitoring")
    return TrainedModel(run_id=run.info.run_id, model_uri=info.model_uri, metrics=metrics)


def lineage_tags(training_set: TrainingSet, settings: Settings, dag_run_id: str) -> dict[str, str]:
    """Where the model came from: data versions, feature service, code, orchestration run."""
    return {
        "lineage.feature_service": settings.feature_service,
        "lineage.features_delta_path": str(settings.customer_features_path),
        "lineage.features_delta_version": str(training_set.features_version),
        "lineage.labels_delta_version": str(training_set.labels_version),
        "lineage.holdout_start": training_set.holdout_start,
        "lineage.git_commit": git_commit(),
        "lineage.dag_run_id": dag_run_id,
        "lineage.trained_on": date.today().isoformat(),
    }
