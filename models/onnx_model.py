"""The registered model as ONNX: converted and verified at registration, checked at load.

Serving scores every request with ONNX Runtime instead of scikit-learn: the pipeline's
``predict_proba`` on a one-row DataFrame costs 7-10 ms (pandas and input validation),
an ONNX Runtime session ~0.03 ms, through public APIs only (skl2onnx converts any
pipeline it has converters for; no private scikit-learn attribute is read here).

At registration, :func:`export_verified` converts the logged model, scores the holdout
(plus rows with missing values and unknown categories) with it and with the MLflow
model, and refuses unless every decision is identical and the answers differ by at most
the task's tolerance (:data:`TOLERANCES`). The ONNX file and a verification record (a
sample of those rows with the MLflow model's answers) are logged on the training run
under ``onnx/<sha256 prefix>/``; the returned tags (where it is, its sha256, the figures)
go on the model version. At load, :func:`load_scorer` checks the sha256 and re-scores the
recorded rows before the scorer is used.

Precision: parity comes from the pipeline and the graph, not from the tolerance. ONNX tree
ensembles as skl2onnx writes them compare float32 inputs with float32 thresholds and add
their leaf values in float32, so the specs' pipelines round the preprocessed features to
float32 themselves, just before the trees (``models.recipes.tree_pipeline``, a
``FunctionTransformer(np.float32)`` step, as skl2onnx's "Issues when switching to float"
recommends): the trees are fitted and scored on float32 numbers. The graph takes float64
features and transforms them in float64 (the same subtraction and division as
StandardScaler), then casts to float32 where the pipeline does (:func:`cast_converter`),
so both sides feed the trees the same numbers, bit for bit. Then:

- a classifier's trees run in float32 (skl2onnx's converter): float32 arithmetic in the
  sum of the leaf values and the sigmoid stays far inside :data:`TOLERANCE` for a
  probability (measured at most 6.6e-7).
- a regressor's trees run in float64 (:func:`double_tree_converter`): a regression's sums
  start from the mean label (hundreds for spend), where float32 sums were 5e-5 off. The
  rounded features are cast back to float64 and the trees are written as ONNX-ML 3
  ``TreeEnsembleRegressor`` with float64 thresholds, leaves and base value, so ONNX Runtime
  adds in float64 what scikit-learn adds in float64; only the float32 output is rounded
  (relative 6e-8).
- thresholds: scikit-learn puts each half-way between two float32 values seen in training;
  a classifier's float32 graph stores its nearest float32, which is the threshold itself
  for ~90% of them. An input exactly equal to one rounded up goes left in ONNX and right
  in scikit-learn. Only a value scored half-way (to float32 precision) between two
  neighbouring training values can be one (an integer feature with a gap of 2 in
  training, say): no row of 14 simulated data sets (train and holdout) is; the
  verification is there to catch one in the holdout. A regressor's float64 thresholds are
  scikit-learn's own.

A pipeline without the step still converts; its verification says whether its trees route
the holdout as scikit-learn does.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from onnx import TensorProto
from sklearn.model_selection import TunedThresholdClassifierCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from core.schema import Feature, model_input
from core.spec import Task

# Largest |p_onnx - p_sklearn| accepted for a class probability, at registration and load.
# The trees score the same float32 numbers on both sides (models.recipes.tree_pipeline), so
# what differs is float32 arithmetic inside the ONNX trees: measured at most 6.6e-7 for
# churn (true and inverted labels, 14 simulated data sets of 800 and 3000 customers).
TOLERANCE = 1e-5
# A regression is held to the same figure, relative: |y_onnx - y_sklearn| / max(1, |y_sklearn|)
# (its trees add in float64 as scikit-learn does, double_tree_converter).
REGRESSION_TOLERANCE = TOLERANCE
TOLERANCES = {"classification": TOLERANCE, "regression": REGRESSION_TOLERANCE}
# The holdout's model inputs, logged on the training run (models.training.train_and_log;
# monitoring reads the same file as its drift reference).
HOLDOUT_ARTIFACT = "monitoring/reference.parquet"
ARTIFACT_DIR = "onnx"
MODEL_FILE = "model.onnx"
RECORD_FILE = "verification.json"
# Holdout rows kept in the verification record for the check at load (all holdout rows
# are verified at registration; the load check only has to catch a different artifact
# or runtime, which any rows show).
CHECK_ROWS = 200
# Holdout rows that get one copy per feature with that feature missing (None), and one
# with each categorical feature set to a value never seen in training.
PROBE_ROWS = 8
UNKNOWN_CATEGORY = "<unknown>"

TAG_URI = "onnx.artifact_uri"
TAG_SHA256 = "onnx.sha256"

_INPUT_DTYPES = {"tensor(double)": np.float64, "tensor(float)": np.float32}


class OnnxVerificationError(RuntimeError):
    """The ONNX model could not be made, or does not give the registered model's answers."""


