"""The second model, next-30-day spend: a regression declared by files of its own only.

It trains on the session world through the same pipeline as churn, passes its own gate on
RMSE, is verified as ONNX, scores like its MLflow model, and is monitored for drift.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from mlflow.artifacts import download_artifacts

from core.schema import model_input
from models.catalog import get_spec
from models.next_spend.spec import SPEC as NEXT_SPEND
from models.next_spend.transforms import compute_rhythm_features, compute_spend_labels
from models.onnx_model import (
    MODEL_FILE,
    TAG_URI,
    TOLERANCES,
    compare,
    convert,
    reference_scores,
    verification_rows,
)
from models.registry import CHAMPION, alias_version
from models.tracking import configure_mlflow


def orders(*rows: tuple[int, str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(len(rows))],
            "customer_id": [r[0] for r in rows],
            "order_timestamp": pd.to_datetime([r[1] for r in rows], utc=True),
            "amount": [r[2] for r in rows],
            "customer_segment": ["regular"] * len(rows),
        }
    )


def test_the_catalog_finds_the_spec() -> None:
    assert get_spec("next_spend") is NEXT_SPEND
    assert NEXT_SPEND.task == "regression" and not NEXT_SPEND.greater_is_better
    assert NEXT_SPEND.output_columns == ("prediction",)


def test_rhythm_features_count_the_trailing_windows() -> None:
    placed = orders(
        (1, "2025-12-20 10:00", 10.0),
        (1, "2026-01-20 10:00", 20.0),
        (1, "2026-02-25 10:00", 40.0),
        (1, "2026-02-28 09:00", 5.0),
        (2, "2026-02-27 12:00", 7.0),
    )
    rows = compute_rhythm_features(
        placed, [date(2026, 2, 28)], datetime(2026, 3, 2, tzinfo=UTC)
    ).set_index("customer_id")
    one, two = rows.loc[1], rows.loc[2]
    assert (one["orders_7d"], one["spend_7d"], one["active_days_30d"]) == (2, 45.0, 2)
    assert one["spend_prev_30d"] == 20.0  # 01-20 is 31..60 days back; 12-20 is older
    assert (two["orders_7d"], two["spend_7d"], two["spend_prev_30d"]) == (1, 7.0, 0.0)
    assert rows["event_timestamp"].iloc[0] == pd.Timestamp("2026-02-28 23:59:59", tz="UTC")


def test_spend_labels_sum_the_next_30_days_and_wait_for_the_horizon() -> None:
    placed = orders(
        (1, "2026-01-10 10:00", 10.0),
        (1, "2026-01-15 10:00", 25.0),
        (1, "2026-02-05 10:00", 30.0),  # 26 days after 01-10: inside its horizon
        (1, "2026-02-20 10:00", 99.0),  # 41 days after: outside
        (2, "2026-01-09 10:00", 5.0),
    )
    labels = compute_spend_labels(placed, [date(2026, 1, 10), date(2026, 2, 1)], date(2026, 2, 20))
    assert labels["event_timestamp"].dt.date.unique().tolist() == [date(2026, 1, 10)]
    by_customer = labels.set_index("customer_id")["spend_next_30d"]
    assert by_customer.to_dict() == {1: 55.0, 2: 0.0}  # 01-15 + 02-05; customer 2 stopped


@pytest.fixture(scope="module")
def trained(world):
    """next_spend trained, registered and gated on the session world (once)."""
    from models.promotion import run_training_pipeline

    return run_training_pipeline(NEXT_SPEND, world.settings, run_name="next_spend_test")


def test_it_trains_registers_and_passes_its_own_gate(world, trained) -> None:
    gate = trained.gate
    assert gate.metric == "rmse" and gate.promoted, gate.reason
    assert gate.score <= NEXT_SPEND.min_score and "reaches maximum" in gate.reason
    assert set(trained.trained.metrics) == {"mae", "rmse", "r2"}
    assert trained.trained.metrics["r2"] > 0.3
    assert set(trained.training_set.data_versions) == {
        "customer_features",
        "customer_rhythm",
        "raw_orders",
    }
    assert alias_version(world.settings, NEXT_SPEND.registered_model, CHAMPION) == gate.version
    client = configure_mlflow(world.settings)
    tags = client.get_model_version(NEXT_SPEND.registered_model, str(gate.version)).tags
    assert tags["gate.metric"] == "rmse" and tags["lineage.model"] == "next_spend"
    # The ONNX copy was verified on the whole holdout at registration.
    assert float(tags["onnx.max_abs_diff"]) <= float(tags["onnx.tolerance"]) == 1e-5
    assert int(tags["onnx.holdout_rows"]) == trained.training_set.holdout_rows


def test_its_onnx_trees_add_in_float64_on_the_rounded_features(world, trained) -> None:
    client = configure_mlflow(world.settings)
    tags = client.get_model_version(NEXT_SPEND.registered_model, str(trained.gate.version)).tags
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(download_artifacts(artifact_uri=tags[TAG_URI], dst_path=tmp))
        graph = onnx.load_from_string((folder / MODEL_FILE).read_bytes())
    opsets = {opset.domain: opset.version for opset in graph.opset_import}
    assert opsets["ai.onnx.ml"] == 3
    made_by = {output: node for node in graph.graph.node for output in node.output}
    (trees,) = [node for node in graph.graph.node if node.op_type == "TreeEnsembleRegressor"]
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in trees.attribute}
    for name in ("nodes_values", "target_weights", "base_values"):
        assert name not in attributes
        assert attributes[f"{name}_as_tensor"].data_type == onnx.TensorProto.DOUBLE
    # float64 inputs, rounded to float32 where the pipeline rounds, then back to float64.
    back, rounding = made_by[trees.input[0]], None
    assert back.op_type == "Cast"
    assert onnx.helper.get_attribute_value(back.attribute[0]) == onnx.TensorProto.DOUBLE
    rounding = made_by[back.input[0]]
    assert rounding.op_type == "Cast"
    assert onnx.helper.get_attribute_value(rounding.attribute[0]) == onnx.TensorProto.FLOAT


@pytest.mark.parametrize("shuffled", [False, True], ids=["labels", "shuffled_labels"])
def test_the_onnx_copy_gives_the_regressor_answers_within_1e_5(world, trained, shuffled) -> None:
    train = pd.read_parquet(trained.training_set.train_path)
    labels = train[NEXT_SPEND.label]
    if shuffled:
        labels = labels.sample(frac=1.0, random_state=3).to_numpy()
    model = NEXT_SPEND.make_estimator(NEXT_SPEND, 0)
    model.fit(model_input(train, NEXT_SPEND.features), labels)
    frame = model_input(pd.read_parquet(trained.training_set.holdout_path), NEXT_SPEND.features)
    _, scorer, precision = convert(model, frame, NEXT_SPEND.task)
    rows = verification_rows(frame)
    result = compare(
        scorer.score_rows(rows),
        *reference_scores(model, rows, NEXT_SPEND.features, NEXT_SPEND.task),
        TOLERANCES["regression"],
    )
    assert precision == "double" and result.tolerance == 1e-5
    assert result.passed and result.rows > len(frame), str(result)


def test_its_run_holds_the_regression_evaluation(world, trained) -> None:
    from evaluation_support import check_evaluation_logged

    client = configure_mlflow(world.settings)
    metrics = check_evaluation_logged(client, trained.trained.run_id, NEXT_SPEND)
    assert metrics["root_mean_squared_error"] == pytest.approx(metrics["rmse"], rel=1e-9)


def test_a_worse_challenger_does_not_pass_the_gate(world, trained) -> None:
    from models.promotion import gate
    from models.registry import register_model
    from models.training import train_and_log

    shallow = replace(NEXT_SPEND, make_estimator=_two_trees)
    weak = train_and_log(shallow, trained.training_set, world.settings, dag_run_id="weak")
    version = register_model(NEXT_SPEND, weak, world.settings).version
    decision = gate(NEXT_SPEND, version, trained.training_set.holdout_path, world.settings)
    assert not decision.promoted and decision.champion_version == trained.gate.version
    assert decision.score > decision.champion_score, decision.reason
    assert "does not beat" in decision.reason


def _two_trees(spec, seed):
    """The spec's estimator cut down to two boosting rounds: surely a worse model."""
    model = NEXT_SPEND.make_estimator(spec, seed)
    return model.set_params(regressor__max_iter=2)


