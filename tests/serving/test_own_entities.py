"""A model on its own entities: string-keyed products in a table of their own.

The third model here (``restock``: will a product sell out?) is keyed by a string ``sku``
and reads a Delta table of its own, registered in Feast as the string-keyed fixture of
tests/data/test_string_entity_keys.py is, next to a shop ``customer_features`` table of
integer customers. Batch scoring scores its products as of each day, never the shop's
customers, and the deploy step smoke-tests it with one of its own online products. The
shared models' listings (churn, next_spend) are the customer snapshots, as before.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest
from feast import Entity, FeatureService, FeatureView, Field, FileSource
from feast.data_format import DeltaFormat
from feast.types import Float64, Int64, String
from feast.value_type import ValueType
from serving_support import free_tcp_port

from core.schema import EntityKey, Feature
from core.settings import get_settings
from core.spec import ModelSpec
from core.steps import DeployOutcome, TrainingSet
from data import delta_tables
from data.entities import (
    EntitiesDisagree,
    entities_as_of,
    entity_listing,
    listing_of,
    newest_entities,
)
from data.store import get_feature_store, materialize
from models.catalog import get_spec
from models.recipes import tree_pipeline
from models.registry import CHAMPION, alias_version, register_model, set_champion
from models.tracking import configure_mlflow
from models.training import train_and_log
from serving.batch_scoring import batch_scores_path, end_of_day, score_batch
from serving.deploy import deploy_champion, smoke_entity
from serving.model import load_version

pytestmark = pytest.mark.slow

DAYS = [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)]
SKUS = [f"sku-{i:03d}" for i in range(30)]
NEW_SKU = "aaa-new"  # lands on the last day only, after the materialization: not online
SHOP_CUSTOMERS = [1, 2, 3, 4, 5]
TABLE = "shelf_items"
PRODUCT = EntityKey("product", "sku", "string", "A product on the shelf, keyed by its SKU.")
FEATURES = (
    Feature("price", "float64", "Shelf price.", min_value=0),
    Feature("units_7d", "int64", "Units sold in the last 7 days.", min_value=0),
    Feature("category", "string", "Product category.", values=("food", "toys")),
)


def no_labels(settings) -> pd.DataFrame:
    raise AssertionError("this test trains on a training set of its own")


def no_label_versions(settings) -> dict[str, int]:
    return {}


def make_estimator(spec: ModelSpec, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier

    trees = HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=7, random_state=seed)
    return tree_pipeline(spec, "classifier", trees)


RESTOCK = ModelSpec(
    name="restock",
    description="Will a product sell out this week?",
    registered_model="product_restock_model",
    experiment="product_restock",
    feature_service="restock_v1",
    features=FEATURES,
    task="classification",
    label="sold_out",
    build_labels=no_labels,
    label_versions=no_label_versions,
    make_estimator=make_estimator,
    gate_metric="f1",
    min_score=0.0,
    output="sold_out",
    training_suite="restock_training_set",
    entity=PRODUCT,
)


def item_rows(skus: list[str], day: date, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    stamp = pd.Timestamp(end_of_day(day))
    return pd.DataFrame(
        {
            "sku": skus,
            "event_timestamp": stamp,
            "created_timestamp": stamp,
            "snapshot_date": day.isoformat(),
            "price": rng.uniform(1, 100, len(skus)).round(2),
            "units_7d": rng.integers(0, 20, len(skus)),
            "category": rng.choice(["food", "toys"], len(skus)),
        }
    )


def register_restock_views(settings) -> None:
    """The model's own Feast objects: a string entity, its table's source, view, service."""
    store = get_feature_store(settings)
    product = Entity(name=PRODUCT.name, join_keys=[PRODUCT.join_key], value_type=ValueType.STRING)
    source = FileSource(
        name=TABLE, path=str(settings.storage.delta_table_path(TABLE)),
        file_format=DeltaFormat(), timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
    )  # fmt: skip
    view = FeatureView(
        name=TABLE, entities=[product], source=source, online=True,
        schema=[Field(name="price", dtype=Float64), Field(name="units_7d", dtype=Int64),
                Field(name="category", dtype=String)],
    )  # fmt: skip
    store.apply([product, source, view, FeatureService(name="restock_v1", features=[view])])


def train_champion(settings, tmp_path) -> int:
    """A registered, verified v1 of the model as its champion, on a synthetic training set."""
    rng = np.random.default_rng(4)
    rows = 600
    frame = pd.DataFrame(
        {
            "price": rng.uniform(1, 100, rows),
            "units_7d": rng.integers(0, 20, rows),
            "category": rng.choice(["food", "toys"], rows),
        }
    )
    frame["sold_out"] = ((frame["units_7d"] > 10) & (frame["price"] < 60)).astype("int64")
    half = rows // 2
    frame.iloc[:half].to_parquet(tmp_path / "train.parquet", index=False)
    frame.iloc[half:].to_parquet(tmp_path / "holdout.parquet", index=False)
    training_set = TrainingSet(
        str(tmp_path / "train.parquet"), str(tmp_path / "holdout.parquet"), {TABLE: 0},
        half, rows - half, float(frame["sold_out"].mean()), DAYS[0].isoformat(),
    )  # fmt: skip
    quick = settings.model_copy(update={"evaluate_holdout": False})
    trained = train_and_log(RESTOCK, training_set, quick, dag_run_id="own-entities")
    version = register_model(RESTOCK, trained, quick).version
    set_champion(configure_mlflow(settings), RESTOCK.registered_model, version, None)
    return version


def test_a_string_keyed_model_is_scored_and_smoke_tested_on_its_own_entities(
    state, tmp_path, monkeypatch
):
    settings = state
    items = pd.concat(
        [item_rows(SKUS, DAYS[0], 1), item_rows(SKUS, DAYS[1], 2),
         item_rows([NEW_SKU, *SKUS], DAYS[2], 3)],
        ignore_index=True,
    )  # fmt: skip
    delta_tables.replace_partitions(
        settings.storage.delta_table_path(TABLE), items, "snapshot_date"
    )
    # The shop's customers have snapshots too: the scoring of the third model must not see them.
    shop = pd.DataFrame(
        {
            "customer_id": SHOP_CUSTOMERS,
            "event_timestamp": pd.Timestamp(end_of_day(DAYS[2])),
            "snapshot_date": DAYS[2].isoformat(),
        }
    )
    delta_tables.replace_partitions(settings.storage.customer_features_path, shop, "snapshot_date")
    register_restock_views(settings)
    store = get_feature_store(settings)
    # Online: everything up to the end of the second day (the new product is not there yet).
    start = datetime(2026, 2, 1, tzinfo=UTC)
    assert materialize(store, start, end_of_day(DAYS[1]), ["restock_v1"]) == [TABLE]

    listing = listing_of(store, RESTOCK)
    assert (listing.join_key, listing.key_dtype) == ("sku", "string")
    assert listing.table_names == [TABLE]
    with pytest.raises(EntitiesDisagree, match="declares entity key"):
        listing_of(store, replace(RESTOCK, entity=replace(PRODUCT, dtype="int64")))
    with pytest.raises(EntitiesDisagree, match="declares entity 'item', but the views"):
        listing_of(store, replace(RESTOCK, entity=replace(PRODUCT, name="item")))

    version = train_champion(settings, tmp_path)
    champion = load_version(settings, RESTOCK, version, CHAMPION)

    # Day one: its 30 products, scored as of that day's features; no shop customer.
    first = score_batch(RESTOCK, settings, DAYS[0])
    assert (first.model, first.model_version, first.scored, first.unknown) == (
        "restock",
        version,
        len(SKUS),
        0,
    )
    scores = delta_tables.read_table(batch_scores_path(settings, RESTOCK))
    assert sorted(scores["sku"]) == SKUS
    assert all(isinstance(sku, str) for sku in scores["sku"])
    day_one = items[items["snapshot_date"] == DAYS[0].isoformat()].set_index("sku")
    expected, decisions = champion.score_rows(
        day_one.loc[scores["sku"], [f.name for f in FEATURES]].to_dict("records")
    )
    assert scores["probability"].tolist() == pytest.approx(expected, abs=1e-9)
    assert scores["sold_out"].tolist() == [bool(d) for d in decisions]

    # The last day: the product that appeared that day is known, offline, and scored too.
    last = score_batch(RESTOCK, settings, DAYS[2])
    assert last.scored == len(SKUS) + 1
    scores = delta_tables.read_table(batch_scores_path(settings, RESTOCK))
    on_last = scores[scores["score_date"] == DAYS[2].isoformat()]
    assert sorted(on_last["sku"]) == sorted([NEW_SKU, *SKUS])
    assert not set(scores["sku"]) & {str(c) for c in SHOP_CUSTOMERS}

    # The smoke entity: the smallest of its newest products whose features are online (the
    # new one is not online yet), a string, as the spec's key is.
    assert smoke_entity(RESTOCK, settings) == SKUS[0]

    # The deploy step with nothing serving: the version is not tried, champion stays, and
    # the product it would have asked about is its own.
    port = free_tcp_port()
    for key, value in {
        "CHURN_DEPLOY_TARGET": "local",
        "CHURN_DEPLOY_SERVING_URL": f"http://127.0.0.1:{port}",
        "CHURN_DEPLOY_TIMEOUT_SECONDS": "3",
        "CHURN_DEPLOY_UNREACHABLE_SECONDS": "1",
        "CHURN_DEPLOY_POLL_SECONDS": "0.2",
    }.items():
        monkeypatch.setenv(key, value)
    result = deploy_champion(RESTOCK, get_settings())
    assert result.outcome == DeployOutcome.NOTHING_SERVING
    assert result.smoke_entity == SKUS[0]
    assert alias_version(settings, RESTOCK.registered_model, CHAMPION) == version


def test_the_shared_models_list_the_customer_snapshots(world):
    settings = world.settings
    store = get_feature_store(settings)
    snapshots = delta_tables.read_table(
        settings.storage.customer_features_path, columns=["customer_id", "snapshot_date"]
    )
    days = sorted(snapshots["snapshot_date"].unique())
    for name in ("churn", "next_spend"):
        spec = get_spec(name)
        listing = listing_of(store, spec)
        assert (listing.join_key, listing.key_dtype) == ("customer_id", "int64")
        for day in (days[len(days) // 2], days[-1]):
            # Every customer with a snapshot by the day: what batch scoring always scored.
            known = snapshots.loc[snapshots["snapshot_date"] <= day, "customer_id"]
            listed = entities_as_of(listing, end_of_day(date.fromisoformat(day)))
            assert listed.tolist() == sorted(known.unique().tolist()), (name, day)
    newest = newest_entities(entity_listing(store, "customer_features_v1"))
    latest = snapshots.loc[snapshots["snapshot_date"] == days[-1], "customer_id"]
    assert newest.keys.tolist() == sorted(latest.tolist())
    assert newest.as_of.date() == date.fromisoformat(days[-1])
    assert smoke_entity(get_spec("churn"), settings) in set(latest.tolist())
