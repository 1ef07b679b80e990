"""Every training run logs MLflow's evaluation of the holdout, importance and segments."""

from __future__ import annotations

from pathlib import Path

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
    # The run's own experiment: the fluent API would search the process's active one.
    experiment_id = client.get_run(run_id).info.experiment_id
    table = client.load_table(experiment_id, "evaluation/metrics_by_segment.json", [run_id])
    assert table["rows"].sum() == world.training_set.holdout_rows


def test_the_run_page_tells_which_data_checked_how_why_and_the_gate(world):
    client = configure_mlflow(world.settings)
    run = client.get_run(world.trained.run_id)
    tags = run.data.tags
    story = tags["mlflow.note.content"]  # the run's description on its MLflow page
    for table, version in world.training_set.data_versions.items():
        assert f"`{table}` v{version}" in story
    assert f"{world.training_set.train_rows} training" in story
    assert "**Great Expectations**: training set suite `training_set` passed" in story
    assert tags["validation.training_set"].startswith("suite `training_set` passed")
    assert Path(tags["validation.result_path"]).exists()
    assert "**Why it ran**: manual: manual run" in story
    # The gate wrote its decision on the run as well as on the version.
    assert story.splitlines()[-1].startswith("- **Gate**: promoted as v1")
    assert tags["gate.decision"] == "promoted" and tags["registered.version"] == "1"
