"""The order simulator: seeded, segment-shaped, churners that fade, drift and concept-shift
knobs."""

from datetime import date, timedelta

import pandas as pd

from data.simulate import (
    RAW_ORDER_COLUMNS,
    ConceptShift,
    Drift,
    SimulationConfig,
    simulate_customers,
    simulate_day,
    simulate_days,
)

CONFIG = SimulationConfig(customers=1500, start_date=date(2026, 1, 1), days=90, seed=11)


def test_each_day_is_reproducible_on_its_own():
    customers = simulate_customers(CONFIG)
    day = date(2026, 2, 3)
    first = simulate_day(customers, CONFIG, day)
    again = dict(simulate_days(CONFIG, [day]))[day]
    pd.testing.assert_frame_equal(first, again)
    assert tuple(first.columns) == RAW_ORDER_COLUMNS
    assert first["order_id"].is_unique
    assert (first["order_timestamp"].dt.date == day).all()


def test_segments_differ_in_frequency_and_basket():
    frames = pd.concat(b for _, b in simulate_days(CONFIG))
    per_segment = frames.groupby("customer_segment")["amount"].mean()
    assert per_segment["budget"] < per_segment["regular"] < per_segment["premium"]


def test_churners_fade_then_stop():
    customers = simulate_customers(CONFIG)
    churner = customers.dropna(subset=["churn_day"])
    churner = churner[churner["churn_day"] < CONFIG.end_date - timedelta(days=10)]
    churner = churner[churner["churn_day"] > CONFIG.start_date + timedelta(days=60)]
    ids = set(churner["customer_id"])
    churn_day = churner.set_index("customer_id")["churn_day"]
    orders = pd.concat(b for _, b in simulate_days(CONFIG))
    orders = orders[orders["customer_id"].isin(ids)].copy()
    days_to_churn = (orders["customer_id"].map(churn_day) - orders["order_timestamp"].dt.date).map(
        lambda d: d.days
    )
    assert (days_to_churn > 0).all(), "no order on or after the churn day"
    early = ((days_to_churn > 45) & (days_to_churn <= 60)).sum()
    late = ((days_to_churn > 0) & (days_to_churn <= 15)).sum()
    assert late < early / 2, "activity decays before churn"


def test_drift_raises_spend_and_shifts_segment_mix():
    drift_start = date(2026, 3, 1)
    drifted = SimulationConfig(**{**CONFIG.__dict__, "drift": Drift(start=drift_start)})
    days = [drift_start + timedelta(days=i) for i in range(14)]
    normal = pd.concat(b for _, b in simulate_days(CONFIG, days))
    shifted = pd.concat(b for _, b in simulate_days(drifted, days))
    assert shifted["amount"].mean() > 1.6 * normal["amount"].mean()
    share = lambda f: (f["customer_segment"] == "premium").mean()  # noqa: E731
    assert share(shifted) > share(normal) * 1.3
    before = [drift_start - timedelta(days=1)]
    pd.testing.assert_frame_equal(
        dict(simulate_days(CONFIG, before))[before[0]],
        dict(simulate_days(drifted, before))[before[0]],
    )


def test_a_concept_shift_breaks_the_link_but_barely_moves_the_distributions():
    shift_start = date(2026, 2, 1)
    shifted = SimulationConfig(
        **{**CONFIG.__dict__, "concept_shift": ConceptShift(start=shift_start)}
    )
    before = [shift_start - timedelta(days=1)]
    pd.testing.assert_frame_equal(  # the days before the shift are the same days
        dict(simulate_days(CONFIG, before))[before[0]],
        dict(simulate_days(shifted, before))[before[0]],
    )
    customers = simulate_customers(shifted)
    days = [shift_start + timedelta(days=i) for i in range(56)]
    orders = pd.concat(b for _, b in simulate_days(shifted, days))
    # Churners no longer slow down first: as many orders just before churn as well before.
    churner = customers.dropna(subset=["churn_day"])
    churner = churner[
        (churner["churn_day"] > shift_start + timedelta(days=40))
        & (churner["churn_day"] <= days[-1])  # both windows inside the simulated days
    ]
    churn_day = churner.set_index("customer_id")["churn_day"]
    theirs = orders[orders["customer_id"].isin(churn_day.index)]
    to_churn = (theirs["customer_id"].map(churn_day) - theirs["order_timestamp"].dt.date).map(
        lambda d: d.days
    )
    early = ((to_churn > 25) & (to_churn <= 40)).sum()
    late = ((to_churn > 0) & (to_churn <= 15)).sum()
    assert late > 0.7 * early, "no slow-down warns of a churner after the shift"
    # Staying customers in a lull hardly order in it, then come back.
    lulls = customers[customers["lull_phase"] >= 0]
    assert lulls["churn_day"].isna().all()
    assert 0.8 < len(lulls) / customers["churn_day"].isna().sum() < 0.98
    lull_days = {
        c: {
            d for d in days
            if ((d - shift_start).days + phase) % 60 < 30
        }
        for c, phase in zip(lulls["customer_id"], lulls["lull_phase"], strict=True)
    }  # fmt: skip
    theirs = orders[orders["customer_id"].isin(lull_days)]
    in_lull = [d in lull_days[c] for c, d in zip(
        theirs["customer_id"], theirs["order_timestamp"].dt.date, strict=True
    )]  # fmt: skip
    share_of_days_in_lull = sum(len(v) for v in lull_days.values()) / (len(lull_days) * len(days))
    assert sum(in_lull) / len(in_lull) < share_of_days_in_lull / 3
    # The daily order volume barely moves: lulls replace the churners' old slow-down.
    normal = pd.concat(b for _, b in simulate_days(CONFIG, days))
    assert 0.6 < len(orders) / len(normal) < 1.1
