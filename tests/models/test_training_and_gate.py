"""Training set, MLflow run and lineage, registry aliases and the promotion gate."""

import shutil
from dataclasses import replace

import mlflow
import pandas as pd
import pytest
from deltalake import DeltaTable, write_deltalake
from mlflow.tracking import MlflowClient

from core.schema import FEATURE_COLUMNS, model_input
from core.steps import Rollback
from models import promotion, registry
from models.churn.spec import SPEC as CHURN
from models.training import build_training_set, skops_trusted_types

NAME = CHURN.registered_model


def test_training_set_is_point_in_time_and_split_by_time(world):
    ts = world.training_set
    train = pd.read_parquet(ts.train_path)
    holdout = pd.read_parquet(ts.holdout_path)
    assert len(train) == ts.train_rows > 0 and len(holdout) == ts.holdout_rows > 0
    assert train["event_timestamp"].max() < holdout["event_timestamp"].min()
    assert not train.duplicated(["customer_id", "event_timestamp"]).any()
    assert train[list(FEATURE_COLUMNS)].notna().all().all()
    assert set(train[CHURN.label]) == {0, 1}
    holdout_start = pd.Timestamp(ts.holdout_start, tz="UTC")
    assert train["event_timestamp"].max() < holdout_start <= holdout["event_timestamp"].min()
    assert ts.label_mean == pytest.approx(pd.concat([train, holdout])[CHURN.label].mean())
    assert set(ts.data_versions) == {"customer_features", "churn_labels"}
    assert all(v >= 0 for v in ts.data_versions.values())
    # Each model's training sets live in their own folder.
    assert f"/training_sets/{CHURN.name}/world/" in ts.train_path


def test_training_set_does_not_depend_on_how_the_labels_are_stored(world, tmp_path):
    state = tmp_path / "state"
    shutil.copytree(
        world.settings.storage.state_dir, state, ignore=shutil.ignore_patterns("mlflow")
    )
    settings = world.settings.model_copy(
        update={"state_dir": state, "feature_store_yaml": state / "feature_store.yaml"}
    )
    labels_path = str(settings.storage.delta_table_path("churn_labels"))
    table = DeltaTable(labels_path)
    labels, partitions = table.to_pandas(), table.metadata().partition_columns
    shuffled = labels.sample(frac=1.0, random_state=11).reset_index(drop=True)
    assert not shuffled.equals(labels)
    write_deltalake(labels_path, shuffled, mode="overwrite", partition_by=partitions)

    rebuilt = build_training_set(CHURN, settings, run_name="shuffled-labels")

    for part in ("train_path", "holdout_path"):
        expected = pd.read_parquet(getattr(world.training_set, part))
        pd.testing.assert_frame_equal(pd.read_parquet(getattr(rebuilt, part)), expected)


def test_run_records_metrics_dataset_and_lineage(world):
    client = MlflowClient()
    run = client.get_run(world.trained.run_id)
    assert {"accuracy", "precision", "recall", "f1", "roc_auc"} <= set(run.data.metrics)
    tags = run.data.tags
    assert tags["lineage.model"] == "churn"
    assert tags["lineage.feature_service"] == "customer_features_v1"
    versions = world.training_set.data_versions
    assert tags["lineage.delta.customer_features_version"] == str(versions["customer_features"])
    assert tags["lineage.delta.churn_labels_version"] == str(versions["churn_labels"])
    assert tags["lineage.holdout_start"] == world.training_set.holdout_start
    assert tags["lineage.dag_run_id"] == "world"
    assert run.info.run_name == "train-churn-world"
    assert len(tags["lineage.git_commit"]) in (40, len("unknown"))
    inputs = run.inputs.dataset_inputs
    assert inputs and inputs[0].dataset.source_type == "delta_table"
    model = mlflow.models.get_model_info(world.trained.model_uri)
    assert {i["name"] for i in model.signature.inputs.to_dict()} == set(FEATURE_COLUMNS)


def test_the_experiment_is_marked_as_model_training_for_the_mlflow_ui(world):
    experiment = MlflowClient().get_experiment(
        MlflowClient().get_run(world.trained.run_id).info.experiment_id
    )
    # MLflow's experiment kind: classic model training, not GenAI.
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_first_version_is_champion_with_recorded_reason(world):
    settings = world.settings
    assert world.gate.promoted and world.gate.champion_version is None
    assert registry.alias_version(settings, NAME, registry.CHAMPION) == world.gate.version
    assert registry.alias_version(settings, NAME, registry.CHALLENGER) == world.gate.version
    version = MlflowClient().get_model_version(NAME, str(world.gate.version))
    assert version.tags["gate.decision"] == "promoted"
    assert version.tags["gate.reason"].startswith("first model: f1 ")
    assert "reaches minimum 0.0000" in version.tags["gate.reason"]  # CHURN_GATE_MIN_SCORES
    assert version.tags["gate.metric"] == "f1" == world.gate.metric
    assert float(version.tags["gate.f1"]) == pytest.approx(world.gate.score, abs=1e-6)
    assert version.tags["lineage.feature_service"] == "customer_features_v1"


