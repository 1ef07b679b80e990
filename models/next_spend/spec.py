"""Next-30-day spend: how much will a customer spend in the 30 days after a given day?

A regression on the customer entity. Its inputs are the six shared customer features plus
its own ``customer_rhythm`` view (features.py, computed by transforms.py in the feature
pipeline); its label is computed from the raw orders at training time (labels.py). The
gate compares RMSE (lower is better) on the same holdout.
"""

from __future__ import annotations

from typing import Any

from core.schema import CUSTOMER_FEATURES
from core.spec import FeatureTable, ModelSpec, Range
from models.next_spend.features import RHYTHM_FEATURES, RHYTHM_TABLE
from models.next_spend.labels import live_spend_outcomes, read_spend_labels, spend_label_versions
from models.next_spend.transforms import LABEL, compute_rhythm_features
from models.recipes import tree_pipeline


def make_estimator(spec: ModelSpec, seed: int) -> Any:
    """Scaling + one-hot encoding + float32 rounding + gradient-boosted regression trees
    (squared error); the trees see float32 numbers, as in the ONNX copy
    (``models.recipes.tree_pipeline``)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    regressor = HistGradientBoostingRegressor(
        max_iter=200, learning_rate=0.06, max_leaf_nodes=15, random_state=seed
    )
    return tree_pipeline(spec, "regressor", regressor)


SPEC = ModelSpec(
    name="next_spend",
    description="What will a customer spend in the next 30 days?",
    registered_model="customer_next_spend_model",
    experiment="customer_next_spend",
    feature_service="next_spend_v1",
    features=CUSTOMER_FEATURES + RHYTHM_FEATURES,
    task="regression",
    label=LABEL,
    build_labels=read_spend_labels,
    outcomes=live_spend_outcomes,
    live_threshold=650.0,  # RMSE on matured live labels: above it 3 days running, retrain
    alert_periods=3,
    rollback_margin=50.0,  # live RMSE 50 over the previous champion's, 3 days: roll back
    label_versions=spend_label_versions,
    make_estimator=make_estimator,
    gate_metric="rmse",
    # A first version must have an RMSE of at most this (currency units): on the simulated
    # data about 85% of the RMSE of always predicting the mean.
    min_score=550.0,
    output="spend_next_30d",
    segment_by="customer_segment",
    search_space={
        "regressor__learning_rate": Range(0.02, 0.3, log=True),
        "regressor__max_leaf_nodes": Range(7, 63, kind="int"),
        "regressor__max_iter": Range(50, 400, kind="int"),
    },
    training_suite="next_spend_training_set",
    feature_tables=(FeatureTable(RHYTHM_TABLE, RHYTHM_FEATURES, compute_rhythm_features),),
    tags=("spend", "regression"),
)
