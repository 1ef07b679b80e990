"""Logged predictions get their outcome as of their own time, once it is due (hand-made)."""

from datetime import UTC, datetime

import pandas as pd
import pytest

from data import delta_tables
from models.churn.spec import SPEC as CHURN
from models.next_spend.spec import SPEC as NEXT_SPEND
from monitoring.outcomes import labelled_predictions
from serving.prediction_log import PredictionRecord, open_prediction_log
from tests.serving.test_prediction_log_stores import postgres_settings

AS_OF = datetime(2026, 4, 1, tzinfo=UTC)  # the monitoring run's time: after every landed day


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def write_orders(settings, rows: list[tuple[int, str, float]]) -> None:
    orders = pd.DataFrame(rows, columns=["customer_id", "order_timestamp", "amount"])
    orders["order_timestamp"] = pd.to_datetime(orders["order_timestamp"], utc=True)
    orders["order_id"] = [f"o{i}" for i in range(len(orders))]
    orders["customer_segment"] = "regular"
    orders["event_date"] = orders["order_timestamp"].dt.date.astype(str)
    delta_tables.replace_partitions(settings.storage.raw_orders_path, orders, "event_date")


ORDERS = [
    (1, "2026-01-15T12:00:00", 50.0),  # inside c1's first horizon
    (1, "2026-02-25T09:00:00", 20.0),  # after c1's second horizon ends (02-19 10:00)
    (3, "2026-01-10T08:00:00", 10.0),  # at c3's prediction time: not after it
    (3, "2026-02-09T08:00:00", 15.0),  # exactly 30 days later: inside (closed end)
    (9, "2026-03-01T18:00:00", 5.0),  # the last landed day is 2026-03-01
]
# (time, customer, version, variant)
PREDICTIONS = [
    ("2026-01-01T10:00:00", 1, 1, "champion"),
    ("2026-01-20T10:00:00", 1, 2, "challenger"),  # the same customer, later, another version
    ("2026-01-10T08:00:00", 3, 1, "champion"),
    ("2026-02-15T10:00:00", 2, 1, "champion"),  # horizon ends 03-17: not due yet
]


def log_predictions(settings, spec) -> None:
    features = {f.name: ("regular" if f.kind == "categorical" else 1.0) for f in spec.features}
    log = open_prediction_log(settings, spec)
    log.append(
        [
            PredictionRecord(
                logged_at=at(time),
                customer_id=customer,
                model_version=version,
                variant=variant,
                features=features,
                probability=0.7 if spec.task == "classification" else None,
                prediction=1 if spec.task == "classification" else 42.0,
            )
            for time, customer, version, variant in PREDICTIONS
        ]
    )
    log.close()


def by_key(frame: pd.DataFrame, column: str) -> dict:
    return {
        (row.customer_id, row.logged_at.isoformat()): getattr(row, column)
        for row in frame.itertuples()
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def logged_to(request, state):
    """The test's settings, its prediction log in SQLite or in PostgreSQL."""
    if request.param == "sqlite":
        return state
    return postgres_settings(state, request.getfixturevalue("postgres_url"))


@pytest.mark.parametrize("spec", [CHURN, NEXT_SPEND], ids=lambda s: s.name)
def test_outcomes_are_joined_as_of_each_prediction_and_only_once_due(logged_to, spec):
    state = logged_to
    write_orders(state, ORDERS)
    log_predictions(state, spec)

    joined = labelled_predictions(spec, state, AS_OF)
    assert (joined.logged, joined.matured, joined.pending) == (4, 3, 1)
    labels = by_key(joined.frame, spec.label)
    expected = (
        {  # churned: no order in the 30 days after the prediction's own time
            (1, "2026-01-01T10:00:00+00:00"): 0,
            (1, "2026-01-20T10:00:00+00:00"): 1,
            (3, "2026-01-10T08:00:00+00:00"): 0,
        }
        if spec is CHURN
        else {  # the spend of those 30 days
            (1, "2026-01-01T10:00:00+00:00"): 50.0,
            (1, "2026-01-20T10:00:00+00:00"): 0.0,
            (3, "2026-01-10T08:00:00+00:00"): 15.0,
        }
    )
    assert labels == expected
    # Each outcome keeps the version and variant that served the prediction.
    assert by_key(joined.frame, "model_version")[(1, "2026-01-20T10:00:00+00:00")] == 2
    assert by_key(joined.frame, "variant")[(1, "2026-01-20T10:00:00+00:00")] == "challenger"

    # Customer 2's outcome is absent until its 30 days have landed, then it is known.
    write_orders(state, [(2, "2026-03-05T10:00:00", 30.0), (9, "2026-03-20T10:00:00", 1.0)])
    later = labelled_predictions(spec, state, AS_OF)
    assert (later.logged, later.matured, later.pending) == (4, 4, 0)
    customer_2 = by_key(later.frame, spec.label)[(2, "2026-02-15T10:00:00+00:00")]
    assert customer_2 == (0 if spec is CHURN else 30.0)


def test_a_run_sees_only_what_its_own_time_knows(state):
    """As of 2026-02-05, the 2026-01-01 prediction has matured (its 30 days are over),
    the 2026-01-10 and 2026-01-20 ones have not, and the 2026-02-15 one was not made yet."""
    write_orders(state, ORDERS)
    log_predictions(state, CHURN)
    joined = labelled_predictions(CHURN, state, datetime(2026, 2, 5, tzinfo=UTC))
    assert (joined.logged, joined.matured, joined.pending) == (3, 1, 2)
    assert set(by_key(joined.frame, CHURN.label)) == {(1, "2026-01-01T10:00:00+00:00")}


def test_nothing_is_labelled_before_any_order_landed(state):
    log_predictions(state, CHURN)
    joined = labelled_predictions(CHURN, state, AS_OF)
    assert (joined.logged, joined.matured) == (4, 0)
    assert joined.frame.empty
