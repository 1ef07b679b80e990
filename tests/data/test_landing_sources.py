"""Landing sources: more than orders lands, each file judged by its own source's suite.

A second upstream system (a partner shop) lands its orders as ``partner_orders_*`` files
into a table of its own, and a feature table is computed from that source alone.
"""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from core.sources import ORDERS, LandingSource
from core.spec import FeatureTable
from data import delta_tables, landing, pipeline
from data.simulate import SimulationConfig, land_simulated_days, simulate_days
from models.next_spend.features import RHYTHM_FEATURES
from models.next_spend.transforms import compute_rhythm_features

AS_OF = datetime(2027, 1, 1, tzinfo=UTC)  # the runs' time: after every simulated day

CONFIG = SimulationConfig(customers=120, start_date=date(2026, 3, 1), days=10, seed=9)
PARTNER_CONFIG = replace(CONFIG, customers=40, seed=21)
PARTNER = replace(ORDERS, name="partner_orders", table="raw_partner_orders")
SOURCES = (ORDERS, PARTNER)
PARTNER_TABLE = FeatureTable(
    name="partner_rhythm",
    features=RHYTHM_FEATURES,
    compute=compute_rhythm_features,
    sources=("partner_orders",),
)


def partner_batch(day: date):
    batch = dict(simulate_days(PARTNER_CONFIG, [day]))[day]
    batch["order_id"] = "p-" + batch["order_id"].astype(str)
    batch["customer_id"] = batch["customer_id"] + 100_000  # the partner's own customers
    return batch


def test_each_source_lands_in_its_own_table_and_feeds_its_own_features(state):
    days = [CONFIG.start_date + timedelta(days=i) for i in range(CONFIG.days)]
    land_simulated_days(CONFIG, state)
    for day in days[:6]:
        landing.land_batch(partner_batch(day), day, state, PARTNER)
    assert landing.landed_path(state, days[0], PARTNER).name == "partner_orders_2026-03-01.parquet"

    accepted = pipeline.validate_landed_batches(state, SOURCES)
    assert len(accepted) == CONFIG.days + 6
    ingested = pipeline.ingest_batches(accepted, state, SOURCES)
    assert set(ingested.source_versions) == {"orders", "partner_orders"}
    assert landing.pending_batches(state) == []

    orders = delta_tables.read_table(state.storage.raw_orders_path)
    partner = delta_tables.read_table(state.storage.delta_table_path("raw_partner_orders"))
    assert not orders["order_id"].str.startswith("p-").any()
    assert partner["order_id"].str.startswith("p-").all()
    assert sorted(partner["event_date"].unique()) == [d.isoformat() for d in days[:6]]

    built = pipeline.build_features(ingested.days, state, [PARTNER_TABLE], SOURCES, as_of=AS_OF)
    rhythm = delta_tables.read_table(state.storage.delta_table_path("partner_rhythm"))
    assert built.table_versions["partner_rhythm"] is not None
    # Computed from the partner's orders alone: only its customers, never the shop's.
    assert set(rhythm["customer_id"]) <= set(partner["customer_id"])
    assert set(rhythm["customer_id"]).isdisjoint(set(orders["customer_id"]))


def test_a_bad_batch_of_a_second_source_is_refused_by_its_suite(state):
    day = CONFIG.start_date
    land_simulated_days(CONFIG, state, [day])
    bad = partner_batch(day)
    bad.loc[0, "amount"] = -1.0
    landing.land_batch(bad, day, state, PARTNER)
    stray = state.storage.landing_dir / f"returns_{day.isoformat()}.parquet"
    bad.to_parquet(stray)

    with pytest.raises(pipeline.BatchesRefused) as refused:
        pipeline.validate_landed_batches(state, SOURCES)
    message = str(refused.value)
    assert "2 batch(es) refused" in message
    assert "amount" in message and "partner_orders_2026-03-01" in message
    # A file of no declared source is refused by name, naming every source it could be.
    assert "'returns_2026-03-01.parquet' is not a batch the pipeline accepts" in message
    assert "orders_YYYY-MM-DD.parquet or .csv; partner_orders_YYYY-MM-DD.parquet" in message
    folders = sorted(p.name for p in (state.storage.quarantine_dir / "raw_orders").iterdir())
    assert any(f.startswith("partner_orders_2026-03-01") for f in folders)
    assert any(f.startswith("returns_2026-03-01") for f in folders)
    # The orders batch of that day passed and waits; nothing was written anywhere.
    assert [p.name for p in landing.pending_batches(state)] == ["orders_2026-03-01.parquet"]
    assert delta_tables.table_version(state.storage.delta_table_path("raw_partner_orders")) is None


def test_a_feature_table_needs_its_sources_declared_and_landed(state):
    land_simulated_days(CONFIG, state, [CONFIG.start_date])
    ingested = pipeline.ingest_batches(pipeline.validate_landed_batches(state), state)
    with pytest.raises(ValueError, match="'partner_orders', which is not declared"):
        pipeline.build_features(ingested.days, state, [PARTNER_TABLE], as_of=AS_OF)
    with pytest.raises(ValueError, match="no data yet: land a partner_orders_\\* batch"):
        pipeline.build_features(ingested.days, state, [PARTNER_TABLE], SOURCES, as_of=AS_OF)


def test_a_source_name_must_be_a_plain_prefix():
    with pytest.raises(ValueError, match="lower-case"):
        LandingSource(name="Orders-EU", suite="raw_orders", table="t", time_column="ts")
    assert PARTNER.day_text("partner_orders_2026-03-01.csv") == "2026-03-01"
    # "orders_" is a prefix of neither reading: each source matches its own names only.
    assert ORDERS.day_text("partner_orders_2026-03-01.csv") is None
    assert PARTNER.day_text("orders_2026-03-01.csv") is None
