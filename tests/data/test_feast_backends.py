"""Feast's registry, batch engine and offline store are settings: no code changes to switch.

The Ray engine runs here on a local Ray that Feast starts (two CPUs), against the real
Redis server; the registry runs on the real PostgreSQL server.
"""

import uuid
from datetime import UTC, datetime

import pandas as pd
import psycopg2
import pytest
import redis
import yaml
from feast import RepoConfig
from snapshot_support import snapshots

from core.settings import FEATURE_REPO_DIR, InvalidSettings, get_settings
from data import delta_tables
from data.store import (
    MaterializationFailed,
    apply_feature_definitions,
    feature_store_config,
    get_feature_store,
    get_online_features,
    materialize,
    write_feature_store_yaml,
)

SERVICE = "customer_features_v1"
EVERYTHING = (datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC))
# Only Jan 1: the older window that must not replace Jan 2's values.
OLDER = (datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
RAY = '{"ray_conf": {"num_cpus": 2}}'


@pytest.fixture(autouse=True, scope="module")
def _ray_stopped_after_the_module():
    """Feast's Ray engine starts a local Ray in this process; its threads would outlive the
    module (and free objects under later tests' feet): stop it once the module is done."""
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


def write_two_days(settings, customers: int = 50) -> None:
    """Jan 1 for every customer; Jan 2 again for the odd ones, with other values."""
    path = settings.storage.customer_features_path
    first = {c: float(c) for c in range(1, customers + 1)}
    delta_tables.replace_from(
        path, snapshots(first, "2026-01-01 23:59:59"), "snapshot_date", "2026-01-01"
    )
    second = {c: 1000.0 + c for c in range(1, customers + 1, 2)}
    delta_tables.replace_partitions(path, snapshots(second, "2026-01-02 23:59:59"), "snapshot_date")


def test_engine_and_offline_store_are_written_from_the_settings(state, monkeypatch):
    config = feature_store_config(state)
    assert config["batch_engine"] == {"type": "local"}
    assert config["offline_store"] == {"type": "duckdb"}
    monkeypatch.setenv("CHURN_FEAST_BATCH_ENGINE", "ray.engine")
    monkeypatch.setenv(
        "CHURN_FEAST_BATCH_ENGINE_OPTIONS", '{"ray_address": "ray://head:10001", "max_workers": 4}'
    )
    monkeypatch.setenv("CHURN_FEAST_OFFLINE_STORE", "ray")
    monkeypatch.setenv("CHURN_FEAST_OFFLINE_STORE_OPTIONS", '{"target_partition_size_mb": 16}')
    settings = get_settings()
    written = yaml.safe_load(write_feature_store_yaml(settings).read_text())
    assert written["batch_engine"] == {
        "type": "ray.engine",
        "ray_address": "ray://head:10001",
        "max_workers": 4,
    }
    assert written["offline_store"] == {"type": "ray", "target_partition_size_mb": 16}
    # Feast itself parses the options into its engine's config class.
    parsed = RepoConfig(repo_path=FEATURE_REPO_DIR, **written)
    assert type(parsed.batch_engine).__name__ == "RayComputeEngineConfig"
    assert parsed.batch_engine.max_workers == 4
    assert parsed.offline_store.target_partition_size_mb == 16


def test_an_option_feast_does_not_know_or_a_type_among_the_options_is_refused(state, monkeypatch):
    monkeypatch.setenv("CHURN_FEAST_BATCH_ENGINE", "ray.engine")
    monkeypatch.setenv("CHURN_FEAST_BATCH_ENGINE_OPTIONS", '{"max_wrokers": 4}')
    config = feature_store_config(get_settings())
    with pytest.raises(Exception, match="max_wrokers"):
        RepoConfig(repo_path=FEATURE_REPO_DIR, **config).batch_engine  # noqa: B018
    monkeypatch.setenv("CHURN_FEAST_BATCH_ENGINE_OPTIONS", '{"type": "local"}')
    with pytest.raises(InvalidSettings, match="CHURN_FEAST_BATCH_ENGINE_OPTIONS"):
        get_settings()
    monkeypatch.setenv("CHURN_FEAST_BATCH_ENGINE", "flink")
    with pytest.raises(InvalidSettings, match="CHURN_FEAST_BATCH_ENGINE"):
        get_settings()


@pytest.mark.slow
def test_registry_in_postgres_applies_materializes_and_serves(state, postgres_url, monkeypatch):
    database = f"churn_feast_registry_test_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CHURN_POSTGRES_URL", postgres_url)
    monkeypatch.setenv("CHURN_FEAST_REGISTRY_DATABASE", database)
    settings = get_settings()
    assert feature_store_config(settings)["registry"]["path"].startswith("postgresql+psycopg2://")
    write_two_days(settings, customers=3)
    applied = apply_feature_definitions(settings)  # the Feast CLI, on the PostgreSQL registry
    assert "customer_features" in applied
    store = get_feature_store(settings)
    assert materialize(store, *EVERYTHING, [SERVICE]) == ["customer_features"]
    online = get_online_features(store, [1, 2, 404], SERVICE)
    assert online["total_spend_30d"].tolist()[:2] == [1001.0, 2.0]
    assert not (settings.storage.feast_dir / "registry.db").exists()
    with (
        psycopg2.connect(settings.storage.postgres_database_url(database)) as conn,
        conn.cursor() as cur,
    ):
        cur.execute("SELECT feature_view_name FROM feature_views WHERE project_id = 'churn'")
        assert "customer_features" in {row[0] for row in cur.fetchall()}


