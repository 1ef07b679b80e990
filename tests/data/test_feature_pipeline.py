"""The feature pipeline's steps: a bad batch changes nothing; re-runs never duplicate."""

from datetime import date, timedelta

import pandas as pd
import pytest
from platform_support import run_features

from data import delta_tables, landing, pipeline
from data.simulate import SimulationConfig, land_simulated_days, simulate_days
from data.store import get_feature_store, get_online_features
from models.catalog import computed_tables

CONFIG = SimulationConfig(customers=300, start_date=date(2026, 3, 1), days=45, seed=5)


def land(settings, days) -> None:
    land_simulated_days(CONFIG, settings, days)


def all_days(n: int, offset: int = 0) -> list[date]:
    return [CONFIG.start_date + timedelta(days=offset + i) for i in range(n)]


def test_bad_batch_is_refused_and_nothing_downstream_changes(state):
    land(state, all_days(40))
    run_features(state)
    versions = {
        p: delta_tables.table_version(p)
        for p in (
            state.storage.raw_orders_path,
            state.storage.customer_features_path,
            state.storage.delta_table_path("churn_labels"),
        )
    }
    store = get_feature_store(state)
    online_before = get_online_features(store, [1, 2, 3], "customer_features_v1")

    good_day, bad_day = all_days(2, offset=40)
    land(state, [good_day])
    bad = dict(simulate_days(CONFIG, [bad_day]))[bad_day]
    bad.loc[0, "amount"] = -5.0
    landing.land_batch(bad, bad_day, state)

    with pytest.raises(pipeline.BatchesRefused) as refused:
        pipeline.validate_landed_batches(state)
    message = str(refused.value)
    assert "amount" in message and "nothing ingested" in message
    assert {p: delta_tables.table_version(p) for p in versions} == versions
    pd.testing.assert_frame_equal(
        get_online_features(store, [1, 2, 3], "customer_features_v1"), online_before
    )
    quarantined = list((state.storage.quarantine_dir).rglob("batch.parquet"))
    assert len(quarantined) == 1 and bad_day.isoformat() in str(quarantined[0])
    # The good batch waits for the next run; the bad one left the landing area.
    assert [landing.batch_day(p) for p in landing.pending_batches(state)] == [good_day]


def test_rerunning_days_gives_the_same_tables(state):
    land(state, all_days(45))
    run_features(state)
    raw = delta_tables.read_table(state.storage.raw_orders_path).sort_values("order_id")
    features = delta_tables.read_table(state.storage.customer_features_path)
    land(state, all_days(5, offset=35))  # the same days arrive again
    result = run_features(state)
    assert result.ingested.days == [d.isoformat() for d in all_days(5, offset=35)]
    raw_again = delta_tables.read_table(state.storage.raw_orders_path).sort_values("order_id")
    assert raw_again["order_id"].is_unique
    pd.testing.assert_frame_equal(raw.reset_index(drop=True), raw_again.reset_index(drop=True))
    features_again = delta_tables.read_table(state.storage.customer_features_path)
    key = ["customer_id", "snapshot_date"]
    assert not features_again.duplicated(key).any()
    columns = [c for c in features.columns if c != "created_timestamp"]
    pd.testing.assert_frame_equal(
        features.sort_values(key)[columns].reset_index(drop=True),
        features_again.sort_values(key)[columns].reset_index(drop=True),
    )


def _today_so_far(batch: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    """A simulated day's orders squeezed into today between midnight and ``now``."""
    midnight = now.floor("D")
    offset = batch["order_timestamp"] - batch["order_timestamp"].dt.floor("D")
    elapsed = (now - midnight - pd.Timedelta(seconds=1)) / pd.Timedelta(days=1)
    squeezed = (midnight + offset * elapsed).dt.floor("us")
    return batch.assign(order_timestamp=squeezed.astype("datetime64[ns, UTC]"))


def test_todays_snapshot_is_not_in_the_future_and_incremental_materialization_reaches_it(state):
    """A batch of the unfinished current day; then Feast's own ``materialize_incremental``."""
    import time
    from datetime import UTC, datetime

    today = datetime.now(UTC).date()
    recent = SimulationConfig(customers=200, start_date=today - timedelta(days=20), days=21)
    days = [recent.start_date + timedelta(days=i) for i in range(21)]
    land_simulated_days(recent, state, days[:-1])
    ((_, today_batch),) = simulate_days(recent, [today])
    morning = _today_so_far(today_batch.iloc[: len(today_batch) // 2], pd.Timestamp.now(tz="UTC"))
    landing.land_batch(morning, today, state)
    run_features(state)

    features = delta_tables.read_table(state.storage.customer_features_path)
    assert features["event_timestamp"].max() <= pd.Timestamp.now(tz="UTC")

    # Later the same day the full batch so far arrives again; Feast's incremental run (what
    # `feast materialize-incremental <now>` calls) picks up where the last window ended.
    time.sleep(2)
    landing.land_batch(_today_so_far(today_batch, pd.Timestamp.now(tz="UTC")), today, state)
    ingested = pipeline.ingest_batches(pipeline.validate_landed_batches(state), state)
    pipeline.build_features(
        ingested.days,
        state,
        computed_tables(),
        as_of=datetime.now(UTC),  # this test is about Feast's wall-clock incremental runs
    )
    store = get_feature_store(state)
    store.materialize_incremental(end_date=datetime.now(UTC))

    latest = delta_tables.read_table(
        state.storage.customer_features_path, filters=[("snapshot_date", "=", today.isoformat())]
    ).sort_values("customer_id")
    assert latest["event_timestamp"].max() <= pd.Timestamp.now(tz="UTC")
    online = get_online_features(store, latest["customer_id"].tolist(), "customer_features_v1")
    assert online["total_orders_30d"].tolist() == latest["total_orders_30d"].tolist()
