"""Loading the served model from the MLflow registry and scoring feature rows fast.

The registered model is scikit-learn's ``TunedThresholdClassifierCV`` around
``Pipeline(ColumnTransformer(StandardScaler, OneHotEncoder), HistGradientBoostingClassifier)``.
Its ``predict_proba`` on a one-row pandas DataFrame costs 7-10 ms, nearly all of it
pandas and input validation. :func:`compile_fast_path` reads the fitted transforms once
(scaler means and scales, encoder categories, tuned threshold) and scores a numpy matrix
with the fitted boosting model itself, with the same float64 arithmetic in the same
order, so the results are identical (checked on probe rows at every load, and against
``mlflow.sklearn.load_model`` in ``tests/serving``). A model of another shape is served
through its own ``predict_proba`` on a DataFrame: slower, same answers.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import TunedThresholdClassifierCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from core.schema import FEATURE_COLUMNS, model_input
from core.settings import Settings
from models import registry
from models.registry import CHAMPION, alias_version

log = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """A registered version could not be loaded or failed its checks."""


@dataclass(frozen=True)
class Forest:
    """All trees of a fitted HistGradientBoostingClassifier, flattened into arrays.

    Trees are walked for every row and every tree at once (one numpy step per depth
    level) instead of one OpenMP call per tree (150 calls for this model). The walk is
    the one in scikit-learn's ``_predictor.pyx``: a missing value goes where the node
    says, otherwise ``x <= threshold`` goes left. Leaf values are added tree after tree
    (a cumulative sum, the same order and rounding as ``_predict_iterations``) onto the
    baseline, and the model's own loss turns the sum into probabilities.
    """

    roots: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    is_leaf: np.ndarray
    value: np.ndarray
    baseline: float
    classifier: HistGradientBoostingClassifier

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """The classifier's ``predict_proba`` for a dense float64 matrix."""
        rows = np.arange(len(x))[:, None]
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        while True:
            leaf = self.is_leaf[node]
            if leaf.all():
                break
            data = x[rows, self.feature[node]]
            go_left = np.where(
                np.isnan(data), self.missing_left[node], data <= self.threshold[node]
            )
            node = np.where(leaf, node, np.where(go_left, self.left[node], self.right[node]))
        terms = np.concatenate([np.full((len(x), 1), self.baseline), self.value[node]], axis=1)
        raw = np.cumsum(terms, axis=1)[:, -1:]
        return self.classifier._loss.predict_proba(raw)


def compile_forest(classifier: HistGradientBoostingClassifier) -> Forest | None:
    """Flatten the trees, or ``None`` for a model this walk does not cover."""
    if classifier.n_trees_per_iteration_ != 1 or classifier.is_categorical_ is not None:
        return None
    nodes = [predictors[0].nodes for predictors in classifier._predictors]
    if any(n["is_categorical"].any() for n in nodes):
        return None
    offsets = np.cumsum([0] + [len(n) for n in nodes[:-1]])
    flat = np.concatenate(nodes)
    shift = np.concatenate([np.full(len(n), o) for n, o in zip(nodes, offsets, strict=True)])
    baseline = np.asarray(classifier._baseline_prediction, dtype=np.float64).ravel()
    return Forest(
        roots=offsets.astype(np.int64),
        feature=flat["feature_idx"].astype(np.int64),
        threshold=flat["num_threshold"].astype(np.float64),
        missing_left=flat["missing_go_to_left"].astype(bool),
        left=(flat["left"] + shift).astype(np.int64),
        right=(flat["right"] + shift).astype(np.int64),
        is_leaf=flat["is_leaf"].astype(bool),
        value=flat["value"].astype(np.float64),
        baseline=float(baseline[0]),
        classifier=classifier,
    )


@dataclass(frozen=True)
class FastPath:
    """The fitted transforms of the pipeline as arrays, and its boosting model."""

    numeric: tuple[str, ...]
    categorical: str
    categories: dict[str, int]
    n_categories: int
    mean: np.ndarray
    scale: np.ndarray
    classifier: HistGradientBoostingClassifier
    threshold: float
    classes: np.ndarray
    forest: Forest | None = None

    def matrix(self, rows: Sequence[Mapping[str, object]]) -> np.ndarray:
        """The ColumnTransformer's output: scaled numbers, then the one-hot segment."""
        width = len(self.numeric)
        out = np.zeros((len(rows), width + self.n_categories), dtype=np.float64)
        numbers = np.array(
            [[_number(row[c]) for c in self.numeric] for row in rows], dtype=np.float64
        )
        out[:, :width] = (numbers - self.mean) / self.scale
        for i, row in enumerate(rows):
            index = self.categories.get(row[self.categorical])  # unknown: all zeros (ignore)
            if index is not None:
                out[i, width + index] = 1.0
        return out

    def score(self, rows: Sequence[Mapping[str, object]]) -> tuple[list[float], list[int]]:
        """Probabilities of churn and decisions at the tuned threshold."""
        x = self.matrix(rows)
        if self.forest is not None:
            probability = self.forest.predict_proba(x)[:, 1]
        else:
            one_openmp_thread()
            probability = self.classifier.predict_proba(x)[:, 1]
        labels = self.classes[(probability >= self.threshold).astype(int)]
        return probability.tolist(), [int(v) for v in labels]


_THREAD = threading.local()