@dataclass(frozen=True)
class Comparison:
    """How the ONNX scorer's answers compare with the MLflow model's on the same rows."""

    rows: int
    max_abs_diff: float
    decision_mismatches: int
    tolerance: float = TOLERANCE

    @property
    def passed(self) -> bool:
        """Every decision identical and every probability within the tolerance."""
        return self.decision_mismatches == 0 and self.max_abs_diff <= self.tolerance

    def __str__(self) -> str:
        return (
            f"{self.rows} rows: {self.decision_mismatches} decisions differ, "
            f"max |p_onnx - p_sklearn| = {self.max_abs_diff:.3g} (tolerance {self.tolerance:g})"
        )


Scores = tuple[list[float], list[int] | None]  # probabilities and decisions; values and None


def compare(
    scores: tuple[Sequence[float], Sequence[int] | None],
    values: Sequence[float],
    decisions: Sequence[int] | None,
    tolerance: float = TOLERANCE,
) -> Comparison:
    """Compare ONNX ``scores`` with the reference answers.

    A classifier's scores are (probabilities, decisions), compared absolutely; a
    regression's are (values, None), compared relatively to ``max(1, |value|)``.
    """
    got, want = np.asarray(scores[0], dtype=np.float64), np.asarray(values, dtype=np.float64)
    scale = 1.0 if decisions is not None else np.maximum(1.0, np.abs(want))
    # NaN never passes: a score that is NaN on one side only is an infinite difference.
    diff = np.where(np.isnan(got) | np.isnan(want), np.inf, np.abs(got - want) / scale)
    mismatches = 0
    if decisions is not None:
        mismatches = int((np.asarray(scores[1]) != np.asarray(decisions)).sum())
    return Comparison(
        rows=len(want),
        max_abs_diff=float(diff.max()) if len(diff) else 0.0,
        decision_mismatches=mismatches,
        tolerance=tolerance,
    )


