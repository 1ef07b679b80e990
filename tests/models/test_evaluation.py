"""Every training run logs MLflow's evaluation of the holdout, importance and segments."""

from __future__ import annotations

import mlflow
import pytest
from evaluation_support import check_evaluation_logged

from models.churn.spec import SPEC as CHURN
from models.tracking import configure_mlflow


def test_the_churn_run_holds_mlflows_evaluation_and_agrees_with_the_gate(world):
    client = configure_mlflow(world.settings)
    run_id = world.trained.run_id
    metrics = check_evaluation_logged(client, run_id, CHURN)
    # MLflow's F1 is the one the gate compares (the model's own decisions on the holdout).
    assert metrics["f1_score"] == pytest.approx(metrics["f1"], abs=1e-9)
    assert metrics["example_count"] == world.training_set.holdout_rows
    # Shuffling the most important feature costs F1.
    assert max(v for k, v in metrics.items() if k.startswith("importance.")) > 0.01
    # The per-segment table covers the holdout once.
    table = mlflow.load_table("evaluation/metrics_by_segment.json", run_ids=[run_id])
    assert table["rows"].sum() == world.training_set.holdout_rows
