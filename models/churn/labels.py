"""Churn's labels: a customer active at a label day (an order in the ``HORIZON_DAYS`` up to
it) is churned when no order follows within the ``HORIZON_DAYS`` after it.

The feature pipeline computes them into the ``churn_labels`` Delta table (``LABEL_TABLE``,
declared by the spec), on a weekly grid anchored at the first landed day of orders. A
label's future includes the days after it, so a changed day rewrites the labels from
``HORIZON_DAYS`` before it on (the table's ``lookback_days``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from core.schema import ENTITY_KEY, EVENT_TIMESTAMP
from core.spec import FeatureTable
from data.transforms import daily_order_grid, end_of_day, label_days

LABEL = "churned"
HORIZON_DAYS = 30  # no order within this many days after a label day: churned
LABEL_EVERY_DAYS = 7
LABEL_PARTITION = "label_date"


def compute_churn_labels(
    orders: pd.DataFrame, label_days: Sequence[date], data_end: date, horizon_days: int
) -> pd.DataFrame:
    """Churn labels for customers active at each day (an order within the trailing horizon).

    Only days whose whole horizon lies inside the observed data (``d + horizon <= data_end``)
    get labels: a shorter future cannot say that a customer stopped.
    """
    columns = {
        ENTITY_KEY: pd.Series(dtype="int64"),
        EVENT_TIMESTAMP: pd.Series(dtype="datetime64[ns, UTC]"),
        LABEL_PARTITION: pd.Series(dtype="object"),
        LABEL: pd.Series(dtype="int64"),
    }
    days = sorted(d for d in set(label_days) if d + timedelta(days=horizon_days) <= data_end)
    if orders.empty or not days:
        return pd.DataFrame(columns)
    first_day = orders["order_timestamp"].min().date()
    customers, counts, _ = daily_order_grid(orders, first_day, data_end)
    orders_cum = np.cumsum(counts, axis=1)
    frames = []
    for day in days:
        d = (day - first_day).days
        if d < 0:
            continue
        past_start = d - horizon_days
        recent = orders_cum[:, d] - (orders_cum[:, past_start] if past_start >= 0 else 0)
        future = orders_cum[:, d + horizon_days] - orders_cum[:, d]
        active = recent > 0
        frames.append(
            pd.DataFrame(
                {
                    ENTITY_KEY: customers[active],
                    EVENT_TIMESTAMP: end_of_day(day),
                    LABEL_PARTITION: day.isoformat(),
                    LABEL: (future[active] == 0).astype("int64"),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns)
    return pd.concat(frames, ignore_index=True)


def compute_label_rows(
    orders: pd.DataFrame, days: Sequence[date], created_at: datetime
) -> pd.DataFrame:
    """The labels of the grid days among ``days`` (which run to the last day of orders).

    The grid is anchored at the first landed day of orders (their ``event_date``), so every
    run labels the same days. ``created_at`` is not needed: a label exists only once its
    whole horizon has landed, so it is stamped with the end of its day.
    """
    if orders.empty or not days:
        return compute_churn_labels(orders, [], date.min, HORIZON_DAYS)
    anchor = date.fromisoformat(str(orders["event_date"].min()))
    grid = label_days(anchor, min(days), max(days), LABEL_EVERY_DAYS)
    return compute_churn_labels(orders, grid, max(days), HORIZON_DAYS)


LABEL_TABLE = FeatureTable(
    name="churn_labels",
    features=(),
    compute=compute_label_rows,
    partition=LABEL_PARTITION,
    lookback_days=HORIZON_DAYS,
)
