"""Train/serve parity on the session's data, and the push path for fresh features."""

from datetime import UTC, datetime

import pytest

from core.schema import FEATURE_COLUMNS
from data import delta_tables
from data.freshness import fold_order, push_order
from data.parity import check_parity
from data.store import get_feature_store, get_online_features


def test_parity_holds_on_the_pipeline_data(world):
    report = check_parity(world.settings, "customer_features_v1", sample=150)
    assert report.ok, report.summary()
    assert report.checked == 150 and report.mismatches == ()
    assert set(report.features) == set(FEATURE_COLUMNS)


def test_parity_names_a_feature_computed_differently_online(world):
    settings = world.settings
    store = get_feature_store(settings)
    victim = check_parity(settings, "customer_features_v1", sample=10, seed=1).entities[0]
    days = delta_tables.partition_values(settings.storage.customer_features_path, "snapshot_date")
    latest = delta_tables.read_table(
        settings.storage.customer_features_path, filters=[("snapshot_date", "=", days[-1])]
    )
    original = latest[latest["customer_id"] == victim].drop(columns=["snapshot_date"])
    skewed = original.assign(total_spend_30d=original["total_spend_30d"] * 1.1 + 1)
    store.write_to_online_store("customer_features", skewed)
    try:
        broken = check_parity(settings, "customer_features_v1", sample=10, seed=1)
        assert not broken.ok
        assert [(m.entity, m.feature) for m in broken.mismatches] == [(victim, "total_spend_30d")]
        assert f"customer_id {victim} total_spend_30d" in broken.summary()
    finally:
        store.write_to_online_store("customer_features", original)
    assert check_parity(settings, "customer_features_v1", sample=10, seed=1).ok


def test_fold_order_by_hand():
    current = {
        "total_orders_30d": 2, "total_spend_30d": 30.0, "avg_order_value": 20.0,
        "days_since_last_order": 9, "customer_segment": "budget", "lifetime_value": 60.0,
    }  # fmt: skip
    order = {"amount": 40.0, "customer_segment": "regular"}
    assert fold_order(current, order) == {
        "total_orders_30d": 3,
        "total_spend_30d": 70.0,
        "avg_order_value": 25.0,  # (60 + 40) / (3 + 1)
        "days_since_last_order": 0,
        "customer_segment": "regular",
        "lifetime_value": 100.0,
    }
    assert fold_order(None, order)["total_orders_30d"] == 1


def test_a_pushed_order_is_served_online(world):
    settings = world.settings
    store = get_feature_store(settings)
    customer = 777
    before = get_online_features(store, [customer], "customer_features_v1").iloc[0]
    order = {
        "customer_id": customer,
        "order_timestamp": datetime.now(UTC),
        "amount": 123.45,
        "customer_segment": "premium",
    }
    push_order(store, order, "customer_features_v1")
    after = get_online_features(store, [customer], "customer_features_v1").iloc[0]
    assert after["total_orders_30d"] == before["total_orders_30d"] + 1
    assert after["total_spend_30d"] == pytest.approx(before["total_spend_30d"] + 123.45)
    assert after["days_since_last_order"] == 0 and after["customer_segment"] == "premium"
    # Parity treats it as fresher, not as a mismatch.
    assert set(FEATURE_COLUMNS) <= set(after.index)