class OnnxScorer:
    """An ONNX Runtime session that scores feature dicts like the registered model.

    The graph takes one ``[n, 1]`` input per feature column (skl2onnx's form for a
    ColumnTransformer that selects columns by name). For a binary classifier (``classes``
    given), ``threshold`` is the decision threshold applied to the positive class's
    probability (``p >= threshold``, as scikit-learn's threshold classifiers do); without
    one, the graph's own labels are used. Without ``classes`` it is a regression whose
    graph answers ``variable``.
    """

    def __init__(
        self, model: bytes, classes: Sequence[int] | None, threshold: float | None
    ) -> None:
        options = ort.SessionOptions()
        # One thread: a request scores a few rows, where a thread pool only adds hand-over
        # and spin-waiting on the cores the HTTP loop and Redis need.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(
            model, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.classes = None if classes is None else np.asarray(classes)
        if self.classes is not None and len(self.classes) != 2:
            raise ValueError(f"a binary classifier is needed, not classes {list(self.classes)}")
        self.threshold = threshold
        self.inputs: list[tuple[str, Any]] = []
        for spec in self.session.get_inputs():
            if spec.type == "tensor(string)":
                self.inputs.append((spec.name, object))
            elif spec.type in _INPUT_DTYPES:
                self.inputs.append((spec.name, _INPUT_DTYPES[spec.type]))
            else:
                raise ValueError(f"unsupported ONNX input {spec.name}: {spec.type}")
        outputs = {o.name for o in self.session.get_outputs()}
        needed = {"label", "probabilities"} if self.classes is not None else {"variable"}
        if not needed <= outputs:
            raise ValueError(f"ONNX outputs {sorted(outputs)} lack {sorted(needed)}")

    def feed(self, rows: Sequence[Mapping[str, object]]) -> dict[str, np.ndarray]:
        """The session's inputs for feature dicts; None is a missing value."""
        feed = {}
        for name, dtype in self.inputs:
            if dtype is object:
                # A missing category is scored as an unknown one: all zeros after the
                # encoder's handle_unknown="ignore", as scikit-learn does with None.
                values = ["" if row[name] is None else str(row[name]) for row in rows]
                feed[name] = np.array(values, dtype=object).reshape(-1, 1)
            else:  # numpy turns None into NaN, the pipeline's missing value
                feed[name] = np.array([row[name] for row in rows], dtype=dtype).reshape(-1, 1)
        return feed

    def score_rows(self, rows: Sequence[Mapping[str, object]]) -> Scores:
        """Probabilities of the positive class and decisions (a regression: values, None)."""
        if self.classes is None:
            (values,) = self.session.run(["variable"], self.feed(rows))
            return np.asarray(values).ravel().astype(np.float64).tolist(), None
        if self.threshold is None:
            labels, probabilities = self.session.run(["label", "probabilities"], self.feed(rows))
            decisions = np.asarray(labels).ravel()
        else:
            (probabilities,) = self.session.run(["probabilities"], self.feed(rows))
        # float64 before comparing: against a float32 array numpy would round the threshold.
        positive = np.asarray(probabilities)[:, 1].astype(np.float64)
        if self.threshold is not None:
            decisions = self.classes[(positive >= self.threshold).astype(np.intp)]
        return positive.tolist(), [int(d) for d in decisions]


def split_threshold(model: object) -> tuple[object, float | None]:
    """The estimator to convert and the decision threshold to apply outside the graph.

    skl2onnx converts a TunedThresholdClassifierCV as its inner estimator, labels included:
    its labels are the inner estimator's (threshold 0.5), not the tuned ones. So the fitted
    inner pipeline (``estimator_``) is converted and ``best_threshold_`` applied on its
    probabilities. (A threshold tuned on another response than probabilities fails the
    verification.)
    """
    if isinstance(model, TunedThresholdClassifierCV):
        return model.estimator_, float(model.best_threshold_)
    return model, None


def cast_shape(operator: Any) -> None:
    """skl2onnx shape calculator of a FunctionTransformer step (see :func:`cast_converter`)."""
    from skl2onnx.common.data_types import FloatTensorType

    func, source = function_of(operator), operator.inputs[0]
    if func is None:
        operator.outputs[0].type = type(source.type)(source.type.shape)
    else:
        operator.outputs[0].type = FloatTensorType(source.type.shape)


def round_trip_shape(operator: Any) -> None:
    """Shape calculator of the float32 step before float64 trees (:func:`round_trip_converter`)."""
    from skl2onnx.common.data_types import DoubleTensorType

    function_of(operator)
    operator.outputs[0].type = DoubleTensorType(operator.inputs[0].type.shape)


def function_of(operator: Any) -> Any:
    """The FunctionTransformer's function: None or ``np.float32``, the two that convert."""
    if len(operator.inputs) != 1:
        raise RuntimeError(f"a FunctionTransformer step has {len(operator.inputs)} inputs, not 1")
    func = operator.raw_operator.func
    if func is not None and func is not np.float32:
        raise RuntimeError(f"FunctionTransformer(func={func!r}) has no ONNX converter")
    return func


