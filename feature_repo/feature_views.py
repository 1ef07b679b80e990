"""Feast feature views."""

from datetime import timedelta

from data_sources import customer_snapshots_push
from entities import customer
from feast import FeatureView, Field
from feast.types import Float64, Int64, String

from feature_repo.settings import get_settings

customer_features = FeatureView(
    name="customer_features",
    entities=[customer],
    ttl=timedelta(days=get_settings().feature_ttl_days),
    schema=[
        Field(name="total_orders_30d", dtype=Int64, description="Orders in the last 30 days."),
        Field(name="total_spend_30d", dtype=Float64, description="Spend in the last 30 days."),
        Field(name="avg_order_value", dtype=Float64, description="Lifetime spend per order."),
        Field(name="days_since_last_order", dtype=Int64, description="Days since last order."),
        Field(name="customer_segment", dtype=String, description="budget/regular/premium."),
        Field(name="lifetime_value", dtype=Float64, description="Lifetime spend."),
    ],
    online=True,
    source=customer_snapshots_push,
    tags={"team": "churn", "owner": "ml-platform"},
)