def one_openmp_thread() -> None:
    """Limit OpenMP to one thread in the calling thread (OpenMP settings are per thread).

    The boosting model predicts tree by tree, each in an OpenMP region; for a few rows a
    second thread only adds hand-over and spin-waiting on the core that Redis and the
    HTTP loop need. Measured: ~20 ms per prediction under load with the default, ~1.5 ms
    with one thread. Runs once per thread (BentoML's worker threads are long-lived).
    """
    if getattr(_THREAD, "limited", False):
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="openmp")
    _THREAD.limited = True


def _number(value: object) -> float:
    return math.nan if value is None else float(value)  # type: ignore[arg-type]


def compile_fast_path(model: object) -> FastPath | None:
    """The numpy fast path of a fitted model, or ``None`` when its shape is not the known one."""
    if not isinstance(model, TunedThresholdClassifierCV):
        return None
    pipeline = model.estimator_
    if not (isinstance(pipeline, Pipeline) and len(pipeline.steps) == 2):
        return None
    prep, classifier = pipeline.steps[0][1], pipeline.steps[1][1]
    if not (
        isinstance(prep, ColumnTransformer)
        and isinstance(classifier, HistGradientBoostingClassifier)
        and not hasattr(classifier, "feature_names_in_")
        and not prep.sparse_output_
        and list(model.classes_) == [0, 1]
    ):
        return None
    fitted = [(t, cols) for _, t, cols in prep.transformers_ if t != "drop"]
    if len(fitted) != 2:
        return None
    (scaler, numeric), (encoder, categorical) = fitted
    if not (
        isinstance(scaler, StandardScaler)
        and isinstance(encoder, OneHotEncoder)
        and len(categorical) == 1
        and encoder.drop is None
        and encoder.handle_unknown == "ignore"
        and getattr(encoder, "infrequent_categories_", [None]) == [None]
    ):
        return None
    n = len(numeric)
    mean = scaler.mean_ if scaler.mean_ is not None else np.zeros(n)
    scale = scaler.scale_ if scaler.scale_ is not None else np.ones(n)
    categories = [str(c) for c in encoder.categories_[0]]
    return FastPath(
        numeric=tuple(numeric),
        categorical=categorical[0],
        categories={c: i for i, c in enumerate(categories)},
        n_categories=len(categories),
        mean=np.asarray(mean, dtype=np.float64),
        scale=np.asarray(scale, dtype=np.float64),
        classifier=classifier,
        threshold=float(model.best_threshold_),
        classes=np.asarray(model.classes_),
        forest=compile_forest(classifier),
    )


def probe_rows(fast: FastPath) -> list[dict[str, object]]:
    """Rows around the training distribution, every segment plus an unknown one."""
    rows = []
    for k, segment in enumerate([*fast.categories, "no-such-segment"]):
        for z in (-1.5, 0.0, 0.7, 2.5):
            row: dict[str, object] = {
                c: float(m + (z + 0.1 * k) * s)
                for c, m, s in zip(fast.numeric, fast.mean, fast.scale, strict=True)
            }
            row[fast.categorical] = segment
            rows.append(row)
    return rows


@dataclass(frozen=True)
class LoadedModel:
    """One registered version, ready to score."""

    name: str
    alias: str
    version: int
    model: object
    fast: FastPath | None = None

    def score(self, features: pd.DataFrame) -> tuple[list[float], list[int]]:
        """Churn probabilities and decisions for a feature frame (the model's own API)."""
        inputs = model_input(features)
        probability = self.model.predict_proba(inputs)[:, 1]  # type: ignore[attr-defined]
        prediction = self.model.predict(inputs)  # type: ignore[attr-defined]
        return [float(p) for p in probability], [int(p) for p in prediction]

    def score_rows(self, rows: Sequence[Mapping[str, object]]) -> tuple[list[float], list[int]]:
        """Churn probabilities and decisions for feature dicts (fast path when available)."""
        if self.fast is not None:
            return self.fast.score(rows)
        return self.score(pd.DataFrame(list(rows), columns=list(FEATURE_COLUMNS)))


def check_fast_path(model: object, fast: FastPath) -> None:
    """Refuse a fast path that does not give the model's own answers on the probe rows."""
    rows = probe_rows(fast)
    frame = model_input(pd.DataFrame(rows, columns=list(FEATURE_COLUMNS)))
    expected = model.predict_proba(frame)[:, 1]  # type: ignore[attr-defined]
    decisions = model.predict(frame)  # type: ignore[attr-defined]
    probability, labels = fast.score(rows)
    if not (np.array_equal(expected, probability) and np.array_equal(decisions, labels)):
        raise ModelLoadError("fast path disagrees with the model on probe rows")


def load_version(settings: Settings, version: int, alias: str = CHAMPION) -> LoadedModel:
    """Load one registered version and prepare (and check) its fast path."""
    try:
        model = registry.load_version(settings, version)
    except Exception as error:  # any artifact, format or registry failure refuses the version
        raise ModelLoadError(f"cannot load {settings.model_name} v{version}: {error}") from error
    fast = compile_fast_path(model)
    if fast is not None:
        try:
            check_fast_path(model, fast)
        except ModelLoadError:
            log.exception("v%s: serving through the model's own predict_proba", version)
            fast = None
    return LoadedModel(settings.model_name, alias, version, model, fast)


def load_model(settings: Settings, alias: str = CHAMPION) -> LoadedModel:
    """Resolve ``alias`` to a version and load that version (so the version is exact)."""
    version = alias_version(settings, alias)
    if version is None:
        raise ModelLoadError(f"alias {alias!r} of {settings.model_name} is not set")
    return load_version(settings, version, alias)
