"""Outcomes of logged predictions, read from the lake as of each prediction's time.

Labels arrive late: whether a customer churned, or what they spent, is known only once
the horizon after a prediction has passed and its orders have landed. The models' specs
turn these outcomes into their labels (``ModelSpec.outcomes``).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from core.settings import Settings
from data import delta_tables
from data.transforms import observed_until, orders_after


def read_orders_after(
    keys: pd.DataFrame, horizon_days: int, settings: Settings, as_of: datetime
) -> pd.DataFrame:
    """``orders_after`` for ``keys`` (``customer_id``, ``predicted_at``) over the raw orders.

    Only predictions whose horizon lies inside the landed orders, and before ``as_of``,
    are returned.
    """
    path = settings.storage.raw_orders_path
    days = delta_tables.partition_dates(path, "event_date")
    orders = (
        delta_tables.read_table(path, columns=["customer_id", "order_timestamp", "amount"])
        if days
        else pd.DataFrame(columns=["customer_id", "order_timestamp", "amount"])
    )
    return orders_after(orders, keys, horizon_days, observed_until(days, as_of))
