"""The ONNX copy of a registered model: converted, verified, logged, checked again at load."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import onnx
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.model_selection import TunedThresholdClassifierCV
from sklearn.preprocessing import FunctionTransformer

from core.schema import model_input
from core.steps import TrainedModel
from models import registry
from models.churn.spec import SPEC as CHURN
from models.next_spend.spec import SPEC as NEXT_SPEND
from models.onnx_model import (
    MODEL_FILE,
    RECORD_FILE,
    TAG_SHA256,
    TAG_URI,
    TOLERANCE,
    OnnxVerificationError,
    compare,
    convert,
    export_verified,
    load_scorer,
    reference_scores,
    verification_rows,
)
from models.recipes import FLOAT32_STEP
from models.training import skops_trusted_types

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("core", "data", "feature_repo", "expectations", "models", "serving")
SOURCE_DIRS += ("monitoring", "dags", "cli", "bench")
# scikit-learn's private internals of HistGradientBoosting that scoring used to read.
PRIVATE_NAMES = re.compile(r"\b(_predictors|_baseline_prediction|_loss|_raw_predict)\b")


@pytest.fixture(autouse=True)
def _tracking(world) -> None:
    registry.configure_mlflow(world.settings)


@pytest.fixture(scope="module")
def champion_tags(world) -> dict[str, str]:
    registry.configure_mlflow(world.settings)
    version = MlflowClient().get_model_version(CHURN.registered_model, str(world.gate.version))
    return dict(version.tags)


def test_registered_version_carries_its_verified_onnx_model(world, champion_tags):
    holdout_rows = world.training_set.holdout_rows
    assert champion_tags["onnx.holdout_rows"] == str(holdout_rows)
    assert int(champion_tags["onnx.verified_rows"]) > holdout_rows  # and the probe rows
    assert champion_tags["onnx.decision_mismatches"] == "0"
    assert float(champion_tags["onnx.max_abs_diff"]) <= TOLERANCE
    assert champion_tags["onnx.input_precision"] == "double"
    folder = Path(mlflow.artifacts.download_artifacts(champion_tags[TAG_URI]))
    sha256 = hashlib.sha256((folder / MODEL_FILE).read_bytes()).hexdigest()
    assert sha256 == champion_tags[TAG_SHA256]
    assert champion_tags[TAG_URI].startswith(f"runs:/{world.trained.run_id}/onnx/")
    model = registry.load_version(CHURN.registered_model, world.gate.version)
    # The tuned threshold is applied outside the graph, so the decisions are the model's.
    assert float(champion_tags["onnx.threshold"]) == float(model.best_threshold_)
    assert json.loads((folder / RECORD_FILE).read_text())["threshold"] == model.best_threshold_


def test_onnx_scorer_gives_the_mlflow_model_answers(world, champion_tags):
    model = registry.load_version(CHURN.registered_model, world.gate.version)
    frame = model_input(pd.read_parquet(world.training_set.holdout_path), CHURN.features)
    rows = verification_rows(frame)
    probabilities, decisions = reference_scores(model, rows, CHURN.features, CHURN.task)
    assert probabilities[: len(frame)] == list(model.predict_proba(frame)[:, 1])
    result = compare(load_scorer(champion_tags).score_rows(rows), probabilities, decisions)
    assert result.passed, str(result)
    assert result.rows == len(rows) > len(frame)
    # The tuned threshold changes decisions here, so applying it is really checked.
    assert any((p >= 0.5) != bool(d) for p, d in zip(probabilities, decisions, strict=True))


@pytest.mark.parametrize("spec", [CHURN, NEXT_SPEND], ids=lambda spec: spec.name)
def test_the_pipelines_round_to_float32_just_before_the_trees(spec):
    model = spec.make_estimator(spec, 0)
    pipeline = model.estimator if isinstance(model, TunedThresholdClassifierCV) else model
    (_, cast), (_, trees) = pipeline.steps[-2:]
    assert pipeline.steps[-2][0] == FLOAT32_STEP
    assert isinstance(cast, FunctionTransformer) and cast.func is np.float32
    assert isinstance(trees, HistGradientBoostingClassifier | HistGradientBoostingRegressor)


def test_the_registered_model_feeds_its_trees_float32_numbers(world):
    model = registry.load_version(CHURN.registered_model, world.gate.version)  # via skops
    frame = model_input(pd.read_parquet(world.training_set.holdout_path), CHURN.features)
    assert model.estimator_[FLOAT32_STEP].func is np.float32
    assert model.estimator_[:-1].transform(frame).dtype == np.float32


@pytest.mark.parametrize("inverted", [False, True], ids=["labels", "inverted_labels"])
def test_the_onnx_copy_gives_the_pipeline_answers_within_1e_5(world, inverted):
    train = pd.read_parquet(world.training_set.train_path)
    labels = 1 - train[CHURN.label] if inverted else train[CHURN.label]
    model = CHURN.make_estimator(CHURN, 0).fit(model_input(train, CHURN.features), labels)
    frame = model_input(pd.read_parquet(world.training_set.holdout_path), CHURN.features)
    data, scorer, precision = convert(model, frame, CHURN.task)
    rows = verification_rows(frame)
    reference = reference_scores(model, rows, CHURN.features, CHURN.task)
    result = compare(scorer.score_rows(rows), *reference)
    assert result.passed and result.tolerance == TOLERANCE == 1e-5, str(result)
    assert result.decision_mismatches == 0 and result.rows > len(frame)
    # The graph rounds where the pipeline does: float64 inputs, a Cast to float32 feeding
    # the trees, no other rounding of their input.
    assert precision == "double"
    graph = onnx.load_from_string(data).graph
    made_by = {output: node for node in graph.node for output in node.output}
    (trees,) = [node for node in graph.node if node.op_type.startswith("TreeEnsemble")]
    cast = made_by[trees.input[0]]
    assert cast.op_type == "Cast"
    assert onnx.helper.get_attribute_value(cast.attribute[0]) == onnx.TensorProto.FLOAT
    assert made_by[cast.input[0]].op_type == "Concat"  # the ColumnTransformer's output


def test_load_check_refuses_a_file_that_is_not_the_verified_one(champion_tags):
    with pytest.raises(OnnxVerificationError, match="not the verified"):
        load_scorer({**champion_tags, TAG_SHA256: "0" * 64})


def test_load_check_refuses_answers_that_differ_from_the_record(champion_tags, tmp_path):
    folder = Path(mlflow.artifacts.download_artifacts(champion_tags[TAG_URI], dst_path=tmp_path))
    record = json.loads((folder / RECORD_FILE).read_text())
    record["probabilities"][0] += 10 * TOLERANCE
    (folder / RECORD_FILE).write_text(json.dumps(record))
    with mlflow.start_run(run_name="onnx-record-changed") as run:
        mlflow.log_artifacts(str(folder), artifact_path="onnx/changed")
    changed = {**champion_tags, TAG_URI: f"runs:/{run.info.run_id}/onnx/changed"}
    with pytest.raises(OnnxVerificationError, match="no longer gives the recorded answers"):
        load_scorer(changed)
    assert load_scorer(champion_tags) is not None  # the registered copy still passes
    assert load_scorer({}) is None  # a version without a copy


def test_registration_refuses_a_model_its_onnx_copy_cannot_reproduce(world, tmp_path):
    settings = world.settings
    spec = replace(CHURN, registered_model="churn_onnx_refused")
    train = pd.read_parquet(world.training_set.train_path)
    # Tuned on decision_function scores, so its threshold is no probability: the ONNX copy
    # (probabilities, threshold applied outside) cannot give its decisions.
    model = CHURN.make_estimator(CHURN, 0).set_params(response_method="decision_function")
    model.fit(model_input(train, CHURN.features), train[CHURN.label])
    holdout = tmp_path / "reference.parquet"
    shutil.copy(world.training_set.holdout_path, holdout)
    with mlflow.start_run(run_name="onnx-refused") as run:
        uri = mlflow.sklearn.log_model(
            model, name="model", pip_requirements=[], skops_trusted_types=skops_trusted_types(model)
        ).model_uri
        mlflow.log_artifact(str(holdout), artifact_path="monitoring")
    with pytest.raises(OnnxVerificationError, match="decisions differ"):
        registry.register_model(
            spec, TrainedModel(run_id=run.info.run_id, model_uri=uri, metrics={}), settings
        )
    assert MlflowClient().search_model_versions(f"name='{spec.registered_model}'") == []


def test_verification_needs_the_holdout_of_the_run(world):
    with mlflow.start_run(run_name="no-holdout") as run:
        pass
    with pytest.raises(OnnxVerificationError, match="has no holdout"):
        export_verified(run.info.run_id, world.trained.model_uri, MlflowClient(), CHURN.features)


def test_no_private_scikit_learn_attribute_in_project_source():
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for folder in SOURCE_DIRS
        for path in sorted((ROOT / folder).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE_NAMES.search(line)
    ]
    assert found == []
