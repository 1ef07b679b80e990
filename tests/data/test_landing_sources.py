"""Landing sources: more than orders lands, each file judged by its own source's suite.

A second upstream system (a partner shop) lands its orders as ``partner_orders_*`` files
into a table of its own, and a feature table is computed from that source alone.
"""

import logging
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from core.sources import ORDERS, LandingSource
from core.spec import FeatureTable
from data import delta_tables, landing, pipeline
from data.simulate import SimulationConfig, land_simulated_days, simulate_days
from data.store import feature_views_of, get_feature_store
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


def test_a_feature_table_needs_its_sources_declared(state):
    land_simulated_days(CONFIG, state, [CONFIG.start_date])
    ingested = pipeline.ingest_batches(pipeline.validate_landed_batches(state), state)
    with pytest.raises(ValueError, match="'partner_orders', which is not declared"):
        pipeline.build_features(ingested.days, state, [PARTNER_TABLE], as_of=AS_OF)


def test_a_source_name_must_be_a_plain_prefix():
    with pytest.raises(ValueError, match="lower-case"):
        LandingSource(name="Orders-EU", suite="raw_orders", table="t", time_column="ts")
    assert PARTNER.day_text("partner_orders_2026-03-01.csv") == "2026-03-01"
    # "orders_" is a prefix of neither reading: each source matches its own names only.
    assert ORDERS.day_text("partner_orders_2026-03-01.csv") is None
    assert PARTNER.day_text("orders_2026-03-01.csv") is None


def _export(folder, name: str, day: date = CONFIG.start_date):
    """A user's file: one simulated day of orders as CSV (or Parquet, by its name)."""
    ((_, batch),) = simulate_days(CONFIG, [day])
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        batch.to_parquet(path)
    else:
        batch.to_csv(path, index=False)
    return path


def _landing_area(state) -> list[str]:
    """Everything in the landing area, hidden and temporary files included."""
    folder = state.storage.landing_dir
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_folder_lands_file_by_file_each_whole_or_refused_with_its_reason(state, tmp_path):
    exports = tmp_path / "exports"
    _export(exports, "orders_2026-03-01.csv")
    _export(exports, "partner_orders_2026-03-01.parquet")
    _export(exports, "partner_orders_export.csv")  # its source, but no day
    _export(exports, "export.csv")  # no source prefix, and two sources are declared
    _export(exports, "returns_2026-03-01.csv")  # a source nobody declared
    (exports / "notes.txt").write_text("not a batch")
    (exports / ".hidden.csv").write_text("left alone")

    report = landing.land_files([exports], state, sources=SOURCES)

    lines = {outcome.file.name: outcome.line() for outcome in report.files}
    assert set(lines) == {
        "export.csv",
        "notes.txt",
        "orders_2026-03-01.csv",
        "partner_orders_2026-03-01.parquet",
        "partner_orders_export.csv",
        "returns_2026-03-01.csv",
    }
    assert lines["orders_2026-03-01.csv"] == (
        f"landed {exports / 'orders_2026-03-01.csv'} as orders_2026-03-01.csv: orders of 2026-03-01"
    )
    assert lines["partner_orders_2026-03-01.parquet"].startswith("landed ")
    assert "no day in its name: give it with churn land --day" in lines["partner_orders_export.csv"]
    assert "expected partner_orders_YYYY-MM-DD" in lines["partner_orders_export.csv"]
    assert lines["export.csv"].endswith(
        "cannot tell which landing source it is a batch of: name it <source>_YYYY-MM-DD.csv "
        "or give the source with churn land --source or make land SOURCE=; declared sources: "
        "orders, partner_orders"
    )
    assert (
        "source 'returns', which is not declared (declared: orders, partner_orders)"
        in (lines["returns_2026-03-01.csv"])
    )
    assert "unsupported format '.txt'" in lines["notes.txt"]
    assert report.summary() == "2 of 6 file(s) landed, 4 refused"
    # The good files wait whole; nothing of a refused one (not even a temporary file).
    assert _landing_area(state) == [
        "orders_2026-03-01.csv",
        "partner_orders_2026-03-01.parquet",
    ]
    assert (state.storage.landing_dir / "orders_2026-03-01.csv").read_bytes() == (
        exports / "orders_2026-03-01.csv"
    ).read_bytes()


def test_a_file_is_never_landed_as_another_source(state, tmp_path):
    partner = _export(tmp_path, "partner_orders_2026-03-02.csv", CONFIG.start_date)
    export = _export(tmp_path, "partner_orders-march.csv")

    as_orders = landing.land_files(
        [partner], state, source=ORDERS, day=CONFIG.start_date, sources=SOURCES
    )
    assert "its name makes it a partner_orders batch, not orders" in as_orders.files[0].line()
    # The day given must be the one the name says.
    as_partner = landing.land_files(
        [partner], state, source=PARTNER, day=CONFIG.start_date, sources=SOURCES
    )
    assert "its name says 2026-03-02, the day given is 2026-03-01" in as_partner.files[0].line()
    assert _landing_area(state) == []

    # A name that is no batch name lands as the source given, on the day given.
    given = landing.land_files(
        [export], state, source=PARTNER, day=CONFIG.start_date, sources=SOURCES
    )
    landed = state.storage.landing_dir / "partner_orders_2026-03-01.csv"
    assert given.files[0].landed == landed
    assert given.files[0].line() == (
        f"landed {export} as partner_orders_2026-03-01.csv: orders of 2026-03-01"
    )
    assert _landing_area(state) == [landed.name]