def add_casts(scope: Any, operator: Any, container: Any, types: tuple[int, ...]) -> None:
    """A FunctionTransformer step as ONNX: ``np.float32`` (the rounding before the trees,
    ``models.recipes.float32_cast``) is a chain of Casts to ``types``, no function (all
    that skl2onnx's own converter takes) an Identity."""
    source, target = operator.inputs[0].full_name, operator.outputs[0].full_name
    if function_of(operator) is None:
        name = scope.get_unique_operator_name("Identity")
        container.add_node("Identity", source, target, name=name)
        return
    steps = [scope.get_unique_variable_name("rounded") for _ in types[1:]]
    for cast_from, cast_to, to in zip([source, *steps], [*steps, target], types, strict=True):
        name = scope.get_unique_operator_name("Cast")
        container.add_node("Cast", cast_from, cast_to, name=name, to=to)


def cast_converter(scope: Any, operator: Any, container: Any) -> None:
    """skl2onnx converter of the float32 step before float32 trees: a Cast to float32.

    Passed to ``convert_sklearn`` for this conversion only (its public
    ``custom_conversion_functions``), not registered for the whole process.
    """
    add_casts(scope, operator, container, (TensorProto.FLOAT,))


def round_trip_converter(scope: Any, operator: Any, container: Any) -> None:
    """The float32 step before float64 trees: a Cast to float32 (the rounding), then back to
    float64, which holds the rounded numbers exactly."""
    add_casts(scope, operator, container, (TensorProto.FLOAT, TensorProto.DOUBLE))


# TreeEnsembleRegressor attributes that ONNX-ML 3 also takes as tensors of any precision.
TENSOR_ATTRIBUTES = ("nodes_values", "nodes_hitrates", "target_weights", "base_values")
# ai.onnx.ml opset of the float64 trees: the first with ``*_as_tensor`` attributes.
ML_OPSET_DOUBLE_TREES = 3


class DoubleTreeContainer:
    """skl2onnx's container for one converter call, writing its TreeEnsembleRegressor in
    float64: the attributes skl2onnx computes in float64 (for float64 inputs) go into the
    ONNX-ML 3 ``*_as_tensor`` attributes, where its ONNX-ML 1 node would round them to
    float32. Everything else is the container's own."""

    def __init__(self, container: Any) -> None:
        self.container = container

    def __getattr__(self, name: str) -> Any:
        return getattr(self.container, name)

    def add_node(self, op_type: str, inputs: Any, outputs: Any, **attrs: Any) -> Any:
        if op_type == "TreeEnsembleRegressor":
            for key in TENSOR_ATTRIBUTES:
                if key in attrs:
                    values = np.asarray(attrs.pop(key), dtype=np.float64)
                    attrs[f"{key}_as_tensor"] = onnx.numpy_helper.from_array(values, key)
            attrs["op_version"] = ML_OPSET_DOUBLE_TREES
        return self.container.add_node(op_type, inputs, outputs, **attrs)


def double_tree_converter(scope: Any, operator: Any, container: Any) -> None:
    """A tree regressor (HistGradientBoosting, random forest, extra trees) converted by
    skl2onnx's own converter into float64 trees (:class:`DoubleTreeContainer`)."""
    from skl2onnx.operator_converters.random_forest import (
        convert_sklearn_random_forest_regressor_converter,
    )

    convert_sklearn_random_forest_regressor_converter(
        scope, operator, DoubleTreeContainer(container)
    )


def regression_converters() -> dict[type, Any]:
    """The tree regressors whose skl2onnx converter :func:`double_tree_converter` wraps."""
    from sklearn.ensemble import (
        ExtraTreesRegressor,
        HistGradientBoostingRegressor,
        RandomForestRegressor,
    )

    return dict.fromkeys(
        (HistGradientBoostingRegressor, RandomForestRegressor, ExtraTreesRegressor),
        double_tree_converter,
    )


