"""Customer snapshot rows for the online-store tests: given spends at one time."""

from __future__ import annotations

import pandas as pd


def snapshots(values: dict[int, float], at: str) -> pd.DataFrame:
    """One snapshot row per customer (``values``: customer -> spend) at ``at`` (UTC)."""
    ts = pd.Timestamp(at, tz="UTC")
    return pd.DataFrame(
        {
            "customer_id": list(values),
            "event_timestamp": ts,
            "created_timestamp": ts,
            "snapshot_date": ts.date().isoformat(),
            "total_orders_30d": 2,
            "total_spend_30d": list(values.values()),
            "avg_order_value": 1.0,
            "days_since_last_order": 3,
            "customer_segment": "premium",
            "lifetime_value": list(values.values()),
        }
    )
