"""Pure transforms from raw order events to customer feature snapshots, and the helpers the
models' own tables share (the daily order grid, the day stamps, the label grid).

A snapshot for day ``d`` describes a customer at the end of that day (orders on ``d``
included) and is stamped ``d 23:59:59 UTC``; a model's label of day ``d`` carries the same
stamp.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from core.schema import (
    AVG_ORDER_VALUE,
    CUSTOMER_SEGMENT,
    DAYS_SINCE_LAST_ORDER,
    FEATURE_COLUMNS,
    LIFETIME_VALUE,
    TOTAL_ORDERS_30D,
    TOTAL_SPEND_30D,
    empty_feature_columns,
)

WINDOW_DAYS = 30


def end_of_day(day: date) -> pd.Timestamp:
    """The last second of ``day`` (UTC): the stamp of a whole day's snapshot or label."""
    return pd.Timestamp(datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC))


def snapshot_timestamp(day: date, as_of: datetime) -> pd.Timestamp:
    """The event timestamp of ``day``'s snapshot: the end of the day, or ``as_of`` if earlier.

    A snapshot of a day that has not ended yet is stamped with the time it was computed
    (``as_of``, the platform's clock), so no feature row has an event time in the future:
    Feast's incremental materialization windows end at "now" and would never reach it.
    """
    return min(end_of_day(day), pd.Timestamp(as_of).tz_convert("UTC").floor("s"))


