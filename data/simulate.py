"""A seeded simulator of customer order events.

Customers belong to segments with different order frequency and basket size, and each
orders in a rhythm of their own: one order every ``1 / rate`` days, give or take a day, now
and then a skipped or an extra order (buying is more regular than a Poisson process, so a
customer who stops is seen to stop). Churners slow down over the ``decay_days`` before
their churn day (they order less than half as often) and then stop ordering. A drift knob
scales spend and changes the segment mix of orders from a given day on.

A concept-shift knob changes what behaviour means instead of what it looks like. From its
start, churners stop without slowing down: they keep their rhythm while their baskets
shrink (they move their shopping elsewhere), then stop. And a share of the staying
customers go through lulls: they stock up the day before, hardly order for ``lull_days``
and then come back, so a lull looks like a churner who stopped. The feature distributions
barely move, while the link between them and churn is broken.

Each day is drawn from its own seeded generators (keyed by the seed and the day's offset in
the timeline, never by a calendar date), so any day can be regenerated on its own and comes
out identical.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from core.settings import Settings

SEGMENTS: dict[str, dict[str, float]] = {
    # share of customers, mean orders per 30 days, mean basket (currency units)
    "budget": {"share": 0.5, "orders_per_30d": 12.0, "basket": 28.0},
    "regular": {"share": 0.35, "orders_per_30d": 16.0, "basket": 65.0},
    "premium": {"share": 0.15, "orders_per_30d": 22.0, "basket": 160.0},
}
GAMMA_SHAPE = 8.0  # personal order rate = segment rate x Gamma(shape, 1 / shape)
RAW_ORDER_COLUMNS = ("order_id", "customer_id", "order_timestamp", "amount", "customer_segment")

# The rhythm: a scheduled order comes this many days late with these probabilities (never
# early, so a day depends on no later day), is skipped with SKIP_SHARE, and IMPULSE_SHARE
# of the rate comes as unscheduled extra orders.
JITTER = {0: 0.9, 1: 0.1}
SKIP_SHARE = 0.01
IMPULSE_SHARE = 0.01
# A churner's order rate, as a share of its own, over its last ``decay_days`` (no shift).
FADE_ACTIVITY = 0.4
# Expected orders per day are rounded to this, so cumulative sums are exact in any order.
_QUANTUM = 2.0**-20
_NEVER = 10**6  # the day offset of a churn that does not happen


@dataclass(frozen=True)
class Drift:
    """Changes applied to every day on or after ``start``."""

    start: date
    spend_factor: float = 2.0
    # Multiplies each segment's order rate, which shifts the segment mix of orders.
    segment_rate_factor: dict[str, float] = field(
        default_factory=lambda: {"budget": 0.6, "regular": 1.0, "premium": 2.0}
    )


@dataclass(frozen=True)
class ConceptShift:
    """From ``start`` on, behaviour stops predicting churn the way it did.

    Churners keep ordering at their own rate until their churn day (no slow-down), while
    their baskets shrink to ``churner_basket`` of their size over the last
    ``basket_fade_days``. A ``lull_share`` of the staying customers go through lulls of
    ``lull_days`` out of every ``lull_cycle_days``: the day before one they place
    ``stock_up_orders`` extra orders, in it they order at ``lull_activity`` of their rate,
    and then they order as before.
    """

    start: date
    lull_share: float = 0.9
    lull_days: int = 30
    lull_cycle_days: int = 60
    lull_activity: float = 0.05
    stock_up_orders: float = 10.0
    churner_basket: float = 0.15
    basket_fade_days: int = 30


@dataclass(frozen=True)
class SimulationConfig:
    customers: int
    start_date: date
    days: int
    seed: int = 7
    churn_share: float = 0.6
    # Days before its churn day over which a churner orders less (FADE_ACTIVITY of its rate).
    decay_days: int = 15
    drift: Drift | None = None
    concept_shift: ConceptShift | None = None

    @property
    def end_date(self) -> date:
        """The last simulated day (inclusive)."""
        return self.start_date + timedelta(days=self.days - 1)


def simulate_customers(config: SimulationConfig) -> pd.DataFrame:
    """One row per customer: segment, personal order rate and basket, churn day (or NaT),
    lull phase (-1: no lulls) and the phase of its ordering rhythm."""
    rng = np.random.default_rng(config.seed)
    names = list(SEGMENTS)
    shares = np.array([SEGMENTS[s]["share"] for s in names])
    segment = rng.choice(names, size=config.customers, p=shares / shares.sum())
    rate = np.array([SEGMENTS[s]["orders_per_30d"] for s in segment]) / 30.0
    basket = np.array([SEGMENTS[s]["basket"] for s in segment])
    # Personal variation around the segment's means.
    rate = rate * rng.gamma(shape=GAMMA_SHAPE, scale=1 / GAMMA_SHAPE, size=config.customers)
    basket = basket * rng.lognormal(mean=0.0, sigma=0.25, size=config.customers)
    churns = rng.random(config.customers) < config.churn_share
    # Churn days spread over the whole period, so every stretch of time has churners.
    churn_offset = rng.integers(0, config.days + 60, size=config.customers)
    churn_day = [
        config.start_date + timedelta(days=int(offset)) if is_churner else None
        for is_churner, offset in zip(churns, churn_offset, strict=True)
    ]
    rhythm_phase = rng.random(config.customers)
    # Drawn last, so the draws above (and every day before a shift) stay the same with or
    # without a concept shift.
    shift = config.concept_shift
    cycle = shift.lull_cycle_days if shift else 1
    in_lulls = (rng.random(config.customers) < (shift.lull_share if shift else 0.0)) & ~churns
    lull_phase = np.where(in_lulls, rng.integers(0, cycle, size=config.customers), -1)
    return pd.DataFrame(
        {
            "customer_id": np.arange(1, config.customers + 1, dtype="int64"),
            "customer_segment": segment,
            "daily_rate": rate,
            "basket": basket,
            "churn_day": churn_day,
            "lull_phase": lull_phase,
            "rhythm_phase": rhythm_phase,
        }
    )


def _behaviour(
    customers: pd.DataFrame, config: SimulationConfig, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Expected orders per day and basket multiplier, shape (customers, len(offsets)).

    ``offsets`` are days from the start of the timeline: everything here depends on them
    and on the customers, never on calendar dates.
    """
    t = offsets[None, :].astype(float)
    churn = np.array(
        [(d - config.start_date).days if d is not None else _NEVER for d in customers["churn_day"]],
        dtype=float,
    )[:, None]
    days_left = churn - t
    activity = np.where(days_left <= config.decay_days, FADE_ACTIVITY, 1.0)
    basket = np.ones_like(activity)
    extra = np.zeros_like(activity)
    shift = config.concept_shift
    if shift is not None:
        s0 = (shift.start - config.start_date).days
        shifted = t >= s0
        # Churners no longer slow down: their baskets shrink before they stop instead.
        activity = np.where(shifted, 1.0, activity)
        fading = shifted & (days_left <= shift.basket_fade_days)
        basket = np.where(fading, shift.churner_basket, basket)
        phase = customers["lull_phase"].to_numpy()[:, None]
        into = (t - s0 + phase) % shift.lull_cycle_days
        lulls = shifted & (phase >= 0)
        in_lull = lulls & (into < shift.lull_days)
        activity = np.where(in_lull, activity * shift.lull_activity, activity)
        # They stock up the day before a lull (one that starts after the shift).
        eve = lulls & (into == shift.lull_cycle_days - 1)
        extra = np.where(eve, shift.stock_up_orders, 0.0)
    activity = np.where(days_left <= 0, 0.0, activity)
    rate = customers["daily_rate"].to_numpy()[:, None] * activity + extra
    drift = config.drift
    if drift is not None:
        d0 = (drift.start - config.start_date).days
        factor = customers["customer_segment"].map(drift.segment_rate_factor).fillna(1.0)
        rate = np.where(t >= d0, rate * factor.to_numpy()[:, None], rate)
        basket = np.where(t >= d0, basket * drift.spend_factor, basket)
    return np.round(rate / _QUANTUM) * _QUANTUM, basket