def test_serving_scores_like_the_registered_model(world, trained) -> None:
    from serving.model import load_version

    configure_mlflow(world.settings)
    loaded = load_version(world.settings, NEXT_SPEND, trained.gate.version)
    assert loaded.runtime == "onnx"
    holdout = pd.read_parquet(trained.training_set.holdout_path).head(300)
    inputs = model_input(holdout, NEXT_SPEND.features)
    rows = inputs.to_dict(orient="records")
    values, decisions = loaded.score_rows(rows)
    assert decisions is None
    from models.registry import load_version as load_sklearn

    expected = load_sklearn(NEXT_SPEND.registered_model, trained.gate.version).predict(inputs)
    relative = np.abs(np.asarray(values) - expected) / np.maximum(1.0, np.abs(expected))
    assert relative.max() <= 1e-3


def test_drift_is_measured_on_its_own_features(world, trained, tmp_path) -> None:
    from monitoring.check import load_reference
    from monitoring.drift import build_drift_report

    version, reference = load_reference(world.settings, NEXT_SPEND)
    assert version == trained.gate.version
    columns = set(NEXT_SPEND.feature_names) | {"prediction"}
    assert columns <= set(reference.columns)
    calm = build_drift_report(NEXT_SPEND, reference, reference.sample(frac=1, random_state=1),
                              world.settings, out_dir=tmp_path)  # fmt: skip
    assert not calm.significant
    shifted = reference.copy()
    for column in ("spend_7d", "spend_prev_30d", "total_spend_30d"):
        shifted[column] *= 3
    drifted = build_drift_report(NEXT_SPEND, reference, shifted, world.settings, out_dir=tmp_path)
    assert drifted.significant
    assert {c.column for c in drifted.features if c.level == "significant"} >= {"spend_7d"}
    assert [c.column for c in drifted.prediction] == ["prediction"]
    assert datetime.now(UTC) >= drifted.created_at