def daily_order_grid(
    orders: pd.DataFrame, first_day: date, last_day: date
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-customer, per-day order counts and spend as dense matrices (customers x days).

    Returns the sorted customer ids, then counts and spend of shape (customers, days), day
    0 being ``first_day``; orders outside ``[first_day, last_day]`` are left out.
    """
    customers = np.sort(orders["customer_id"].unique())
    n_days = (last_day - first_day).days + 1
    order_days = (
        orders["order_timestamp"].dt.tz_convert("UTC").dt.normalize().dt.tz_localize(None)
        - pd.Timestamp(first_day)
    ).dt.days.to_numpy()
    rows = np.searchsorted(customers, orders["customer_id"].to_numpy())
    keep = (order_days >= 0) & (order_days < n_days)
    counts = np.zeros((len(customers), n_days), dtype=np.int64)
    spend = np.zeros((len(customers), n_days), dtype=np.float64)
    np.add.at(counts, (rows[keep], order_days[keep]), 1)
    np.add.at(spend, (rows[keep], order_days[keep]), orders["amount"].to_numpy()[keep])
    return customers, counts, spend


def _latest_segment(orders: pd.DataFrame) -> pd.Series:
    ordered = orders.sort_values("order_timestamp")
    return ordered.groupby("customer_id")["customer_segment"].last()


def compute_customer_snapshots(
    orders: pd.DataFrame, snapshot_days: Sequence[date], created_at: datetime
) -> pd.DataFrame:
    """Feature snapshots of every customer seen by each day in ``snapshot_days``.

    Windows are ``(d - 30 days, d]``; the average order value and the lifetime value cover
    the customer's whole history up to ``d``. Customers with no order yet have no row.
    """
    if orders.empty or not snapshot_days:
        return _empty_snapshots()
    first_day = orders["order_timestamp"].min().date()
    last_day = max(snapshot_days)
    customers, counts, spend = daily_order_grid(orders, first_day, last_day)
    orders_cum = np.cumsum(counts, axis=1)
    spend_cum = np.cumsum(spend, axis=1)
    # Index of the latest day with an order, carried forward (-1: none yet).
    day_index = np.arange(counts.shape[1])
    last_order = np.maximum.accumulate(np.where(counts > 0, day_index, -1), axis=1)
    segments = _latest_segment(orders).reindex(customers).to_numpy()

    frames = []
    for day in sorted(set(snapshot_days)):
        d = (day - first_day).days
        if d < 0:
            continue
        seen = last_order[:, d] >= 0
        lookback = d - WINDOW_DAYS
        orders_30d = orders_cum[:, d] - (orders_cum[:, lookback] if lookback >= 0 else 0)
        spend_30d = spend_cum[:, d] - (spend_cum[:, lookback] if lookback >= 0 else 0)
        lifetime_orders = orders_cum[:, d]
        lifetime_value = spend_cum[:, d]
        with np.errstate(invalid="ignore", divide="ignore"):
            avg_value = np.where(lifetime_orders > 0, lifetime_value / lifetime_orders, 0.0)
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": customers[seen],
                    "event_timestamp": snapshot_timestamp(day, created_at),
                    "snapshot_date": day.isoformat(),
                    TOTAL_ORDERS_30D.name: orders_30d[seen].astype("int64"),
                    TOTAL_SPEND_30D.name: np.round(spend_30d[seen], 2),
                    AVG_ORDER_VALUE.name: np.round(avg_value[seen], 2),
                    DAYS_SINCE_LAST_ORDER.name: (d - last_order[seen, d]).astype("int64"),
                    CUSTOMER_SEGMENT.name: segments[seen],
                    LIFETIME_VALUE.name: np.round(lifetime_value[seen], 2),
                }
            )
        )
    if not frames:
        return _empty_snapshots()
    snapshots = pd.concat(frames, ignore_index=True)
    snapshots["created_timestamp"] = pd.Timestamp(created_at).tz_convert("UTC")
    return snapshots[list(SNAPSHOT_COLUMNS)]


SNAPSHOT_COLUMNS = (
    "customer_id",
    "event_timestamp",
    "created_timestamp",
    "snapshot_date",
    *FEATURE_COLUMNS,
)


def _empty_snapshots() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series(dtype="int64"),
            "event_timestamp": pd.Series(dtype="datetime64[ns, UTC]"),
            "created_timestamp": pd.Series(dtype="datetime64[ns, UTC]"),
            "snapshot_date": pd.Series(dtype="object"),
            **empty_feature_columns(),
        }
    )


def label_days(anchor: date, first: date, last: date, every_days: int) -> list[date]:
    """The label dates in ``[first, last]`` on a grid of one day in ``every_days`` that
    starts at ``anchor`` (the first day of data), so every run samples the same days and
    the grid moves with the data, never with the calendar."""
    return [
        first + timedelta(days=i)
        for i in range((last - first).days + 1)
        if (first + timedelta(days=i) - anchor).days % every_days == 0
    ]


def orders_after(
    orders: pd.DataFrame,
    keys: pd.DataFrame,
    horizon_days: int,
    observed_until: pd.Timestamp,
) -> pd.DataFrame:
    """What each customer ordered in the ``horizon_days`` after each time in ``keys``.

    ``keys`` holds ``customer_id`` and ``predicted_at`` (UTC); every distinct pair gets one
    row with ``orders_after`` (count) and ``spend_after`` (sum of ``amount``) over the
    orders with ``predicted_at < order_timestamp <= predicted_at + horizon``. Only pairs
    whose whole horizon was observed (``predicted_at + horizon <= observed_until``) are
    returned: an outcome not known yet is absent, never a zero.
    """
    horizon = pd.Timedelta(days=horizon_days)
    pairs = keys[["customer_id", "predicted_at"]].drop_duplicates()
    pairs = pairs[pairs["predicted_at"] + horizon <= observed_until].reset_index(drop=True)
    result = pairs.assign(orders_after=0, spend_after=0.0)
    if pairs.empty or orders.empty:
        return result.astype({"orders_after": "int64", "spend_after": "float64"})
    near = orders[["customer_id", "order_timestamp", "amount"]].merge(pairs, on="customer_id")
    inside = near[
        (near["order_timestamp"] > near["predicted_at"])
        & (near["order_timestamp"] <= near["predicted_at"] + horizon)
    ]
    totals = inside.groupby(["customer_id", "predicted_at"], as_index=False).agg(
        orders_after=("amount", "size"), spend_after=("amount", "sum")
    )
    result = pairs.merge(totals, on=["customer_id", "predicted_at"], how="left")
    return result.fillna({"orders_after": 0, "spend_after": 0.0}).astype(
        {"orders_after": "int64", "spend_after": "float64"}
    )


def observed_until(event_dates: Sequence[date], now: datetime) -> pd.Timestamp:
    """The end of the orders seen so far: the end of the last landed day (or now, if earlier).

    A day's batch lands whole, so orders up to the end of the last landed day are known.
    """
    if not event_dates:
        return pd.Timestamp.min.tz_localize("UTC")
    last = max(event_dates)
    end = pd.Timestamp(datetime(last.year, last.month, last.day, tzinfo=UTC)) + pd.Timedelta(days=1)
    return min(end, pd.Timestamp(now).tz_convert("UTC"))