@dataclass(frozen=True)
class _Plan:
    """Each customer's expected orders and baskets on days 0..last, and their running sum."""

    rate: np.ndarray
    basket: np.ndarray
    scheduled: np.ndarray  # cumulative scheduled orders at the start of each day


def _plan(customers: pd.DataFrame, config: SimulationConfig, last: int) -> _Plan:
    rate, basket = _behaviour(customers, config, np.arange(last + 1))
    scheduled = np.cumsum(rate * (1 - IMPULSE_SHARE), axis=1)
    scheduled = np.concatenate([np.zeros((len(customers), 1)), scheduled], axis=1)
    return _Plan(rate, basket, scheduled)


def _orders_due(customers: pd.DataFrame, config: SimulationConfig, plan: _Plan, t: int):
    """How many orders each customer places on day ``t`` (offset): the rhythm's orders
    scheduled on days t-1 and t that their jitter puts on ``t``, plus impulse orders."""
    n = len(customers)
    phase = customers["rhythm_phase"].to_numpy()
    counts = np.zeros(n, dtype=np.int64)
    moves, probabilities = list(JITTER), list(JITTER.values())
    for s in (t - 1, t):
        if s < 0:
            continue
        # A scheduled order falls due each time the running sum passes a whole number.
        due = np.floor(plan.scheduled[:, s + 1] + phase) - np.floor(plan.scheduled[:, s] + phase)
        rng = np.random.default_rng([config.seed, s + 10_000, 1])
        moved = s + rng.choice(moves, size=n, p=probabilities) == t
        kept = rng.random(n) >= SKIP_SHARE
        counts += np.where(moved & kept, due, 0).astype(np.int64)
    active = plan.rate[:, t] > 0  # nothing after a churn day, whatever the jitter
    rng = np.random.default_rng([config.seed, t + 10_000])
    return np.where(active, counts, 0) + rng.poisson(plan.rate[:, t] * IMPULSE_SHARE), rng