def convert(
    model: object, frame: pd.DataFrame, task: Task = "classification"
) -> tuple[bytes, OnnxScorer, str]:
    """Convert a fitted binary classifier or regressor; ``frame`` gives the input columns.

    Returns the ONNX bytes, their scorer (threshold included) and the input precision.
    """
    # Imported here: only registration converts; the service needs ONNX Runtime alone.
    from skl2onnx import convert_sklearn, get_latest_tested_opset_version
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )

    estimator, threshold = split_threshold(model)
    final = estimator[-1] if isinstance(estimator, Pipeline) else estimator
    classifier = task == "classification"
    # probabilities as a plain [n, 2] tensor
    options = {id(final): {"zipmap": False}} if classifier else None
    outputs = (
        [("label", Int64TensorType([None])), ("probabilities", FloatTensorType([None, 2]))]
        if classifier
        else [("variable", FloatTensorType([None, 1]))]
    )
    classes = list(model.classes_) if classifier else None  # type: ignore[attr-defined]
    if classifier:
        shapes, converters, opsets = cast_shape, {FunctionTransformer: cast_converter}, None
    else:  # float64 trees: the rounded features go back to float64 (round_trip_converter)
        shapes, converters = round_trip_shape, {FunctionTransformer: round_trip_converter}
        converters |= regression_converters()
        opsets = {"": get_latest_tested_opset_version(), "ai.onnx.ml": ML_OPSET_DOUBLE_TREES}
    errors = []
    # float64 inputs first: the transforms then compute what scikit-learn computes, up to
    # the pipeline's own float32 step. A classifier's ONNX trees answer in float32, so the
    # probabilities are declared float32, as is a regression's value (rounded from float64).
    # Not every converter takes float64: then float32 inputs, skl2onnx's default
    # (verification says if it is enough).
    for precision, number_type, final_types in (
        ("double", DoubleTensorType, outputs),
        ("float", FloatTensorType, None),
    ):
        initial_types = [
            (str(c), (StringTensorType if frame[c].dtype == object else number_type)([None, 1]))
            for c in frame.columns
        ]
        try:
            onnx_model = convert_sklearn(
                estimator,
                initial_types=initial_types,
                options=options,
                final_types=final_types,
                target_opset=opsets,
                custom_shape_calculators={FunctionTransformer: shapes},
                custom_conversion_functions=converters,
            )
            onnx.checker.check_model(onnx_model)
            data = onnx_model.SerializeToString()
            scorer = OnnxScorer(data, classes, threshold)
        except Exception as error:  # skl2onnx and onnxruntime raise many types; try the next
            errors.append(f"{precision}: {type(error).__name__}: {str(error)[:300]}")
            continue
        return data, scorer, precision
    raise OnnxVerificationError(f"cannot convert {type(model).__name__} to ONNX: {errors}")


def verification_rows(frame: pd.DataFrame) -> list[dict[str, object]]:
    """The holdout rows, then probe rows with one feature missing or an unknown category."""
    rows = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]
    probes = []
    for row in rows[:PROBE_ROWS]:
        probes += [{**row, column: None} for column in frame.columns]
        probes += [{**row, c: UNKNOWN_CATEGORY} for c in frame.columns if frame[c].dtype == object]
    return rows + probes


def reference_scores(
    model: object,
    rows: Sequence[Mapping[str, object]],
    features: Sequence[Feature],
    task: Task = "classification",
) -> Scores:
    """The scikit-learn model's answers: probabilities and decisions, or values and None."""
    inputs = model_input(pd.DataFrame(list(rows)), features)
    if task == "regression":
        return [float(v) for v in model.predict(inputs)], None  # type: ignore[attr-defined]
    probabilities = model.predict_proba(inputs)[:, 1]  # type: ignore[attr-defined]
    decisions = model.predict(inputs)  # type: ignore[attr-defined]
    return [float(p) for p in probabilities], [int(d) for d in decisions]


