"""A seeded simulator of customer order events.

Customers belong to segments with different order frequency and basket size. Churners
slow down over the weeks before their churn day and then stop ordering. A drift knob
scales spend and changes the segment mix of orders from a given day on. A concept-shift
knob changes what behaviour means instead of what it looks like: churners stop without
slowing down first, while as many staying customers go through lulls that look like a
churner's slow-down and then come back, so the feature distributions barely move while
the link between them and churn is broken. Each day is
drawn from its own seeded generator, so any day can be regenerated on its own and comes
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
    "budget": {"share": 0.5, "orders_per_30d": 5.0, "basket": 28.0},
    "regular": {"share": 0.35, "orders_per_30d": 7.0, "basket": 65.0},
    "premium": {"share": 0.15, "orders_per_30d": 10.0, "basket": 160.0},
}
GAMMA_SHAPE = 4.0
RAW_ORDER_COLUMNS = ("order_id", "customer_id", "order_timestamp", "amount", "customer_segment")


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

    Churners stop ordering at their churn day with no slow-down before it. A
    ``lull_share`` of the staying customers slow down as churners used to, for
    ``lull_days`` out of every ``lull_cycle_days``, and then order as before.
    """

    start: date
    lull_share: float = 0.6
    lull_days: int = 30
    lull_cycle_days: int = 60
    lull_activity: float = 0.1


@dataclass(frozen=True)
class SimulationConfig:
    customers: int
    start_date: date
    days: int
    seed: int = 7
    churn_share: float = 0.6
    # Weeks over which a churner's order rate decays before stopping.
    decay_days: int = 45
    drift: Drift | None = None
    concept_shift: ConceptShift | None = None

    @property
    def end_date(self) -> date:
        """The last simulated day (inclusive)."""
        return self.start_date + timedelta(days=self.days - 1)


def simulate_customers(config: SimulationConfig) -> pd.DataFrame:
    """One row per customer: segment, personal order rate and basket, churn day (or NaT)."""
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
    # Drawn last, so the draws above (and every day without a concept shift) stay the same.
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
        }
    )


def _activity(customers: pd.DataFrame, day: date, config: SimulationConfig) -> np.ndarray:
    """Multiplier on each customer's order rate on ``day``: 1 when active, 0 after churn."""
    shift = config.concept_shift
    shifted = shift is not None and day >= shift.start
    # After a concept shift, churners stop at once: no slow-down warns of them.
    decay_days = 0 if shifted else config.decay_days
    activity = np.ones(len(customers))
    for i, churn_day in enumerate(customers["churn_day"]):
        if churn_day is None:
            continue
        days_left = (churn_day - day).days
        if days_left <= 0:
            activity[i] = 0.0
        elif days_left < decay_days:
            activity[i] = 0.15 + 0.85 * days_left / decay_days
    if shifted:
        assert shift is not None
        phase = customers["lull_phase"].to_numpy()
        into = ((day - shift.start).days + phase) % shift.lull_cycle_days
        in_lull = (phase >= 0) & (into < shift.lull_days)
        # A lull looks like a churner's last weeks: hardly any order, then back at once.
        activity = np.where(in_lull, activity * shift.lull_activity, activity)
    return activity


def simulate_day(customers: pd.DataFrame, config: SimulationConfig, day: date) -> pd.DataFrame:
    """The raw order events of one day, in the raw batch schema."""
    day_index = (day - config.start_date).days
    rng = np.random.default_rng([config.seed, day_index + 10_000])
    rate = customers["daily_rate"].to_numpy() * _activity(customers, day, config)
    basket = customers["basket"].to_numpy()
    drift = config.drift
    if drift is not None and day >= drift.start:
        factors = customers["customer_segment"].map(drift.segment_rate_factor).fillna(1.0)
        rate = rate * factors.to_numpy()
        basket = basket * drift.spend_factor
    orders = rng.poisson(rate)
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


def simulate_days(config: SimulationConfig, days: list[date] | None = None):
    """Yield ``(day, batch)`` for each requested day (default: every simulated day)."""
    customers = simulate_customers(config)
    wanted = days or [config.start_date + timedelta(days=i) for i in range(config.days)]
    for day in wanted:
        yield day, simulate_day(customers, config, day)


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
