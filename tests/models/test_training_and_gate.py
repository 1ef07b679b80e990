"""Training set, MLflow run and lineage, registry aliases and the promotion gate."""

import shutil

import mlflow
import pandas as pd
import pytest
from deltalake import DeltaTable, write_deltalake
from mlflow.tracking import MlflowClient

from core.schema import FEATURE_COLUMNS, model_input
from core.steps import Rollback
from models import promotion, registry
from models.training import LABEL, SKOPS_TRUSTED_TYPES, build_training_set, make_model


def test_training_set_is_point_in_time_and_split_by_time(world):
    ts = world.training_set
    train = pd.read_parquet(ts.train_path)
    holdout = pd.read_parquet(ts.holdout_path)
    assert len(train) == ts.train_rows > 0 and len(holdout) == ts.holdout_rows > 0
    assert train["event_timestamp"].max() < holdout["event_timestamp"].min()
    assert not train.duplicated(["customer_id", "event_timestamp"]).any()
    assert train[list(FEATURE_COLUMNS)].notna().all().all()
    assert set(train[LABEL]) == {0, 1}


def test_training_set_does_not_depend_on_how_the_labels_are_stored(world, tmp_path):
    state = tmp_path / "state"
    shutil.copytree(world.settings.state_dir, state, ignore=shutil.ignore_patterns("mlflow"))
    settings = world.settings.model_copy(
        update={"state_dir": state, "feature_store_yaml": state / "feature_store.yaml"}
    )
    table = DeltaTable(str(settings.churn_labels_path))
    labels, partitions = table.to_pandas(), table.metadata().partition_columns
    shuffled = labels.sample(frac=1.0, random_state=11).reset_index(drop=True)
    assert not shuffled.equals(labels)
    write_deltalake(
        str(settings.churn_labels_path), shuffled, mode="overwrite", partition_by=partitions
    )

    rebuilt = build_training_set(settings, run_name="shuffled-labels")

    for part in ("train_path", "holdout_path"):
        expected = pd.read_parquet(getattr(world.training_set, part))
        pd.testing.assert_frame_equal(pd.read_parquet(getattr(rebuilt, part)), expected)


def test_run_records_metrics_dataset_and_lineage(world):
    client = MlflowClient()
    run = client.get_run(world.trained.run_id)
    assert {"accuracy", "precision", "recall", "f1", "roc_auc"} <= set(run.data.metrics)
    tags = run.data.tags
    assert tags["lineage.feature_service"] == "customer_features_v1"
    assert tags["lineage.features_delta_version"] == str(world.training_set.features_version)
    assert tags["lineage.dag_run_id"] == "world"
    assert len(tags["lineage.git_commit"]) in (40, len("unknown"))
    inputs = run.inputs.dataset_inputs
    assert inputs and inputs[0].dataset.source_type == "delta_table"
    model = mlflow.models.get_model_info(world.trained.model_uri)
    assert {i["name"] for i in model.signature.inputs.to_dict()} == set(FEATURE_COLUMNS)


def test_the_experiment_is_marked_as_model_training_for_the_mlflow_ui(world):
    experiment = MlflowClient().get_experiment(
        MlflowClient().get_run(world.trained.run_id).info.experiment_id
    )
    # The tag MLflow's UI reads to open the experiment on its runs, not on GenAI traces.
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_first_version_is_champion_with_recorded_reason(world):
    settings = world.settings
    assert world.gate.promoted and world.gate.champion_version is None
    assert registry.alias_version(settings, registry.CHAMPION) == world.gate.version
    assert registry.alias_version(settings, registry.CHALLENGER) == world.gate.version
    version = MlflowClient().get_model_version(settings.model_name, str(world.gate.version))
    assert version.tags["gate.decision"] == "promoted"
    assert "first model" in version.tags["gate.reason"]
    assert version.tags["lineage.feature_service"] == "customer_features_v1"


def test_gate_keeps_the_champion_when_the_challenger_only_ties(world):
    settings = world.settings
    champion = registry.alias_version(settings, registry.CHAMPION)
    holdout = world.training_set.holdout_path
    # The same model again cannot beat itself: equal F1 is not promoted.
    same = registry.register_model(world.trained, settings)
    decision = promotion.gate(same.version, holdout, settings)
    assert not decision.promoted and "does not beat" in decision.reason
    assert registry.alias_version(settings, registry.CHAMPION) == champion
    assert registry.alias_version(settings, registry.CHALLENGER) == same.version
    tags = MlflowClient().get_model_version(settings.model_name, str(same.version)).tags
    assert tags["gate.decision"] == "rejected"


def test_gate_promotes_a_better_challenger(world):
    settings = world.settings.model_copy(update={"model_name": "churn_gate_promotion"})
    train = pd.read_parquet(world.training_set.train_path)
    weak = make_model(seed=1).fit(
        model_input(train), train[LABEL].sample(frac=1, random_state=1).to_numpy()
    )
    with mlflow.start_run(run_name="weak"):
        weak_uri = mlflow.sklearn.log_model(
            weak, name="model", pip_requirements=[], skops_trusted_types=SKOPS_TRUSTED_TYPES
        ).model_uri
    holdout = world.training_set.holdout_path
    weak_version = int(mlflow.register_model(weak_uri, settings.model_name).version)
    assert promotion.gate(weak_version, holdout, settings).promoted  # first, min F1 0
    strong_version = int(
        mlflow.register_model(world.trained.model_uri, settings.model_name).version
    )
    decision = promotion.gate(strong_version, holdout, settings)
    assert decision.promoted, decision.reason
    assert decision.f1 > decision.champion_f1 and "beats champion" in decision.reason
    assert registry.alias_version(settings, registry.CHAMPION) == strong_version
    assert registry.alias_version(settings, registry.PREVIOUS_CHAMPION) == weak_version


def test_rollback_moves_champion_back(world):
    settings = world.settings
    client = MlflowClient()
    name = settings.model_name
    champion = registry.alias_version(settings, registry.CHAMPION)
    newer = registry.register_model(world.trained, settings).version
    client.set_registered_model_alias(name, registry.PREVIOUS_CHAMPION, str(champion))
    client.set_registered_model_alias(name, registry.CHAMPION, str(newer))
    result = registry.rollback_champion(settings)
    assert result == Rollback(champion=champion, rolled_back_from=newer)
    assert registry.alias_version(settings, registry.CHAMPION) == champion


def test_gate_refuses_a_first_model_below_the_minimum(world):
    settings = world.settings.model_copy(update={"model_name": "churn_gate_minimum"})
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    version = mlflow.register_model(world.trained.model_uri, settings.model_name).version
    strict = settings.model_copy(update={"min_f1": 0.99})
    decision = promotion.gate(int(version), world.training_set.holdout_path, strict)
    assert not decision.promoted and "< minimum 0.9900" in decision.reason
    assert registry.alias_version(strict, registry.CHAMPION) is None


@pytest.fixture(autouse=True)
def _tracking(world):
    registry.configure_mlflow(world.settings)