def materialized_online(settings, customers: list[int]) -> pd.DataFrame:
    store = get_feature_store(settings)
    assert materialize(store, *EVERYTHING, [SERVICE]) == ["customer_features"]
    materialize(store, *OLDER, [SERVICE])  # an older window later: must change nothing
    return get_online_features(store, customers, SERVICE, include_event_timestamps=True)


@pytest.mark.slow
def test_ray_engine_gives_the_local_engines_online_rows(state, redis_url, monkeypatch):
    monkeypatch.setenv("CHURN_REDIS_URL", redis_url)
    monkeypatch.setenv("CHURN_FEATURE_TTL_DAYS", "3650")  # the Ray engine drops rows past TTL
    customers = [*range(1, 51), 404]
    monkeypatch.setenv("CHURN_FEAST_PROJECT", "churn_local")
    local = get_settings()
    write_two_days(local)
    apply_feature_definitions(local)
    expected = materialized_online(local, customers)

    monkeypatch.setenv("CHURN_FEAST_PROJECT", "churn_ray")
    monkeypatch.setenv("CHURN_FEAST_BATCH_ENGINE", "ray.engine")
    monkeypatch.setenv("CHURN_FEAST_BATCH_ENGINE_OPTIONS", RAY)
    on_ray = get_settings()
    apply_feature_definitions(on_ray)
    got = materialized_online(on_ray, customers)

    pd.testing.assert_frame_equal(got, expected)
    assert got["total_spend_30d"].tolist()[:3] == [1001.0, 2.0, 1003.0]
    assert pd.isna(got["total_spend_30d"].iloc[-1])


@pytest.mark.slow
def test_ray_engine_write_failure_fails_the_materialization(state, redis_url, monkeypatch):
    """Feast's Ray engine logs a failed write and reports success; the platform does not."""
    monkeypatch.setenv("CHURN_FEATURE_TTL_DAYS", "3650")
    monkeypatch.setenv("CHURN_FEAST_BATCH_ENGINE", "ray.engine")
    monkeypatch.setenv("CHURN_FEAST_BATCH_ENGINE_OPTIONS", RAY)
    monkeypatch.setenv("CHURN_FEAST_PROJECT", "churn_denied")
    write_two_days(get_settings(), customers=5)
    apply_feature_definitions(get_settings())
    # A Redis user that may read but not write: Feast's write is refused in the Ray worker
    # (NOPERM), while the platform's check still reads.
    user, password = f"churn_readonly_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser(
        user, enabled=True, passwords=[f"+{password}"], keys=["*"],
        commands=["+@all", "-@write"],
    )  # fmt: skip
    try:
        host_db = redis_url.split("://", 1)[1]
        monkeypatch.setenv("CHURN_REDIS_URL", f"redis://{user}:{password}@{host_db}")
        store = get_feature_store(get_settings())
        with pytest.raises(MaterializationFailed) as failed:
            materialize(store, *EVERYTHING, [SERVICE])
        message = str(failed.value)
        assert "OnlineRowsMissing" in message and "5 of 5 entities" in message, message
    finally:
        admin.acl_deluser(user)

    # An unreachable Redis fails too (the engine's write and the check both fail).
    monkeypatch.setenv("CHURN_REDIS_URL", "redis://127.0.0.1:1/0")
    store = get_feature_store(get_settings())
    with pytest.raises(MaterializationFailed, match="customer_features"):
        materialize(store, *EVERYTHING, [SERVICE])
