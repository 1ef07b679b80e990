"""The churn model: will a customer place no order in the next 30 days?

Labels come from churn's own ``churn_labels`` Delta table, which the feature pipeline
computes from its declaration (``models.churn.labels``: a customer active at a weekly label
date is churned when no order follows within the horizon); features are the six shared
customer features of ``customer_features_v1``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.schema import CUSTOMER_FEATURES
from core.spec import ModelSpec, Range
from models.churn.labels import HORIZON_DAYS, LABEL, LABEL_TABLE
from models.recipes import tree_pipeline

if TYPE_CHECKING:
    from datetime import datetime

    import pandas as pd

    from core.settings import Settings


def read_labels(settings: Settings) -> pd.DataFrame:
    """Churn's label table, as the feature pipeline wrote it."""
    from data import delta_tables

    labels = delta_tables.read_table(settings.storage.delta_table_path(LABEL_TABLE.name))
    return labels[["customer_id", "event_timestamp", LABEL]] if not labels.empty else labels


def label_versions(settings: Settings) -> dict[str, int]:
    """The Delta version of the labels table (lineage)."""
    from data import delta_tables

    path = settings.storage.delta_table_path(LABEL_TABLE.name)
    return {LABEL_TABLE.name: delta_tables.table_version(path) or 0}


def live_outcomes(keys: pd.DataFrame, settings: Settings, as_of: datetime) -> pd.DataFrame:
    """Churned or not, for each prediction whose horizon has passed by ``as_of``: no order
    in it."""
    from data.outcomes import read_orders_after

    after = read_orders_after(keys, HORIZON_DAYS, settings, as_of)
    return after.assign(**{LABEL: (after["orders_after"] == 0).astype("int64")})[
        ["customer_id", "predicted_at", LABEL]
    ]


def make_estimator(spec: ModelSpec, seed: int) -> Any:
    """Scaling + one-hot encoding + float32 rounding + gradient boosting, with the decision
    threshold tuned for F1.

    Churners are a small minority at any date, so the default 0.5 threshold trades F1
    away; scikit-learn's TunedThresholdClassifierCV picks the threshold by cross-validation.
    The trees see float32 numbers, as in the ONNX copy (``models.recipes.tree_pipeline``).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import TunedThresholdClassifierCV

    classifier = HistGradientBoostingClassifier(
        max_iter=150, learning_rate=0.08, max_leaf_nodes=15, random_state=seed
    )
    pipeline = tree_pipeline(spec, "classifier", classifier)
    return TunedThresholdClassifierCV(pipeline, scoring="f1", cv=3, random_state=seed)


SPEC = ModelSpec(
    name="churn",
    description="Will a customer place no order in the next 30 days?",
    registered_model="customer_churn_model",
    experiment="customer_churn",
    feature_service="customer_features_v1",
    features=CUSTOMER_FEATURES,
    task="classification",
    label=LABEL,
    build_labels=read_labels,
    label_tables=(LABEL_TABLE,),
    label_versions=label_versions,
    make_estimator=make_estimator,
    outcomes=live_outcomes,
    live_threshold=0.55,  # F1 on matured live labels: below it 3 days running, retrain
    alert_periods=3,
    rollback_margin=0.05,  # live F1 0.05 under the previous champion's, 3 days: roll back
    gate_metric="f1",
    min_score=0.75,
    output="churn",
    segment_by="customer_segment",
    search_space={
        "estimator__classifier__learning_rate": Range(0.02, 0.3, log=True),
        "estimator__classifier__max_leaf_nodes": Range(7, 63, kind="int"),
        "estimator__classifier__max_iter": Range(50, 300, kind="int"),
        "estimator__classifier__l2_regularization": Range(1e-4, 1.0, log=True),
    },
    training_suite="training_set",
    tags=("churn",),
    serves_default_routes=True,  # /predict kept its contract when models became specs
)