def _batch(customers: pd.DataFrame, config: SimulationConfig, plan: _Plan, day: date):
    t = (day - config.start_date).days
    orders, rng = _orders_due(customers, config, plan, t)
    basket = customers["basket"].to_numpy() * plan.basket[:, t]
    idx = np.repeat(np.arange(len(customers)), orders)
    n = len(idx)
    amount = np.round(basket[idx] * rng.lognormal(mean=-0.08, sigma=0.4, size=n), 2)
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    seconds = np.sort(rng.integers(0, 86_400, size=n))
    batch = pd.DataFrame(
        {
            "order_id": [f"o-{day:%Y%m%d}-{i:06d}" for i in range(n)],
            "customer_id": customers["customer_id"].to_numpy()[idx],
            "order_timestamp": pd.Timestamp(midnight) + pd.to_timedelta(seconds, unit="s"),
            "amount": np.clip(amount, 0.5, 10_000.0).astype("float64"),
            "customer_segment": customers["customer_segment"].to_numpy()[idx],
        }
    )
    batch["order_timestamp"] = batch["order_timestamp"].astype("datetime64[ns, UTC]")
    return batch


def simulate_day(customers: pd.DataFrame, config: SimulationConfig, day: date) -> pd.DataFrame:
    """The raw order events of one day, in the raw batch schema."""
    return _batch(customers, config, _plan(customers, config, (day - config.start_date).days), day)


def simulate_days(config: SimulationConfig, days: list[date] | None = None):
    """Yield ``(day, batch)`` for each requested day (default: every simulated day)."""
    customers = simulate_customers(config)
    wanted = days or [config.start_date + timedelta(days=i) for i in range(config.days)]
    plan = _plan(customers, config, max((d - config.start_date).days for d in wanted))
    for day in wanted:
        yield day, _batch(customers, config, plan, day)


def land_simulated_days(
    config: SimulationConfig, settings: Settings, days: list[date] | None = None
) -> int:
    """Simulate ``days`` (default: all) and land each as a batch; return the order count."""
    from data.landing import land_batch

    rows = 0
    for day, batch in simulate_days(config, days):
        land_batch(batch, day, settings)
        rows += len(batch)
    return rows
