"""Feature transforms and the label grid against answers computed by hand."""

from datetime import UTC, date, datetime

import pandas as pd
import pytest

from data.transforms import compute_customer_snapshots


def orders(*rows: tuple[int, str, float, str]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows, columns=["customer_id", "order_timestamp", "amount", "customer_segment"]
    )
    frame["order_timestamp"] = pd.to_datetime(frame["order_timestamp"], utc=True)
    frame["order_id"] = [f"o-{i}" for i in range(len(frame))]
    return frame


HISTORY = orders(
    (1, "2026-01-01 10:00", 10.0, "budget"),
    (1, "2026-01-20 10:00", 30.0, "budget"),
    (1, "2026-02-15 09:00", 20.0, "regular"),  # segment changes with the latest order
    (2, "2026-02-01 12:00", 100.0, "premium"),
)


LATER = datetime(2026, 3, 1, tzinfo=UTC)  # computed after every snapshot day is over


def test_snapshot_values_match_hand_computation():
    snaps = compute_customer_snapshots(HISTORY, [date(2026, 1, 20), date(2026, 2, 15)], LATER)
    by_key = snaps.set_index(["customer_id", "snapshot_date"])

    c1_jan20 = by_key.loc[(1, "2026-01-20")]
    assert c1_jan20["total_orders_30d"] == 2  # Jan 1 and Jan 20 are within (Dec 21, Jan 20]
    assert c1_jan20["total_spend_30d"] == pytest.approx(40.0)
    assert c1_jan20["avg_order_value"] == pytest.approx(20.0)
    assert c1_jan20["days_since_last_order"] == 0
    assert c1_jan20["lifetime_value"] == pytest.approx(40.0)
    assert c1_jan20["customer_segment"] == "regular"  # latest known segment

    c1_feb15 = by_key.loc[(1, "2026-02-15")]
    assert c1_feb15["total_orders_30d"] == 2  # Jan 20 and Feb 15; Jan 1 fell out of the window
    assert c1_feb15["total_spend_30d"] == pytest.approx(50.0)
    assert c1_feb15["avg_order_value"] == pytest.approx(20.0)
    assert c1_feb15["lifetime_value"] == pytest.approx(60.0)

    c2_feb15 = by_key.loc[(2, "2026-02-15")]
    assert c2_feb15["days_since_last_order"] == 14
    assert c2_feb15["total_orders_30d"] == 1
    # Customer 2 had not ordered by Jan 20: no snapshot row then.
    assert (2, "2026-01-20") not in by_key.index


def test_snapshot_timestamp_is_end_of_day_utc():
    snaps = compute_customer_snapshots(HISTORY, [date(2026, 2, 1)], LATER)
    assert set(snaps["event_timestamp"]) == {pd.Timestamp("2026-02-01 23:59:59", tz="UTC")}
    assert snaps["created_timestamp"].notna().all()


def test_a_snapshot_of_an_unfinished_day_is_stamped_when_it_was_computed():
    computed = datetime(2026, 2, 1, 9, 30, 15, 500_000, tzinfo=UTC)
    snaps = compute_customer_snapshots(HISTORY, [date(2026, 1, 31), date(2026, 2, 1)], computed)
    stamps = snaps.groupby("snapshot_date")["event_timestamp"].first()
    assert stamps["2026-01-31"] == pd.Timestamp("2026-01-31 23:59:59", tz="UTC")
    assert stamps["2026-02-01"] == pd.Timestamp("2026-02-01 09:30:15", tz="UTC")


def test_the_label_grid_moves_with_the_data_not_with_the_calendar():
    from datetime import timedelta
    from itertools import pairwise

    from data.transforms import label_days

    anchor = date(2024, 2, 26)
    grid = label_days(anchor, anchor, date(2024, 3, 31), 7)
    assert grid[0] == anchor and [(b - a).days for a, b in pairwise(grid)] == [7] * 4
    assert label_days(anchor, date(2024, 2, 29), date(2024, 3, 31), 7) == grid[1:]
    for shift in (1, 3, 365, 1000):  # the same data, any other days: the same grid, moved
        moved = label_days(
            anchor + timedelta(shift),
            anchor + timedelta(shift),
            date(2024, 3, 31) + timedelta(shift),
            7,
        )
        assert moved == [d + timedelta(shift) for d in grid]
