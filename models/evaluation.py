"""The holdout evaluation every training run logs: MLflow's own, and two views beside it.

- ``mlflow.models.evaluate`` with MLflow's default evaluator on the holdout, in the
  training run: its metrics and standard artifacts (classifier: ROC, precision-recall,
  lift and calibration curves, confusion matrix; regressor: its metrics, plus a
  predicted-against-actual and a residuals plot given to it as custom artifacts), and the
  evaluation table.
- Permutation feature importance (scikit-learn's ``permutation_importance``) on the spec's
  gate metric: ``importance.<feature>`` metrics, a table and a bar chart.
- The spec's metrics per value of its ``segment_by`` column (customer segment for the
  platform's models): ``segment.<value>.<metric>`` metrics and a table.

Artifacts land under ``evaluation/`` of the run (MLflow's own plots at the run's root, as
its evaluator names them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.inspection import permutation_importance

from core.schema import model_input
from core.spec import ModelSpec

# The spec's gate metric as scikit-learn's scorer names it (permutation importance).
SCORERS = {
    "f1": "f1",
    "accuracy": "accuracy",
    "precision": "precision",
    "recall": "recall",
    "roc_auc": "roc_auc",
    "mae": "neg_mean_absolute_error",
    "rmse": "neg_root_mean_squared_error",
    "r2": "r2",
}
# The spec's metric names as MLflow's default evaluator logs them.
MLFLOW_METRICS = {
    "f1": "f1_score",
    "accuracy": "accuracy_score",
    "precision": "precision_score",
    "recall": "recall_score",
    "roc_auc": "roc_auc",
    "mae": "mean_absolute_error",
    "rmse": "root_mean_squared_error",
    "r2": "r2_score",
}
PERMUTATION_REPEATS = 5
# Holdout rows each permutation repeat scores (a seeded sample; scikit-learn's
# ``max_samples``): the importance ranking is stable well below this, and scoring the whole
# holdout 5 times per feature was a fifth of a training run.
PERMUTATION_ROWS = 2000


@dataclass(frozen=True)
class HoldoutEvaluation:
    """What the evaluation logged: MLflow's metrics, the artifacts, the two extra views."""

    mlflow_metrics: dict[str, float]
    artifacts: list[str]
    importance: dict[str, float]
    by_segment: dict[str, dict[str, float]] = field(default_factory=dict)


def _regression_plots(eval_df: pd.DataFrame, _metrics: dict, _artifacts_dir: str) -> dict:
    """Predicted against actual, and residuals against predicted (custom artifacts)."""
    actual, predicted = eval_df["target"].to_numpy(), eval_df["prediction"].to_numpy()
    scatter = Figure(figsize=(6, 6))
    axes = scatter.subplots()
    axes.scatter(actual, predicted, s=4, alpha=0.4)
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    axes.plot([low, high], [low, high], color="black", linewidth=1)
    axes.set(xlabel="actual", ylabel="predicted", title="Predicted against actual (holdout)")
    residuals = Figure(figsize=(6, 4))
    axes = residuals.subplots()
    axes.scatter(predicted, actual - predicted, s=4, alpha=0.4)
    axes.axhline(0, color="black", linewidth=1)
    axes.set(xlabel="predicted", ylabel="actual - predicted", title="Residuals (holdout)")
    return {"predicted_vs_actual": scatter, "residuals": residuals}


def importance_figure(importance: pd.DataFrame, metric: str) -> Figure:
    """A horizontal bar per feature: the mean drop of ``metric`` when it is shuffled."""
    ordered = importance.sort_values("importance_mean")
    figure = Figure(figsize=(7, 0.4 * len(ordered) + 1.2))
    axes = figure.subplots()
    axes.barh(ordered["feature"], ordered["importance_mean"], xerr=ordered["importance_std"])
    axes.set(xlabel=f"drop in {metric} when shuffled", title="Permutation importance (holdout)")
    figure.tight_layout()
    return figure


def log_holdout_evaluation(
    spec: ModelSpec,
    model: Any,
    model_uri: str,
    holdout: pd.DataFrame,
    seed: int,
    segment_metrics: Any,
) -> HoldoutEvaluation:
    """Log the evaluation (module docstring) into the active MLflow run.

    ``segment_metrics(spec, model, frame)`` gives the spec's metrics of one segment (the
    training code's ``evaluate``, so the figures are the gate's).
    """
    inputs = model_input(holdout, spec.features)[list(spec.feature_names)]
    data = inputs.assign(**{spec.label: holdout[spec.label].to_numpy()})
    classifier = spec.task == "classification"
    result = mlflow.models.evaluate(
        model=model_uri,
        data=data,
        targets=spec.label,
        model_type="classifier" if classifier else "regressor",
        evaluators="default",
        # No SHAP here: its explainer costs more than the rest of the evaluation together.
        evaluator_config={
            "log_model_explainability": False,
            **({"pos_label": 1} if classifier else {}),
        },
        custom_artifacts=None if classifier else [_regression_plots],
    )
    permuted = permutation_importance(
        model, inputs, holdout[spec.label], scoring=SCORERS[spec.gate_metric],
        n_repeats=PERMUTATION_REPEATS, random_state=seed,
        max_samples=min(PERMUTATION_ROWS, len(inputs)),
    )  # fmt: skip
    importance = pd.DataFrame(
        {
            "feature": list(spec.feature_names),
            "importance_mean": permuted.importances_mean,
            "importance_std": permuted.importances_std,
        }
    ).sort_values("importance_mean", ascending=False)
    mlflow.log_metrics(
        {f"importance.{r.feature}": float(r.importance_mean) for r in importance.itertuples()}
    )
    mlflow.log_table(importance, "evaluation/permutation_importance.json")
    mlflow.log_figure(
        importance_figure(importance, spec.gate_metric), "evaluation/permutation_importance.png"
    )
    by_segment: dict[str, dict[str, float]] = {}
    if spec.segment_by:
        rows = []
        for value, part in holdout.groupby(spec.segment_by, observed=True):
            scores = segment_metrics(spec, model, part)
            by_segment[str(value)] = {**scores, "rows": float(len(part))}
            rows.append({spec.segment_by: str(value), "rows": len(part), **scores})
            mlflow.log_metrics(
                {f"segment.{value}.{k}": v for k, v in scores.items() if np.isfinite(v)}
            )
        mlflow.log_table(pd.DataFrame(rows), "evaluation/metrics_by_segment.json")
    return HoldoutEvaluation(
        mlflow_metrics={k: float(v) for k, v in result.metrics.items()},
        artifacts=sorted(result.artifacts),
        importance=dict(zip(importance["feature"], importance["importance_mean"], strict=True)),
        by_segment=by_segment,
    )
