"""Building blocks for the estimator recipes of model specs (``ModelSpec.make_estimator``)."""

from __future__ import annotations

from typing import Any

from core.spec import ModelSpec


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
