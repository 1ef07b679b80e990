"""Pure transforms of this model: the rhythm features and the next-30-day spend label.

Both follow the platform's time convention (``data.transforms``): a row for day ``d``
describes the customer at the end of ``d`` and is stamped with ``snapshot_timestamp(d)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from core.schema import CREATED_TIMESTAMP, ENTITY_KEY, EVENT_TIMESTAMP, empty_feature_columns
from data.transforms import daily_order_grid, end_of_day, snapshot_timestamp
from models.next_spend.features import (
    ACTIVE_DAYS_30D,
    ORDERS_7D,
    RHYTHM_FEATURES,
    SPEND_7D,
    SPEND_PREV_30D,
)

LABEL = "spend_next_30d"
HORIZON_DAYS = 30
LABEL_EVERY_DAYS = 7  # one label day a week, anchored at the first landed day of orders


def _trailing(cumulative: np.ndarray, d: int, days: int) -> np.ndarray:
    """Sum over the ``days`` days ending at index ``d`` from a cumulative matrix."""
    start = d - days
    return cumulative[:, d] - (cumulative[:, start] if start >= 0 else 0)


def compute_rhythm_features(
    orders: pd.DataFrame, days: Sequence[date], created_at: datetime
) -> pd.DataFrame:
    """Rhythm features of every customer seen by each of ``days`` (one row per customer, day)."""
    columns = [ENTITY_KEY, EVENT_TIMESTAMP, CREATED_TIMESTAMP, "snapshot_date"]
    if orders.empty or not days:
        return pd.DataFrame(
            {
                ENTITY_KEY: pd.Series(dtype="int64"),
                EVENT_TIMESTAMP: pd.Series(dtype="datetime64[ns, UTC]"),
                CREATED_TIMESTAMP: pd.Series(dtype="datetime64[ns, UTC]"),
                "snapshot_date": pd.Series(dtype="object"),
                **empty_feature_columns(RHYTHM_FEATURES),
            }
        )
    first_day = orders["order_timestamp"].min().date()
    customers, counts, spend = daily_order_grid(orders, first_day, max(days))
    orders_cum = np.cumsum(counts, axis=1)
    spend_cum = np.cumsum(spend, axis=1)
    active_cum = np.cumsum(counts > 0, axis=1)
    frames = []
    for day in sorted(set(days)):
        d = (day - first_day).days
        if d < 0:
            continue
        seen = orders_cum[:, d] > 0
        spend_60d = _trailing(spend_cum, d, 60)
        spend_30d = _trailing(spend_cum, d, 30)
        frames.append(
            pd.DataFrame(
                {
                    ENTITY_KEY: customers[seen],
                    EVENT_TIMESTAMP: snapshot_timestamp(day, created_at),
                    "snapshot_date": day.isoformat(),
                    ORDERS_7D.name: _trailing(orders_cum, d, 7)[seen].astype("int64"),
                    SPEND_7D.name: np.round(_trailing(spend_cum, d, 7)[seen], 2),
                    SPEND_PREV_30D.name: np.round((spend_60d - spend_30d)[seen], 2),
                    ACTIVE_DAYS_30D.name: _trailing(active_cum, d, 30)[seen].astype("int64"),
                }
            )
        )
    if not frames:  # every day before the first order
        return compute_rhythm_features(orders.iloc[0:0], [], created_at)
    rows = pd.concat(frames, ignore_index=True)
    rows[CREATED_TIMESTAMP] = pd.Timestamp(created_at).tz_convert("UTC")
    return rows[columns + [f.name for f in RHYTHM_FEATURES]]


def compute_spend_labels(
    orders: pd.DataFrame, label_days: Sequence[date], data_end: date
) -> pd.DataFrame:
    """What each customer active at a label day spent in the ``HORIZON_DAYS`` after it.

    Only days whose whole horizon lies inside the observed data get labels; a customer is
    active at ``d`` with an order in the 30 days up to ``d`` (the churn model's population).
    """
    empty = pd.DataFrame(
        {
            ENTITY_KEY: pd.Series(dtype="int64"),
            EVENT_TIMESTAMP: pd.Series(dtype="datetime64[ns, UTC]"),
            LABEL: pd.Series(dtype="float64"),
        }
    )
    days = sorted(d for d in set(label_days) if d + timedelta(days=HORIZON_DAYS) <= data_end)
    if orders.empty or not days:
        return empty
    first_day = orders["order_timestamp"].min().date()
    customers, counts, spend = daily_order_grid(orders, first_day, data_end)
    orders_cum, spend_cum = np.cumsum(counts, axis=1), np.cumsum(spend, axis=1)
    frames = []
    for day in days:
        d = (day - first_day).days
        if d < 0:
            continue
        active = _trailing(orders_cum, d, HORIZON_DAYS) > 0
        future = spend_cum[:, d + HORIZON_DAYS] - spend_cum[:, d]
        frames.append(
            pd.DataFrame(
                {
                    ENTITY_KEY: customers[active],
                    EVENT_TIMESTAMP: end_of_day(day),
                    LABEL: np.round(future[active], 2),
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else empty
