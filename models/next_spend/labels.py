"""The label of this model, read from the lake: next-30-day spend, as of each label day.

The lake is imported when labels are read, not with the spec: reading a spec stays cheap.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from core.settings import Settings


def read_spend_labels(settings: Settings) -> pd.DataFrame:
    """Labels on this model's weekly grid, computed from the raw orders Delta table."""
    import pandas as pd

    from data import delta_tables
    from data.transforms import label_days
    from models.next_spend.transforms import LABEL_EVERY_DAYS, compute_spend_labels

    days = delta_tables.partition_dates(settings.storage.raw_orders_path, "event_date")
    if not days:
        return compute_spend_labels(pd.DataFrame(), [], date.min)
    orders = delta_tables.read_table(
        settings.storage.raw_orders_path, columns=["customer_id", "order_timestamp", "amount"]
    )
    grid = label_days(min(days), min(days), max(days), LABEL_EVERY_DAYS)
    return compute_spend_labels(orders, grid, max(days))


def spend_label_versions(settings: Settings) -> dict[str, int]:
    """The raw orders' Delta version the labels are computed from (lineage)."""
    from data import delta_tables

    return {"raw_orders": delta_tables.table_version(settings.storage.raw_orders_path) or 0}


def live_spend_outcomes(keys: pd.DataFrame, settings: Settings, as_of: datetime) -> pd.DataFrame:
    """The spend of the 30 days after each prediction whose horizon has passed by ``as_of``."""
    from data.outcomes import read_orders_after
    from models.next_spend.transforms import HORIZON_DAYS, LABEL

    after = read_orders_after(keys, HORIZON_DAYS, settings, as_of)
    return after.rename(columns={"spend_after": LABEL})[["customer_id", "predicted_at", LABEL]]
