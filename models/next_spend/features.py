"""The features this model brings: the ``customer_rhythm`` view (declared here, once).

Only declarations, importing only the core: the Feast definition file
(``feature_repo/next_spend.py``) derives its ``Field``s from them, the spec its inputs.
"""

from __future__ import annotations

from core.schema import Feature

RHYTHM_TABLE = "customer_rhythm"  # the Delta table, <state>/delta/customer_rhythm
OWNER = "ml-platform"

ORDERS_7D = Feature("orders_7d", "int64", "Orders in the last 7 days.", OWNER, min_value=0)
SPEND_7D = Feature("spend_7d", "float64", "Spend in the last 7 days.", OWNER, min_value=0)
SPEND_PREV_30D = Feature(
    "spend_prev_30d", "float64", "Spend in the 30 days before the last 30.", OWNER, min_value=0
)
ACTIVE_DAYS_30D = Feature(
    "active_days_30d", "int64", "Days with an order in the last 30 days.", OWNER, min_value=0
)

RHYTHM_FEATURES: tuple[Feature, ...] = (ORDERS_7D, SPEND_7D, SPEND_PREV_30D, ACTIVE_DAYS_30D)
