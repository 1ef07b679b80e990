"""Point-in-time correctness of every retrieval path, on a hand-made dataset.

The expected values below were worked out by hand from the snapshot rows.
"""

from datetime import UTC, datetime

import pandas as pd
import pytest

from data import delta_tables
from data.store import (
    apply_feature_definitions,
    get_feature_store,
    get_online_features,
    get_training_frame,
    materialize,
)


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def snapshot(customer: int, at: str, created: str, ltv: float, day: str) -> dict:
    return {
        "customer_id": customer,
        "event_timestamp": ts(at),
        "created_timestamp": ts(created),
        "snapshot_date": day,
        "total_orders_30d": 1,
        "total_spend_30d": ltv,
        "avg_order_value": ltv,
        "days_since_last_order": 0,
        "customer_segment": "budget",
        "lifetime_value": ltv,
    }


SNAPSHOTS = pd.DataFrame(
    [
        snapshot(1, "2026-01-01 23:59:59", "2026-01-02 00:00", 10.0, "2026-01-01"),
        snapshot(1, "2026-01-10 23:59:59", "2026-01-11 00:00", 20.0, "2026-01-10"),
        # Same event time, created later: a recomputation that must win the tie.
        snapshot(1, "2026-01-10 23:59:59", "2026-01-11 06:00", 25.0, "2026-01-10"),
        snapshot(2, "2026-01-05 23:59:59", "2026-01-06 00:00", 50.0, "2026-01-05"),
        # Far older than the 90-day TTL at the entity times below.
        snapshot(3, "2025-06-01 23:59:59", "2025-06-02 00:00", 70.0, "2025-06-01"),
    ]
)
ENTITY_ROWS = pd.DataFrame(
    {
        "customer_id": [1, 2, 1, 3, 9, 1],
        "event_timestamp": [
            ts("2026-01-05 12:00"),  # Jan 1 row; the Jan 10 rows are in its future
            ts("2026-01-04 12:00"),  # customer 2's only row (Jan 5) is in the future
            ts("2026-01-11 12:00"),  # tie on Jan 10: the later-created row
            ts("2026-01-11 12:00"),  # only row is older than the TTL
            ts("2026-01-11 12:00"),  # unknown customer
            ts("2026-01-05 12:00"),  # the same entity row twice
        ],
        "label": [0, 1, 2, 3, 4, 5],
    }
)
EXPECTED_LTV = [10.0, None, 25.0, None, None, 10.0]


@pytest.fixture
def store(state):
    delta_tables.replace_from(
        state.storage.customer_features_path, SNAPSHOTS, "snapshot_date", "2025-01-01"
    )
    apply_feature_definitions(state)
    feature_store = get_feature_store(state)
    return feature_store


def ltv_values(frame: pd.DataFrame) -> list[float | None]:
    return [None if pd.isna(v) else float(v) for v in frame["lifetime_value"]]


def test_historical_retrieval_is_point_in_time_correct(store, state):
    frame = get_training_frame(store, ENTITY_ROWS, "customer_features_v1")
    assert len(frame) == len(ENTITY_ROWS), "one output row per entity row, none dropped"
    assert frame["label"].tolist() == ENTITY_ROWS["label"].tolist(), "input order kept"
    assert ltv_values(frame) == EXPECTED_LTV


def test_historical_retrieval_reads_the_current_delta_version(store, state):
    corrected = pd.DataFrame(
        [snapshot(1, "2026-01-01 23:59:59", "2026-01-03 00:00", 11.0, "2026-01-01")]
    )
    delta_tables.replace_partitions(
        state.storage.customer_features_path, corrected, "snapshot_date"
    )
    frame = get_training_frame(store, ENTITY_ROWS, "customer_features_v1")
    assert ltv_values(frame) == [11.0, None, 25.0, None, None, 11.0]


def test_online_store_serves_the_latest_row(store, state):
    materialize(
        store,
        datetime(2025, 1, 1, tzinfo=UTC),
        datetime(2026, 2, 1, tzinfo=UTC),
        ["customer_features_v1"],
    )
    online = get_online_features(store, [1, 2, 9], "customer_features_v1")
    assert ltv_values(online) == [25.0, 50.0, None]
