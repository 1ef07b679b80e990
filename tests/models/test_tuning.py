"""The opt-in search: three Optuna trials as MLflow child runs, the best through the gate."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from core.settings import Settings
from core.spec import Range
from models.churn.spec import SPEC as CHURN
from models.promotion import gate
from models.registry import register_model
from models.tracking import configure_mlflow
from models.tuning import train_model, tune_and_train

pytestmark = pytest.mark.slow

# Churn's search space with small ensembles: the test is about the search's runs, lineage
# and gate, not about the trees it finds.
SMALL = {
    **CHURN.search_space,
    "estimator__classifier__max_iter": Range(10, 40, kind="int"),
    "estimator__classifier__max_leaf_nodes": Range(7, 15, kind="int"),
}


def test_three_trials_are_child_runs_and_the_best_is_trained_registered_and_gated(world, tmp_path):
    # A copy of the world's state: the gate below may move this registry's champion.
    shutil.copytree(
        world.settings.storage.state_dir, tmp_path / "state",
        ignore=shutil.ignore_patterns("serving", "airflow", "landing", "gx", "reports"),
    )  # fmt: skip
    settings = Settings(
        storage={"state_dir": tmp_path / "state"},
        gate_min_scores={"churn": 0.0},
        evaluate_holdout=False,  # models/test_evaluation.py covers the run's evaluation
    )
    spec = replace(CHURN, search_space=SMALL)
    result = tune_and_train(spec, world.training_set, settings, trials=3, timeout_seconds=600)
    assert result.trials == 3 and len(result.trial_scores) == 3
    assert result.best_score == max(result.trial_scores)  # F1: greater is better

    client = configure_mlflow(settings)
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags["tuning.metric"] == "f1"
    assert parent.data.tags["tuning.trained_run_id"] == result.trained.run_id
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'",
    )
    assert sorted(c.info.run_name for c in children) == ["trial-0", "trial-1", "trial-2"]
    for child in children:
        assert set(CHURN.search_space) <= set(child.data.params)
        assert "validation_f1" in child.data.metrics
    best = max(children, key=lambda c: c.data.metrics["validation_f1"])
    assert best.data.metrics["validation_f1"] == pytest.approx(result.best_score)

    # The best trial's parameters were trained on the whole training set, and logged.
    trained = client.get_run(result.trained.run_id)
    assert trained.data.tags["tuning.parent_run_id"] == result.parent_run_id
    for name, value in result.best_params.items():
        assert trained.data.params[f"estimator.{name}"] == str(value)
        assert best.data.params[name] == str(value)
    assert trained.data.params["model.learning_rate"] == str(
        result.best_params["estimator__classifier__learning_rate"]
    )

    # Through the same registry and gate as any training run (here via the training step,
    # which searches first when CHURN_TUNE_TRIALS is set).
    one_trial = settings.model_copy(update={"tune_trials": 1})
    searched = train_model(spec, world.training_set, one_trial, dag_run_id="tuned")
    assert "tuning.parent_run_id" in client.get_run(searched.run_id).data.tags
    version = register_model(CHURN, searched, settings).version
    decision = gate(CHURN, version, world.training_set.holdout_path, settings)
    tags = client.get_model_version(CHURN.registered_model, str(version)).tags
    assert tags["gate.decision"] == ("promoted" if decision.promoted else "rejected")
    assert tags["gate.reason"] == decision.reason
