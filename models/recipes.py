"""Building blocks for the estimator recipes of model specs (``ModelSpec.make_estimator``)."""

from __future__ import annotations

from typing import Any

from core.spec import ModelSpec

# The pipeline step that rounds the preprocessed features to float32 before the trees.
FLOAT32_STEP = "float32"


def tabular_preprocessing(spec: ModelSpec) -> Any:
    """Scaling of the spec's numeric features and one-hot encoding of its categorical ones.

    A category never seen in training encodes as all zeros (``handle_unknown="ignore"``), as
    the ONNX copy does; both transforms convert with skl2onnx.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return ColumnTransformer(
        [
            ("numeric", StandardScaler(), list(spec.numeric_features)),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore"),
                list(spec.categorical_features),
            ),
        ]
    )


def float32_cast() -> Any:
    """``FunctionTransformer(np.float32)``: rounds the preprocessed features to float32.

    Put just before tree ensembles (:func:`tree_pipeline`), as skl2onnx's "Issues when
    switching to float" recommends: ONNX tree ensembles compare float32 inputs with float32
    thresholds, so trees that see float64 numbers in scikit-learn can send a row down
    another branch than their ONNX copy. With this step both sides feed the trees the same
    float32 numbers, and the trees are fitted on them too. A scikit-learn type rather than
    ``skl2onnx.sklapi.CastTransformer``: the logged model loads with scikit-learn alone and
    skops accepts it (``models.training.skops_trusted_types`` refuses any other library's
    type); ``models.onnx_model`` converts it to an ONNX ``Cast``.
    """
    import numpy as np
    from sklearn.preprocessing import FunctionTransformer

    return FunctionTransformer(np.float32, feature_names_out="one-to-one")


def tree_pipeline(spec: ModelSpec, name: str, trees: Any) -> Any:
    """``tabular_preprocessing``, then the float32 rounding, then ``trees`` (step ``name``).

    HistGradientBoosting reads the float32 values back as float64 exactly, so it learns and
    applies its thresholds on the numbers the ONNX copy scores (``models.onnx_model``).
    """
    from sklearn.pipeline import Pipeline

    return Pipeline(
        [("prep", tabular_preprocessing(spec)), (FLOAT32_STEP, float32_cast()), (name, trees)]
    )
