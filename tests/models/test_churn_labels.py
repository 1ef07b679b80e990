"""Churn's labels, computed by hand: the rule, the grid and the table churn declares."""

from datetime import UTC, date, datetime, timedelta

import pandas as pd

from models.churn.labels import (
    HORIZON_DAYS,
    LABEL_TABLE,
    compute_churn_labels,
    compute_label_rows,
)
from models.churn.spec import SPEC as CHURN


def orders(*rows: tuple[int, str, str]) -> pd.DataFrame:
    """Orders of (customer, order time, landed day), shaped like the raw orders table."""
    frame = pd.DataFrame(rows, columns=["customer_id", "order_timestamp", "event_date"])
    frame["order_timestamp"] = pd.to_datetime(frame["order_timestamp"], utc=True)
    frame["amount"] = 10.0
    return frame


HISTORY = orders(
    (1, "2026-01-01 10:00", "2026-01-01"),
    (1, "2026-01-20 10:00", "2026-01-20"),
    (1, "2026-02-15 09:00", "2026-02-15"),
    (2, "2026-02-01 12:00", "2026-02-01"),
)


def test_labels_need_a_full_horizon_and_an_active_customer():
    labels = compute_churn_labels(
        HISTORY,
        [date(2026, 1, 1), date(2026, 1, 20), date(2026, 2, 1), date(2026, 2, 10)],
        data_end=date(2026, 3, 5),
        horizon_days=30,
    )
    got = {(r.customer_id, r.label_date): r.churned for r in labels.itertuples()}
    assert got == {
        (1, "2026-01-01"): 0,  # orders again on Jan 20
        (1, "2026-01-20"): 0,  # orders again on Feb 15 (26 days later)
        (1, "2026-02-01"): 0,  # orders again on Feb 15
        (2, "2026-02-01"): 1,  # no order in (Feb 1, Mar 3]
        # Customer 2 had no order before Feb 1, so is not "active" on Jan 1 or Jan 20.
    }
    # Feb 10 + 30 days is after data_end: too early to know, no labels.
    assert "2026-02-10" not in set(labels["label_date"])


def test_the_label_table_labels_the_weekly_grid_from_the_first_landed_day():
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(64)]
    rows = compute_label_rows(HISTORY, days, datetime(2026, 3, 6, tzinfo=UTC))
    # Weekly from Jan 1, while the 30-day future lies inside the data (to Mar 5): Feb 5's
    # future runs to Mar 7, too early to know.
    assert sorted(set(rows["label_date"])) == [
        "2026-01-01", "2026-01-08", "2026-01-15", "2026-01-22", "2026-01-29",
    ]  # fmt: skip
    # A later window of days keeps the same grid: it is anchored at the data, not the window.
    later = compute_label_rows(HISTORY, days[10:], datetime(2026, 3, 6, tzinfo=UTC))
    assert sorted(set(later["label_date"])) == ["2026-01-15", "2026-01-22", "2026-01-29"]
    assert list(rows.columns) == ["customer_id", "event_timestamp", "label_date", "churned"]


def test_churn_declares_its_label_table_and_its_reach():
    assert CHURN.label_tables == (LABEL_TABLE,)
    assert LABEL_TABLE.name == "churn_labels" and LABEL_TABLE.partition == "label_date"
    # A changed day changes the labels whose future holds it: up to a horizon before it.
    assert LABEL_TABLE.lookback_days == HORIZON_DAYS
    assert compute_label_rows(pd.DataFrame(), [], datetime(2026, 1, 1, tzinfo=UTC)).empty
