"""String entity keys work through the store helpers as integer ones do (a SKU, say)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, RepoConfig
from feast.data_format import DeltaFormat
from feast.types import Float64
from feast.value_type import ValueType

from data import delta_tables
from data.store import (
    ensure_duckdb_delta_extension,
    get_online_features,
    get_training_frame,
    materialize,
)


def test_materialize_online_and_point_in_time_reads_with_string_keys(tmp_path) -> None:
    table = tmp_path / "delta" / "prices"
    stamps = pd.to_datetime(["2026-01-01 23:59:59", "2026-01-02 23:59:59"], utc=True)
    frame = pd.DataFrame(
        {
            "sku": ["a-1", "a-1", "b-2"],
            "event_timestamp": [stamps[0], stamps[1], stamps[0]],
            "created_timestamp": stamps[1],
            "snapshot_date": ["2026-01-01", "2026-01-02", "2026-01-01"],
            "price": [10.0, 12.5, 3.0],
        }
    )
    delta_tables.replace_partitions(table, frame, "snapshot_date")
    ensure_duckdb_delta_extension()
    store = FeatureStore(
        config=RepoConfig(
            repo_path=tmp_path,
            project="string_keys",
            provider="local",
            registry={"registry_type": "sql", "path": f"sqlite:///{tmp_path / 'registry.db'}"},
            online_store={"type": "sqlite", "path": str(tmp_path / "online.db")},
            offline_store={"type": "duckdb"},
            entity_key_serialization_version=3,
        )
    )
    product = Entity(name="product", join_keys=["sku"], value_type=ValueType.STRING)
    source = FileSource(
        name="prices", path=str(table), file_format=DeltaFormat(),
        timestamp_field="event_timestamp", created_timestamp_column="created_timestamp",
    )  # fmt: skip
    prices = FeatureView(
        name="prices", entities=[product], schema=[Field(name="price", dtype=Float64)],
        source=source, online=True,
    )  # fmt: skip
    service = FeatureService(name="prices_v1", features=[prices])
    store.apply([product, source, prices, service])

    done = materialize(
        store, datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC), ["prices_v1"]
    )
    assert done == ["prices"]
    online = get_online_features(store, ["a-1", "b-2", "zz-9"], "prices_v1", entity_key="sku")
    assert online["sku"].tolist() == ["a-1", "b-2", "zz-9"]
    assert online["price"].tolist()[:2] == [12.5, 3.0] and pd.isna(online["price"].iloc[2])

    rows = pd.DataFrame(
        {"sku": ["a-1", "a-1"], "event_timestamp": [stamps[0], stamps[1]]}
    )  # as of the end of each day: the price of that day
    offline = get_training_frame(store, rows, "prices_v1")
    assert offline["price"].tolist() == [10.0, 12.5]
