"""Feast feature views."""

from datetime import timedelta

from data_sources import customer_snapshots_push
from entities import customer
from feast import FeatureView, Field
from feast.types import Float64, Int64, String

from core.schema import CUSTOMER_FEATURES
from core.settings import get_settings

FEAST_TYPES = {"int64": Int64, "float64": Float64, "string": String}

customer_features = FeatureView(
    name="customer_features",
    entities=[customer],
    ttl=timedelta(days=get_settings().feature_ttl_days),
    schema=[
        Field(
            name=f.name,
            dtype=FEAST_TYPES[f.dtype],
            description=f.description,
            tags={"owner": f.owner},
        )
        for f in CUSTOMER_FEATURES
    ],
    online=True,
    source=customer_snapshots_push,
    tags={"team": "churn", "owner": "ml-platform"},
)
