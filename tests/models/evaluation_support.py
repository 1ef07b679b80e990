"""What every training run's holdout evaluation must have logged, read through MLflow."""

from __future__ import annotations

from mlflow import MlflowClient

from core.spec import ModelSpec

# MLflow's default evaluator's own artifacts, per task.
STANDARD_ARTIFACTS = {
    "classification": {
        "roc_curve_plot.png",
        "precision_recall_curve_plot.png",
        "confusion_matrix.png",
        "calibration_curve_plot.png",
        "lift_curve_plot.png",
    },
    # The regressor evaluator draws nothing: these two are given to it as custom artifacts.
    "regression": {"predicted_vs_actual.png", "residuals.png"},
}
OWN_ARTIFACTS = {
    "evaluation/permutation_importance.png",
    "evaluation/permutation_importance.json",
    "evaluation/metrics_by_segment.json",
}


def artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    """Every file of the run's artifacts, listed through the MLflow client."""
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            found |= artifact_paths(client, run_id, item.path)
        else:
            found.add(item.path)
    return found


def check_evaluation_logged(client: MlflowClient, run_id: str, spec: ModelSpec) -> dict:
    """Assert the run holds the evaluation's artifacts and metrics; return its metrics."""
    files = artifact_paths(client, run_id)
    missing = (STANDARD_ARTIFACTS[spec.task] | OWN_ARTIFACTS) - files
    assert not missing, f"{spec.name}: missing {sorted(missing)} among {sorted(files)}"
    metrics = client.get_run(run_id).data.metrics
    for feature in spec.feature_names:
        assert f"importance.{feature}" in metrics, feature
    segments = {k.split(".")[1] for k in metrics if k.startswith("segment.")}
    assert len(segments) >= 2, segments
    for segment in segments:
        assert f"segment.{segment}.{spec.gate_metric}" in metrics
    mlflow_names = (
        {"f1_score", "roc_auc", "precision_recall_auc", "accuracy_score"}
        if spec.task == "classification"
        else {"mean_absolute_error", "root_mean_squared_error", "r2_score"}
    )
    assert mlflow_names <= set(metrics), sorted(metrics)
    return metrics
