"""The online store on the real Redis server, and the Feast CLI on feature_repo/."""

import gc
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from snapshot_support import snapshots

from core.settings import FEATURE_REPO_DIR, get_settings
from data import delta_tables
from data.store import (
    apply_feature_definitions,
    feast_redis_connection_string,
    feature_views_of,
    get_feature_store,
    get_online_features,
    heap_frozen_for_gc,
    materialize,
    write_feature_store_yaml,
)


def test_redis_url_becomes_feast_connection_string():
    assert feast_redis_connection_string("redis://127.0.0.1:6380/2") == "127.0.0.1:6380,db=2"
    assert (
        feast_redis_connection_string("rediss://u:secret@cache:6379")
        == "cache:6379,password=secret,username=u,ssl=true"
    )
    with pytest.raises(ValueError, match="redis://"):
        feast_redis_connection_string("http://cache:6379")


def test_materialize_into_real_redis(state, redis_url, monkeypatch):
    monkeypatch.setenv("CHURN_REDIS_URL", redis_url)
    settings = get_settings()
    assert "type: redis" in write_feature_store_yaml(settings).read_text()
    path = settings.storage.customer_features_path
    delta_tables.replace_from(
        path, snapshots({1: 10.0, 2: 20.0}, "2026-01-01 23:59:59"), "snapshot_date", "2026-01-01"
    )
    delta_tables.replace_partitions(
        path, snapshots({1: 15.0}, "2026-01-02 23:59:59"), "snapshot_date"
    )
    apply_feature_definitions(settings)
    store = get_feature_store(settings)
    everything = (datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC))
    assert materialize(store, *everything, ["customer_features_v1"]) == ["customer_features"]
    materialize(store, *everything, ["customer_features_v1"])  # idempotent
    online = get_online_features(store, [1, 2, 404], "customer_features_v1")
    assert online["total_spend_30d"].tolist()[:2] == [15.0, 20.0]
    assert pd.isna(online["total_spend_30d"].iloc[2])
    # An older window materialized later must not replace newer values (Redis keeps them).
    materialize(
        store,
        datetime(2025, 12, 1, tzinfo=UTC),
        datetime(2026, 1, 2, tzinfo=UTC),
        ["customer_features_v1"],
    )
    again = get_online_features(store, [1], "customer_features_v1")
    assert again["total_spend_30d"].tolist() == [15.0]


def test_heap_is_frozen_only_while_materializing_and_a_callers_freeze_is_kept():
    # Code an earlier test ran in this process (Airflow's task runner) may have left the
    # heap frozen; this test starts from an unfrozen one.
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    with heap_frozen_for_gc():
        frozen = gc.get_freeze_count()
    assert frozen > 0
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        caller_frozen = gc.get_freeze_count()
        with heap_frozen_for_gc():
            pass
        # Still frozen: the caller's freeze was not undone. The count itself may fall a
        # little, as frozen objects another thread drops are freed (never raised).
        assert 0 < gc.get_freeze_count() <= caller_frozen
        assert gc.get_freeze_count() > caller_frozen // 2
    finally:
        gc.unfreeze()


@pytest.mark.slow
def test_feast_cli_applies_and_materializes_the_repo(state, tmp_path):
    """`feast apply` and `feast materialize` run on feature_repo/ as a Feast user runs them."""
    delta_tables.replace_from(
        state.storage.customer_features_path,
        snapshots({7: 70.0}, "2026-01-01 23:59:59"),
        "snapshot_date",
        "2026-01-01",
    )
    yaml_path = write_feature_store_yaml(state)
    feast = str(Path(sys.executable).with_name("feast"))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    base = [feast, "--chdir", str(FEATURE_REPO_DIR), "--feature-store-yaml", str(yaml_path)]
    applied = subprocess.run([*base, "apply"], env=env, capture_output=True, text=True, timeout=300)
    assert applied.returncode == 0, applied.stderr[-2000:]
    assert "customer_features" in applied.stdout
    materialized = subprocess.run(
        # Only the view whose table this test wrote: another model's view has no table here.
        [*base, "materialize", "2025-12-31T00:00:00", "2026-01-02T00:00:00",
         "--views", "customer_features"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert materialized.returncode == 0, materialized.stderr[-2000:]
    online = get_online_features(get_feature_store(state), [7], "customer_features_v1")
    assert online["lifetime_value"].tolist() == [70.0]


def test_sqlite_online_store_keeps_newer_values_against_an_older_window(state):
    path = state.storage.customer_features_path
    delta_tables.replace_from(
        path, snapshots({1: 10.0}, "2026-01-01 23:59:59"), "snapshot_date", "2026-01-01"
    )
    delta_tables.replace_partitions(
        path, snapshots({1: 15.0}, "2026-01-02 23:59:59"), "snapshot_date"
    )
    apply_feature_definitions(state)
    store = get_feature_store(state)
    materialize(
        store,
        datetime(2025, 12, 1, tzinfo=UTC),
        datetime(2026, 1, 3, tzinfo=UTC),
        ["customer_features_v1"],
    )
    assert get_online_features(store, [1], "customer_features_v1")["total_spend_30d"].tolist() == [
        15.0
    ]
    # Feast's SQLite store would write the Jan 1 value back; the platform's guard refuses it.
    materialize(
        store,
        datetime(2025, 12, 1, tzinfo=UTC),
        datetime(2026, 1, 2, tzinfo=UTC),
        ["customer_features_v1"],
    )
    assert get_online_features(store, [1], "customer_features_v1")["total_spend_30d"].tolist() == [
        15.0
    ]


def test_materializing_a_feature_service_touches_only_its_views(state):
    delta_tables.replace_from(
        state.storage.customer_features_path,
        snapshots({1: 10.0}, "2026-01-01 23:59:59"),
        "snapshot_date",
        "2026-01-01",
    )
    apply_feature_definitions(state)
    store = get_feature_store(state)
    assert feature_views_of(store, "customer_features_v1") == ["customer_features"]
    done = materialize(
        store,
        datetime(2025, 12, 1, tzinfo=UTC),
        datetime(2026, 1, 2, tzinfo=UTC),
        ["customer_features_v1"],
    )
    assert done == ["customer_features"]
    assert get_online_features(store, [1], "customer_features_v1")["total_spend_30d"].tolist() == [
        10.0
    ]
