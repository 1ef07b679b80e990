"""Feast feature views."""

from collections.abc import Sequence
from datetime import timedelta

from data_sources import customer_snapshots_push
from entities import customer
from feast import FeatureView, Field
from feast.types import Float64, Int64, String

from core.schema import CUSTOMER_FEATURES, Feature
from core.settings import get_settings

FEAST_TYPES = {"int64": Int64, "float64": Float64, "string": String}


def fields_of(features: Sequence[Feature]) -> list[Field]:
    """The Feast schema of declared features (every model's view derives its own so)."""
    return [
        Field(
            name=f.name,
            dtype=FEAST_TYPES[f.dtype],
            description=f.description,
            tags={"owner": f.owner},
        )
        for f in features
    ]


customer_features = FeatureView(
    name="customer_features",
    entities=[customer],
    ttl=timedelta(days=get_settings().feature_ttl_days),
    schema=fields_of(CUSTOMER_FEATURES),
    online=True,
    source=customer_snapshots_push,
    tags={"team": "churn", "owner": "ml-platform"},
)
