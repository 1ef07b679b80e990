"""The feature schema: each feature is declared here once, and only here.

Every other view of a feature is derived from :data:`CUSTOMER_FEATURES`: the Feast
``Field``s (``feature_repo/feature_views.py``), the columns the transforms write
(``data/transforms.py``, ``data/freshness.py``), the served pydantic models
(``serving/service.py``), the prediction-log columns (``serving/prediction_log.py``), the
model-input casts (:func:`model_input`), the training-set suite's column expectations
(``expectations/validation.py``), the drift report's column roles and the bench's synthetic
frames. Renaming a feature is one edit of its ``name`` below
(``tests/core/test_schema.py`` proves it on a copy of the tree).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

OWNER = "ml-platform"
ENTITY_KEY = "customer_id"
# The ids an ENTITY_KEY may take, everywhere: ingress refuses an order outside them
# (expectations/validation.py) and the API a request (serving/service.py). The top is the
# largest integer a JSON client that reads numbers as doubles (JavaScript) holds exactly: an
# id above it would come back from such a client as another customer.
ENTITY_ID_MIN = 1
ENTITY_ID_MAX = 2**53 - 1
# The longest string id the API takes (a spec whose entity_key_dtype is "string"): far above
# any real id format (a UUID is 36), low enough that a request cannot ask the online store
# for megabyte-long keys.
ENTITY_STRING_MAX_LENGTH = 128
EVENT_TIMESTAMP = "event_timestamp"
CREATED_TIMESTAMP = "created_timestamp"
CUSTOMER_SEGMENTS = ("budget", "regular", "premium")

Dtype = Literal["int64", "float64", "string"]
# The types an entity key may have: Feast's INT64 and STRING join keys.
EntityKeyDtype = Literal["int64", "string"]


@dataclass(frozen=True)
class EntityKey:
    """An entity models predict for, declared once: its Feast entity's name, its join key,
    the key's type, what it is and who owns it.

    The Feast entity is derived from it (``feature_repo/entities.py``: ``entity_of``),
    and a spec names it (``ModelSpec.entity``): serving, the prediction log, batch scoring,
    parity and the API's request model take the key and its type from there. A ``string``
    key may carry a ``pattern`` (a regular expression every id must match).
    """

    name: str
    join_key: str
    dtype: EntityKeyDtype = "int64"
    description: str = ""
    owner: str = OWNER
    pattern: str | None = None  # string keys only, e.g. r"^\d{4}-[A-Z]{5}$"

    def __post_init__(self) -> None:
        if self.dtype not in ("int64", "string"):
            raise ValueError(f"entity {self.name}: dtype {self.dtype!r} is not int64 or string")
        if self.pattern is not None and self.dtype != "string":
            raise ValueError(f"entity {self.name}: a pattern needs dtype 'string'")
        if not self.join_key.isidentifier():
            raise ValueError(f"entity {self.name}: join key {self.join_key!r} is not a name")


# The shop's customer, shared by every model that predicts for customers.
CUSTOMER = EntityKey(
    name="customer",
    join_key=ENTITY_KEY,
    dtype="int64",
    description="A customer of the shop, keyed by its numeric id.",
)


@dataclass(frozen=True)
class Feature:
    """One feature: its name, type, meaning, owner and the values it may take."""

    name: str
    dtype: Dtype
    description: str
    owner: str = OWNER
    min_value: float | None = None  # inclusive lower bound (numeric features)
    values: tuple[str, ...] | None = None  # the allowed values (categorical features)

    @property
    def kind(self) -> Literal["numeric", "categorical"]:
        """How a model and a drift report treat it."""
        return "categorical" if self.dtype == "string" else "numeric"

    @property
    def served_type(self) -> type:
        """The Python type the API serves it as (numbers as float, as the model sees them)."""
        return str if self.kind == "categorical" else float


TOTAL_ORDERS_30D = Feature("total_orders_30d", "int64", "Orders in the last 30 days.", min_value=0)
TOTAL_SPEND_30D = Feature("total_spend_30d", "float64", "Spend in the last 30 days.", min_value=0)
AVG_ORDER_VALUE = Feature("avg_order_value", "float64", "Lifetime spend per order.", min_value=0)
DAYS_SINCE_LAST_ORDER = Feature(
    "days_since_last_order", "int64", "Days since the last order.", min_value=0
)
CUSTOMER_SEGMENT = Feature(
    "customer_segment", "string", "Latest segment: budget/regular/premium.",
    values=CUSTOMER_SEGMENTS,
)  # fmt: skip
LIFETIME_VALUE = Feature("lifetime_value", "float64", "Lifetime spend.", min_value=0)

CUSTOMER_FEATURES: tuple[Feature, ...] = (
    TOTAL_ORDERS_30D,
    TOTAL_SPEND_30D,
    AVG_ORDER_VALUE,
    DAYS_SINCE_LAST_ORDER,
    CUSTOMER_SEGMENT,
    LIFETIME_VALUE,
)

FEATURE_COLUMNS = tuple(f.name for f in CUSTOMER_FEATURES)
NUMERIC_FEATURES = tuple(f.name for f in CUSTOMER_FEATURES if f.kind == "numeric")
CATEGORICAL_FEATURES = tuple(f.name for f in CUSTOMER_FEATURES if f.kind == "categorical")

_PANDAS_DTYPES = {"int64": "int64", "float64": "float64", "string": "object"}


def pandas_dtype(feature: Feature) -> str:
    """The dtype a feature column has in the Delta tables and frames."""
    return _PANDAS_DTYPES[feature.dtype]


def empty_feature_columns(
    features: Sequence[Feature] = CUSTOMER_FEATURES,
) -> dict[str, pd.Series]:
    """Empty, typed columns of ``features`` (for frames that have no rows)."""
    return {f.name: pd.Series(dtype=pandas_dtype(f)) for f in features}


def model_input(
    frame: pd.DataFrame, features: Sequence[Feature] = CUSTOMER_FEATURES
) -> pd.DataFrame:
    """The model's input columns with the types its signature declares (numbers as float)."""
    inputs = frame[[f.name for f in features]].copy()
    numeric = [f.name for f in features if f.kind == "numeric"]
    inputs[numeric] = inputs[numeric].astype("float64")
    for feature in features:
        if feature.kind == "categorical":
            inputs[feature.name] = inputs[feature.name].astype("object")
    return inputs


def feature_expectations(
    features: Sequence[Feature] = CUSTOMER_FEATURES,
) -> list[dict[str, Any]]:
    """Great Expectations column expectations every feature column of a frame must meet."""
    expectations: list[dict[str, Any]] = []
    for feature in features:
        column = {"column": feature.name}
        expectations.append({"type": "expect_column_values_to_not_be_null", "kwargs": column})
        if feature.values is not None:
            expectations.append(
                {
                    "type": "expect_column_values_to_be_in_set",
                    "kwargs": {**column, "value_set": list(feature.values)},
                }
            )
        if feature.min_value is not None:
            expectations.append(
                {
                    "type": "expect_column_values_to_be_between",
                    "kwargs": {**column, "min_value": feature.min_value, "max_value": None},
                }
            )
    return expectations