def test_the_only_declared_source_is_the_default(state, tmp_path):
    export = _export(tmp_path, "export.csv")
    returns = _export(tmp_path, "returns_2026-03-01.csv")

    report = landing.land_files([export, returns], state, day=CONFIG.start_date)

    assert report.files[0].line().endswith("as orders_2026-03-01.csv: orders of 2026-03-01")
    # Even with a day given, a file named for another source is not made an orders batch.
    assert "source 'returns', which is not declared (declared: orders)" in report.files[1].line()
    assert _landing_area(state) == ["orders_2026-03-01.csv"]


def test_patterns_and_paths_land_each_file_once_one_per_source_and_day(state, tmp_path):
    first = _export(tmp_path / "a", "orders_2026-03-01.csv")
    _export(tmp_path / "a", "orders_2026-03-02.csv", CONFIG.start_date + timedelta(days=1))
    again = _export(tmp_path / "b", "orders_2026-03-01.parquet")

    report = landing.land_files(
        [tmp_path / "a" / "*.csv", first, again, tmp_path / "nothing" / "*.csv"], state
    )

    assert [outcome.file for outcome in report.files] == [
        first,
        tmp_path / "a" / "orders_2026-03-02.csv",
        again,
        tmp_path / "nothing" / "*.csv",
    ]
    assert [outcome.landed is not None for outcome in report.files] == [True, True, False, False]
    assert report.files[2].refused == (
        f"{first} landed as the orders batch of 2026-03-01 earlier in this request: one file "
        "per source and day"
    )
    assert report.files[3].refused == "no file matches this pattern"
    assert _landing_area(state) == ["orders_2026-03-01.csv", "orders_2026-03-02.csv"]
    # A later request finds the batch waiting.
    later = landing.land_files([again], state)
    assert "orders_2026-03-01.csv is already waiting for 2026-03-01" in later.files[0].line()


def test_messages_count_rows_in_the_sources_own_noun(state, caplog):
    tickets = LandingSource(name="tickets", suite="raw_tickets", table="t", time_column="ts")
    assert tickets.counted(4930) == "4,930 rows"  # a source that declares no noun
    assert replace(tickets, noun="tickets").counted(12) == "12 tickets"
    with pytest.raises(ValueError, match="must be a word"):
        replace(tickets, noun=" ")

    # The partner's rows are counted in its own word, the shop's in theirs.
    partner = replace(PARTNER, noun="partner orders")
    day = CONFIG.start_date
    orders = land_simulated_days(CONFIG, state, [day])
    landing.land_batch(partner_batch(day), day, state, partner)
    accepted = pipeline.validate_landed_batches(state, (ORDERS, partner))
    with caplog.at_level(logging.INFO, logger=pipeline.__name__):
        ingested = pipeline.ingest_batches(accepted, state, (ORDERS, partner))
    partner_rows = len(partner_batch(day))
    assert ingested.rows_by_source == {"orders": orders, "partner_orders": partner_rows}
    assert ingested.rows == orders + partner_rows
    assert f"{orders:,} orders and {partner_rows:,} partner orders, 1 day(s)" in caplog.text


def test_a_source_with_no_data_yet_skips_only_the_tables_that_read_it(state, caplog):
    land_simulated_days(CONFIG, state)
    accepted = pipeline.validate_landed_batches(state, SOURCES)
    ingested = pipeline.ingest_batches(accepted, state, SOURCES)
    shop_table = replace(PARTNER_TABLE, name="shop_rhythm", sources=("orders",))

    with caplog.at_level(logging.INFO, logger=pipeline.__name__):
        built = pipeline.build_features(
            ingested.days, state, [PARTNER_TABLE, shop_table], SOURCES, as_of=AS_OF
        )

    reason = "source 'partner_orders' has no data yet: land a partner_orders_* batch first"
    assert built.skipped_tables == {"partner_rhythm": reason}
    assert f"feature table partner_rhythm skipped: {reason}" in caplog.text
    assert "partner_rhythm" not in built.table_versions
    assert delta_tables.table_version(state.storage.delta_table_path("partner_rhythm")) is None
    assert built.table_versions["shop_rhythm"] is not None  # the other model's table is built
    assert built.features_version is not None


def test_a_feature_service_waits_for_its_skipped_table_and_the_others_go_online(state):
    from models.catalog import load_specs

    specs = load_specs()
    waiting = next(spec for spec in specs if spec.feature_tables)
    # That model's table now reads a source nothing has landed for.
    tables = [
        replace(table, sources=("partner_orders",)) if spec is waiting else table
        for spec in specs
        for table in spec.feature_tables
    ]
    land_simulated_days(CONFIG, state)

    run = pipeline.run_feature_pipeline(
        state, [spec.feature_service for spec in specs], tables, SOURCES, as_of=AS_OF
    )

    skipped = {table.name for table in waiting.feature_tables}
    assert set(run.built.skipped_tables) == skipped
    online = set(run.materialized.views)
    assert online, "the other models' views are materialized"
    assert not online & skipped
    store = get_feature_store(state)
    others = {
        v for s in specs if s is not waiting for v in feature_views_of(store, s.feature_service)
    }
    assert others <= online  # every view another model reads, shared ones included
    own = set(feature_views_of(store, waiting.feature_service)) - others
    assert own, "the waiting model has a view of its own"
    assert not own & online