def test_gate_keeps_the_champion_when_the_challenger_only_ties(world):
    settings = world.settings
    champion = registry.alias_version(settings, NAME, registry.CHAMPION)
    holdout = world.training_set.holdout_path
    # The same model again cannot beat itself: equal F1 is not promoted.
    same = registry.register_model(CHURN, world.trained, settings)
    decision = promotion.gate(CHURN, same.version, holdout, settings)
    assert not decision.promoted and "does not beat" in decision.reason
    assert decision.score == decision.champion_score and decision.champion_version == champion
    assert registry.alias_version(settings, NAME, registry.CHAMPION) == champion
    assert registry.alias_version(settings, NAME, registry.CHALLENGER) == same.version
    tags = MlflowClient().get_model_version(NAME, str(same.version)).tags
    assert tags["gate.decision"] == "rejected"
    assert tags["gate.f1"] == tags["gate.champion_f1"]


def test_gate_promotes_a_better_challenger(world):
    settings = world.settings
    spec = replace(CHURN, registered_model="churn_gate_promotion")
    train = pd.read_parquet(world.training_set.train_path)
    weak = CHURN.make_estimator(CHURN, 1).fit(
        model_input(train), train[CHURN.label].sample(frac=1, random_state=1).to_numpy()
    )
    with mlflow.start_run(run_name="weak"):
        weak_uri = mlflow.sklearn.log_model(
            weak, name="model", pip_requirements=[], skops_trusted_types=skops_trusted_types(weak)
        ).model_uri
    holdout = world.training_set.holdout_path
    weak_version = int(mlflow.register_model(weak_uri, spec.registered_model).version)
    assert promotion.gate(spec, weak_version, holdout, settings).promoted  # first, min F1 0
    strong_version = int(
        mlflow.register_model(world.trained.model_uri, spec.registered_model).version
    )
    decision = promotion.gate(spec, strong_version, holdout, settings)
    assert decision.promoted, decision.reason
    assert decision.score > decision.champion_score and "beats champion" in decision.reason
    assert decision.champion_version == weak_version and decision.metric == "f1"
    assert f"beats champion v{weak_version} f1 " in decision.reason
    assert "on the same holdout" in decision.reason
    tags = MlflowClient().get_model_version(spec.registered_model, str(strong_version)).tags
    assert float(tags["gate.champion_f1"]) == pytest.approx(decision.champion_score, abs=1e-6)
    assert registry.alias_version(settings, spec.registered_model, registry.CHAMPION) == (
        strong_version
    )
    assert (
        registry.alias_version(settings, spec.registered_model, registry.PREVIOUS_CHAMPION)
        == weak_version
    )
    # The world's own model kept its champion.
    assert registry.alias_version(settings, NAME, registry.CHAMPION) == world.gate.version


def test_rollback_moves_champion_back(world):
    settings = world.settings
    client = MlflowClient()
    name = NAME
    champion = registry.alias_version(settings, name, registry.CHAMPION)
    newer = registry.register_model(CHURN, world.trained, settings).version
    client.set_registered_model_alias(name, registry.PREVIOUS_CHAMPION, str(champion))
    client.set_registered_model_alias(name, registry.CHAMPION, str(newer))
    result = registry.rollback_champion(settings, name, "newer misbehaves")
    assert result == Rollback(champion=champion, rolled_back_from=newer)
    assert registry.alias_version(settings, name, registry.CHAMPION) == champion
    # One way: nothing points back at the version rolled back from.
    assert registry.alias_version(settings, name, registry.PREVIOUS_CHAMPION) is None
    assert client.get_model_version(name, str(newer)).tags[registry.ROLLED_BACK] == "true"


def test_gate_refuses_a_first_model_below_the_minimum(world):
    spec = replace(CHURN, registered_model="churn_gate_minimum")
    settings = world.settings
    mlflow.set_tracking_uri(settings.storage.mlflow_tracking_uri)
    version = mlflow.register_model(world.trained.model_uri, spec.registered_model).version
    strict = settings.model_copy(update={"gate_min_scores": {"churn": 0.99}})
    decision = promotion.gate(spec, int(version), world.training_set.holdout_path, strict)
    assert not decision.promoted and "misses minimum 0.9900" in decision.reason
    assert decision.reason.startswith("first model: f1 ")
    assert registry.alias_version(strict, spec.registered_model, registry.CHAMPION) is None


def test_without_a_deployment_minimum_the_spec_minimum_applies(world):
    spec = replace(CHURN, registered_model="churn_gate_spec_minimum", min_score=0.99)
    settings = world.settings.model_copy(update={"gate_min_scores": {}})
    mlflow.set_tracking_uri(settings.storage.mlflow_tracking_uri)
    version = mlflow.register_model(world.trained.model_uri, spec.registered_model).version
    decision = promotion.gate(spec, int(version), world.training_set.holdout_path, settings)
    assert not decision.promoted and "misses minimum 0.9900" in decision.reason
    assert registry.alias_version(settings, spec.registered_model, registry.CHAMPION) is None


@pytest.fixture(autouse=True)
def _tracking(world):
    registry.configure_mlflow(world.settings)