def export_verified(
    run_id: str,
    model_uri: str,
    client: MlflowClient,
    features: Sequence[Feature],
    task: Task = "classification",
    holdout: pd.DataFrame | None = None,
) -> dict[str, str]:
    """Convert the MLflow model, verify it on the holdout, log it on the run; version tags.

    ``holdout`` defaults to the run's logged holdout (:data:`HOLDOUT_ARTIFACT`). Raises
    :class:`OnnxVerificationError` when the model cannot be converted or its answers differ.
    """
    model = mlflow.sklearn.load_model(model_uri)
    if holdout is None:
        try:
            holdout = pd.read_parquet(
                download_artifacts(run_id=run_id, artifact_path=HOLDOUT_ARTIFACT)
            )
        except Exception as error:  # any missing-artifact or store error: say what is missing
            raise OnnxVerificationError(
                f"run {run_id} has no holdout at {HOLDOUT_ARTIFACT} to verify ONNX on: {error}"
            ) from error
    columns = [str(c) for c in model.feature_names_in_]
    frame = model_input(holdout, features)[columns]
    data, scorer, precision = convert(model, frame, task)
    rows = verification_rows(frame)
    probabilities, decisions = reference_scores(model, rows, features, task)
    tolerance = TOLERANCES[task]
    result = compare(scorer.score_rows(rows), probabilities, decisions, tolerance)
    if not result.passed:
        raise OnnxVerificationError(
            f"ONNX model of run {run_id} does not give the MLflow model's answers: {result}"
        )
    sha256 = hashlib.sha256(data).hexdigest()
    kept = list(range(min(CHECK_ROWS, len(frame)))) + list(range(len(frame), len(rows)))
    record = {
        "classes": None if scorer.classes is None else [int(c) for c in scorer.classes],
        "threshold": scorer.threshold,
        "tolerance": tolerance,
        "rows": [rows[i] for i in kept],
        "probabilities": [probabilities[i] for i in kept],
        "decisions": None if decisions is None else [decisions[i] for i in kept],
    }
    artifact_path = f"{ARTIFACT_DIR}/{sha256[:16]}"  # content-addressed: never overwritten
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, MODEL_FILE).write_bytes(data)
        Path(tmp, RECORD_FILE).write_text(json.dumps(record))
        client.log_artifacts(run_id, tmp, artifact_path=artifact_path)
    return {
        TAG_URI: f"runs:/{run_id}/{artifact_path}",
        TAG_SHA256: sha256,
        "onnx.threshold": repr(scorer.threshold),
        "onnx.input_precision": precision,
        "onnx.verified_rows": str(result.rows),
        "onnx.holdout_rows": str(len(frame)),
        "onnx.decision_mismatches": str(result.decision_mismatches),
        "onnx.max_abs_diff": f"{result.max_abs_diff:.3g}",
        "onnx.tolerance": f"{tolerance:g}",
        "onnx.versions": ", ".join(
            f"{p} {version(p)}" for p in ("skl2onnx", "onnx", "onnxruntime")
        ),
    }


def load_scorer(tags: Mapping[str, str]) -> OnnxScorer | None:
    """The version's verified ONNX scorer, or ``None`` when it has no ONNX model.

    Raises :class:`OnnxVerificationError` when the file is not the one verified at
    registration or no longer gives the recorded answers (another runtime, say).
    """
    uri = tags.get(TAG_URI)
    if uri is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(download_artifacts(artifact_uri=uri, dst_path=tmp))
        data = (folder / MODEL_FILE).read_bytes()
        record = json.loads((folder / RECORD_FILE).read_text())
    sha256 = hashlib.sha256(data).hexdigest()
    if sha256 != tags.get(TAG_SHA256):
        raise OnnxVerificationError(
            f"{uri}/{MODEL_FILE} has sha256 {sha256}, not the verified {tags.get(TAG_SHA256)}"
        )
    scorer = OnnxScorer(data, record["classes"], record["threshold"])
    result = compare(
        scorer.score_rows(record["rows"]),
        record["probabilities"],
        record["decisions"],
        record["tolerance"],
    )
    if not result.passed:
        raise OnnxVerificationError(f"{uri} no longer gives the recorded answers: {result}")
    return scorer
