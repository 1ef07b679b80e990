"""Fresh features between batch runs: an arriving order updates its customer online at once.

The batch path recomputes snapshots from Delta once a day. In between, each new order is
folded into the customer's current online vector and pushed through Feast's push source
(``customer_snapshots_push``), so serving sees it within milliseconds. The next batch run
materializes the day's snapshot, recomputed from the ingested orders, over it.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from feast import FeatureStore
from feast.data_source import PushMode

from core.schema import (
    AVG_ORDER_VALUE,
    CUSTOMER_SEGMENT,
    DAYS_SINCE_LAST_ORDER,
    FEATURE_COLUMNS,
    LIFETIME_VALUE,
    TOTAL_ORDERS_30D,
    TOTAL_SPEND_30D,
)
from data.store import get_online_features, unknown_entities

PUSH_SOURCE = "customer_snapshots_push"


def fold_order(current: Mapping[str, object] | None, order: Mapping[str, object]) -> dict:
    """A customer's feature vector after one more order (``current`` None: a new customer).

    Windows are not aged here: an order older than 30 days leaves ``total_*_30d`` at the
    next batch run, which recomputes every window from the ingested orders.
    """
    amount = float(order["amount"])
    if current is None:
        orders_30d, spend_30d, lifetime_value, lifetime_orders = 0, 0.0, 0.0, 0
    else:
        orders_30d = int(current[TOTAL_ORDERS_30D.name])
        spend_30d = float(current[TOTAL_SPEND_30D.name])
        lifetime_value = float(current[LIFETIME_VALUE.name])
        average = float(current[AVG_ORDER_VALUE.name])
        lifetime_orders = round(lifetime_value / average) if average > 0 else 0
    lifetime_value += amount
    lifetime_orders += 1
    return {
        TOTAL_ORDERS_30D.name: orders_30d + 1,
        TOTAL_SPEND_30D.name: round(spend_30d + amount, 2),
        AVG_ORDER_VALUE.name: round(lifetime_value / lifetime_orders, 2),
        DAYS_SINCE_LAST_ORDER.name: 0,
        CUSTOMER_SEGMENT.name: str(order["customer_segment"]),
        LIFETIME_VALUE.name: round(lifetime_value, 2),
    }


def push_order(store: FeatureStore, order: Mapping[str, object], feature_service: str) -> dict:
    """Fold ``order`` into its customer's online features and push the result online."""
    customer_id = int(order["customer_id"])
    online = get_online_features(store, [customer_id], feature_service)
    current = None if unknown_entities(online) else online.iloc[0].to_dict()
    vector = fold_order(current, order)
    at = pd.Timestamp(order["order_timestamp"]).tz_convert("UTC")
    row = pd.DataFrame(
        [
            {
                "customer_id": customer_id,
                "event_timestamp": at,
                # Computed from this order alone, so created with it.
                "created_timestamp": at,
                **{c: vector[c] for c in FEATURE_COLUMNS},
            }
        ]
    )
    store.push(PUSH_SOURCE, row, to=PushMode.ONLINE)
    return vector
