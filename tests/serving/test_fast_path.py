"""Serving scores with the verified ONNX copy: the registered model's decisions, its
probabilities within the tolerance; a version without a usable copy gets the sklearn model."""

from __future__ import annotations

import logging
from dataclasses import replace

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from core.schema import model_input
from data.store import get_feature_store, get_online_features
from models import registry
from models.churn.spec import SPEC as CHURN
from models.onnx_model import TAG_SHA256, TOLERANCE, OnnxScorer
from serving.model import GuardedOnnxScorer, SklearnScorer, load_model, load_version


@pytest.fixture(autouse=True)
def _tracking(world) -> None:
    registry.configure_mlflow(world.settings)


@pytest.fixture(scope="module")
def champion(world):
    return load_model(world.settings, CHURN)


@pytest.fixture(scope="module")
def reference(world):
    """The registered model as MLflow's sklearn flavor loads it."""
    registry.configure_mlflow(world.settings)
    return registry.load_version(CHURN.registered_model, world.gate.version)


def test_champion_is_served_by_onnx_runtime(champion):
    assert champion.runtime == "onnx" and isinstance(champion.scorer, GuardedOnnxScorer)
    assert isinstance(champion.scorer.onnx, OnnxScorer)


def test_rows_near_the_threshold_get_the_registered_models_answer(world, champion, reference):
    """Within the band around the threshold the sklearn model decides; elsewhere ONNX does."""
    inputs = model_input(pd.read_parquet(world.training_set.holdout_path).head(200), CHURN.features)
    rows = inputs.to_dict(orient="records")
    onnx_p, _ = champion.scorer.onnx.score_rows(rows)
    threshold = champion.scorer.onnx.threshold
    band = float(np.median(np.abs(np.asarray(onnx_p) - threshold)))  # half the rows inside
    guarded = GuardedOnnxScorer(champion.scorer.onnx, champion.scorer.exact, band=band)
    probability, decision = guarded.score_rows(rows)
    exact = reference.predict_proba(inputs)[:, 1]
    inside = np.abs(np.asarray(onnx_p) - threshold) <= band
    assert 0 < inside.sum() < len(rows)
    assert np.array_equal(np.asarray(probability)[inside], exact[inside])  # sklearn's own
    assert np.array_equal(np.asarray(probability)[~inside], np.asarray(onnx_p)[~inside])
    assert np.array_equal(np.asarray(decision), reference.predict(inputs))


def test_onnx_equals_mlflow_model_on_holdout_and_online_rows(
    world, champion, reference, known_customers
):
    holdout = pd.read_parquet(world.training_set.holdout_path)
    online = get_online_features(
        get_feature_store(world.settings), known_customers, CHURN.feature_service
    ).dropna(subset=list(CHURN.feature_names))
    for frame in (holdout, online):
        inputs = model_input(frame, CHURN.features)
        rows = inputs.to_dict(orient="records")
        probability, decision = champion.score_rows(rows)
        assert np.array_equal(np.asarray(decision), reference.predict(inputs))
        gap = np.abs(np.asarray(probability) - reference.predict_proba(inputs)[:, 1])
        assert gap.max() <= TOLERANCE
        # A row scored alone gets the same number as in a batch.
        one_by_one = [champion.score_rows([row])[0][0] for row in rows[:50]]
        assert one_by_one == probability[:50]


def test_missing_values_and_unknown_segments(world, champion, reference):
    base = model_input(pd.read_parquet(world.training_set.holdout_path).head(8), CHURN.features)
    rows = base.to_dict(orient="records")
    probes = [{**row, column: None} for row in rows for column in CHURN.feature_names]
    probes += [{**row, "customer_segment": "no-such-segment"} for row in rows]
    frame = model_input(pd.DataFrame(probes, columns=list(CHURN.feature_names)), CHURN.features)
    probability, decision = champion.score_rows(probes)
    assert np.array_equal(np.asarray(decision), reference.predict(frame))
    assert np.abs(np.asarray(probability) - reference.predict_proba(frame)[:, 1]).max() <= TOLERANCE


def _rows(world) -> tuple[list[dict], pd.DataFrame]:
    inputs = model_input(pd.read_parquet(world.training_set.holdout_path).head(40), CHURN.features)
    return inputs.to_dict(orient="records"), inputs


def test_version_without_onnx_is_served_by_the_sklearn_model(world, reference, caplog):
    name = "churn_without_onnx"
    version = int(mlflow.register_model(world.trained.model_uri, name).version)
    with caplog.at_level(logging.WARNING, logger="serving.model"):
        loaded = load_version(world.settings, replace(CHURN, registered_model=name), version)
    assert loaded.runtime == "sklearn" and isinstance(loaded.scorer, SklearnScorer)
    assert "has no ONNX model" in caplog.text
    rows, inputs = _rows(world)
    probability, decision = loaded.score_rows(rows)
    assert probability == list(reference.predict_proba(inputs)[:, 1])
    assert decision == list(reference.predict(inputs))


def test_version_whose_onnx_fails_its_check_is_served_by_the_sklearn_model(
    world, reference, caplog
):
    champion_tags = (
        MlflowClient().get_model_version(CHURN.registered_model, str(world.gate.version)).tags
    )
    onnx_tags = {k: v for k, v in champion_tags.items() if k.startswith("onnx.")}
    name = "churn_onnx_tampered"
    tags = {**onnx_tags, TAG_SHA256: "0" * 64}
    version = int(mlflow.register_model(world.trained.model_uri, name, tags=tags).version)
    with caplog.at_level(logging.ERROR, logger="serving.model"):
        loaded = load_version(world.settings, replace(CHURN, registered_model=name), version)
    assert loaded.runtime == "sklearn"
    assert "ONNX model refused at load" in caplog.text and "not the verified" in caplog.text
    rows, inputs = _rows(world)
    assert loaded.score_rows(rows)[1] == list(reference.predict(inputs))
