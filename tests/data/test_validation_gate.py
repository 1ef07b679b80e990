"""Each class of bad raw batch is refused by name, and nothing downstream changes."""

import hashlib
import math
from datetime import date, timedelta

import pandas as pd
import pytest
from platform_support import run_features

from core.schema import ENTITY_ID_MAX
from core.settings import get_settings
from data import delta_tables, landing, pipeline
from data.simulate import SimulationConfig, land_simulated_days, simulate_days
from data.store import get_feature_store, get_online_features

CONFIG = SimulationConfig(customers=300, start_date=date(2026, 3, 1), days=40, seed=5)
NEXT_DAY = CONFIG.start_date + timedelta(days=CONFIG.days)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """40 good days through the whole feature pipeline."""
    root = tmp_path_factory.mktemp("gate")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHURN_STATE_DIR", str(root / "state"))
        mp.setenv("CHURN_FEATURE_STORE_YAML", str(root / "state" / "feature_store.yaml"))
        mp.delenv("CHURN_REDIS_URL", raising=False)
        settings = get_settings()
        land_simulated_days(CONFIG, settings)
        run_features(settings)
        yield settings


def good_batch() -> pd.DataFrame:
    return dict(simulate_days(CONFIG, [NEXT_DAY]))[NEXT_DAY]


def downstream(settings) -> dict:
    """Everything a refused batch must leave alone: table versions, registry, online values."""
    store = get_feature_store(settings)
    return {
        "versions": [
            delta_tables.table_version(p)
            for p in (
                settings.storage.raw_orders_path,
                settings.storage.customer_features_path,
                settings.storage.delta_table_path("churn_labels"),
            )
        ],
        "registry": hashlib.sha256(
            (settings.storage.feast_dir / "registry.db").read_bytes()
        ).hexdigest(),
        "online": get_online_features(store, list(range(1, 40)), "customer_features_v1").to_json(),
    }


def _future(batch):
    batch.loc[3, "order_timestamp"] = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=2)
    return batch


def _usual_rows() -> float:
    return delta_tables.median_partition_rows(
        get_settings().storage.raw_orders_path, "event_date", last=pipeline.RECENT_BATCHES
    )


def _ten_times(batch):
    """Ten times the usual (median) batch size, made of distinct orders."""
    copies = math.ceil(10 * _usual_rows() / len(batch))
    frame = pd.concat(
        [batch.assign(order_id=batch["order_id"] + f"-{i}") for i in range(copies)],
        ignore_index=True,
    )
    return frame.iloc[: math.ceil(10 * _usual_rows())]


def _tenth(batch):
    return batch.iloc[: math.floor(_usual_rows() / 10)]


def _first_day_order_id() -> str:
    """An order id the lake holds under its first day (a day long before NEXT_DAY)."""
    orders = delta_tables.read_table(
        get_settings().storage.raw_orders_path,
        columns=["order_id"],
        filters=[("event_date", "=", CONFIG.start_date.isoformat())],
    )
    return str(orders["order_id"].iloc[0])


def _reused_order_id(batch):
    return batch.assign(order_id=batch["order_id"].where(batch.index != 2, _first_day_order_id()))


BAD_BATCHES = {
    # name: (make the bad batch, words the refusal must contain)
    "missing column": (
        lambda b: b.drop(columns=["amount"]),
        ["expect_table_columns_to_match_set", "amount"],
    ),
    "extra column": (
        lambda b: b.assign(coupon="x"),
        ["expect_table_columns_to_match_set", "coupon"],
    ),
    "wrong dtype": (lambda b: b.assign(amount=b["amount"].astype(str)), ["of_type", "amount"]),
    "nulls in keys": (
        lambda b: b.assign(customer_id=b["customer_id"].astype("Int64").mask(b.index == 2)),
        ["not_be_null", "customer_id"],
    ),
    "negative amount": (
        lambda b: b.assign(amount=b["amount"].where(b.index != 1, -3.0)),
        ["between", "amount"],
    ),
    "unknown segment": (
        lambda b: b.assign(customer_segment=b["customer_segment"].where(b.index != 0, "vip")),
        ["in_set", "customer_segment", "vip"],
    ),
    "duplicate order ids": (
        lambda b: b.assign(order_id=b["order_id"].where(b.index != 1, b["order_id"].iloc[0])),
        ["unique", "order_id"],
    ),
    "future timestamps": (_future, ["between", "order_timestamp"]),
    "order id ingested on an earlier day": (
        _reused_order_id,
        ["expect_column_values_to_not_be_in_set on column 'order_id'", "1 of", "ingested once"],
    ),
    "customer id the API cannot serve": (
        lambda b: b.assign(customer_id=b["customer_id"].where(b.index != 0, 2**62)),
        ["between on column 'customer_id'", str(2**62), f"<= {ENTITY_ID_MAX}"],
    ),
    "orders from another day": (
        lambda b: b.assign(
            order_timestamp=b["order_timestamp"].where(
                b.index >= 4, b["order_timestamp"] - pd.Timedelta(days=40)
            )
        ),
        ["between", "order_timestamp", "4 of", str(NEXT_DAY - timedelta(days=40))],
    ),
    "naive timestamps": (
        lambda b: b.assign(order_timestamp=b["order_timestamp"].dt.tz_localize(None)),
        ["order_timestamp", "no timezone", "tz_localize('UTC')"],
    ),
    "empty batch": (lambda b: b.iloc[0:0], ["row_count"]),
    "10x larger than usual": (_ten_times, ["row_count"]),
    "10x smaller than usual": (_tenth, ["row_count"]),
}


@pytest.mark.parametrize("kind", sorted(BAD_BATCHES))
def test_bad_batch_is_refused_and_changes_nothing(built, kind, monkeypatch):
    monkeypatch.setenv("CHURN_STATE_DIR", str(built.storage.state_dir))
    monkeypatch.setenv("CHURN_FEATURE_STORE_YAML", str(built.storage.feature_store_yaml))
    make_bad, words = BAD_BATCHES[kind]
    before = downstream(built)
    landing.land_batch(make_bad(good_batch()), NEXT_DAY, built)
    with pytest.raises(pipeline.BatchesRefused) as refused:
        pipeline.validate_landed_batches(built)
    message = str(refused.value)
    for word in words:
        assert word in message, f"{kind}: {word!r} not in\n{message}"
    assert downstream(built) == before
    assert landing.pending_batches(built) == []
    quarantined = refused.value.rejections[0].quarantine_path
    assert (quarantined / "report.json").exists()


def test_unparseable_file_is_refused_and_kept(built, monkeypatch):
    monkeypatch.setenv("CHURN_STATE_DIR", str(built.storage.state_dir))
    before = downstream(built)
    path = landing.landed_path(built, NEXT_DAY)
    path.write_bytes(b"this is not parquet")
    with pytest.raises(pipeline.BatchesRefused) as refused:
        pipeline.validate_landed_batches(built)
    assert "file is readable as Parquet" in str(refused.value)
    assert downstream(built) == before
    kept = refused.value.rejections[0].quarantine_path / path.name
    assert kept.read_bytes() == b"this is not parquet"


def test_a_reused_order_id_is_named_and_quarantined_and_the_pipeline_writes_nothing(
    built, monkeypatch
):
    monkeypatch.setenv("CHURN_STATE_DIR", str(built.storage.state_dir))
    monkeypatch.setenv("CHURN_FEATURE_STORE_YAML", str(built.storage.feature_store_yaml))
    before = downstream(built)
    reused = _first_day_order_id()
    landing.land_batch(_reused_order_id(good_batch()), NEXT_DAY, built)
    with pytest.raises(pipeline.BatchesRefused) as refused:
        run_features(built)
    assert reused in str(refused.value)
    (rejection,) = refused.value.rejections
    assert reused in (rejection.quarantine_path / "report.json").read_text()
    assert downstream(built) == before
    assert landing.pending_batches(built) == []


def test_an_order_id_in_two_batches_of_one_run_refuses_the_later(built, monkeypatch):
    monkeypatch.setenv("CHURN_STATE_DIR", str(built.storage.state_dir))
    after = NEXT_DAY + timedelta(days=1)
    batches = dict(simulate_days(CONFIG, [NEXT_DAY, after]))
    first, second = batches[NEXT_DAY], batches[after]
    second.loc[5, "order_id"] = first.loc[7, "order_id"]
    landing.land_batch(first, NEXT_DAY, built)
    landing.land_batch(second, after, built)
    before = downstream(built)
    with pytest.raises(pipeline.BatchesRefused) as refused:
        pipeline.validate_landed_batches(built)
    (rejection,) = refused.value.rejections
    assert rejection.report.batch_name == f"orders_{after.isoformat()}"
    assert first.loc[7, "order_id"] in str(rejection)
    # The earlier batch passed: it waits in landing, as with any refusal in the run.
    assert landing.pending_batches(built) == [landing.landed_path(built, NEXT_DAY)]
    assert downstream(built) == before
    landing.landed_path(built, NEXT_DAY).unlink()


def test_a_day_landed_again_may_hold_its_own_orders(built):
    """A re-landed day replaces its partition: its own ids are not taken."""
    last = NEXT_DAY - timedelta(days=1)
    landing.land_batch(dict(simulate_days(CONFIG, [last]))[last], last, built)
    assert len(pipeline.validate_landed_batches(built)) == 1
    landing.landed_path(built, last).unlink()


def test_the_largest_id_the_api_serves_passes(built):
    batch = good_batch()
    batch.loc[0, "customer_id"] = ENTITY_ID_MAX
    landing.land_batch(batch, NEXT_DAY, built)
    assert len(pipeline.validate_landed_batches(built)) == 1
    landing.landed_path(built, NEXT_DAY).unlink()


def test_a_normal_next_day_passes(built):
    landing.land_batch(good_batch(), NEXT_DAY, built)
    assert len(pipeline.validate_landed_batches(built)) == 1
    landing.landed_path(built, NEXT_DAY).unlink()
    # Data Docs are built once per run and list the validations.
    index = built.storage.gx_dir / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert index.exists() and "raw_orders" in index.read_text()


def _to_csv(batch: pd.DataFrame, path) -> None:
    batch.assign(order_timestamp=batch["order_timestamp"].map(pd.Timestamp.isoformat)).to_csv(
        path, index=False
    )


@pytest.mark.parametrize(
    "name",
    [
        "orders_2026-12-2.parquet",  # not zero-padded: once passed validation, then broke ingest
        "orders_2026-02-30.parquet",  # no such day
        "orders_2026-12-02.json",
        "orders-2026-12-02.parquet",
        "notes.txt",
    ],
)
def test_a_file_that_is_not_a_batch_is_refused_by_name(built, name, monkeypatch):
    monkeypatch.setenv("CHURN_STATE_DIR", str(built.storage.state_dir))
    before = downstream(built)
    path = built.storage.landing_dir / name
    good_batch().to_parquet(path)
    with pytest.raises(pipeline.BatchesRefused) as refused:
        pipeline.validate_landed_batches(built)
    message = str(refused.value)
    assert name in message and "expected orders_YYYY-MM-DD.parquet or .csv (one UTC day" in message
    assert landing.pending_batches(built) == [] and not path.exists()
    kept = refused.value.rejections[0].quarantine_path
    assert (kept / name).is_file() and (kept / "report.json").is_file()
    assert downstream(built) == before


def test_a_csv_batch_goes_through_the_same_suite(built):
    path = built.storage.landing_dir / f"orders_{NEXT_DAY.isoformat()}.csv"
    _to_csv(good_batch(), path)
    pd.testing.assert_frame_equal(landing.read_batch(path), good_batch())
    assert pipeline.validate_landed_batches(built) == [str(path)]
    path.unlink()


@pytest.mark.parametrize(
    ("spoil", "words"),
    [
        (lambda b: b.assign(customer_segment="vip"), ["in_set", "customer_segment", "vip"]),
        (
            lambda b: b.assign(order_timestamp=b["order_timestamp"].dt.tz_localize(None)),
            ["no timezone", "+00:00"],
        ),
    ],
    ids=["unknown segment", "timestamps without offset"],
)
def test_a_bad_csv_batch_is_refused_like_parquet(built, spoil, words, monkeypatch):
    monkeypatch.setenv("CHURN_STATE_DIR", str(built.storage.state_dir))
    before = downstream(built)
    _to_csv(spoil(good_batch()), built.storage.landing_dir / f"orders_{NEXT_DAY.isoformat()}.csv")
    with pytest.raises(pipeline.BatchesRefused) as refused:
        pipeline.validate_landed_batches(built)
    for word in words:
        assert word in str(refused.value)
    assert landing.pending_batches(built) == []
    assert downstream(built) == before


def test_two_files_for_one_day_are_refused(built, monkeypatch):
    monkeypatch.setenv("CHURN_STATE_DIR", str(built.storage.state_dir))
    landing.land_batch(good_batch(), NEXT_DAY, built)
    _to_csv(good_batch(), built.storage.landing_dir / f"orders_{NEXT_DAY.isoformat()}.csv")
    with pytest.raises(pipeline.BatchesRefused) as refused:
        pipeline.validate_landed_batches(built)
    assert "is a second orders batch for" in str(refused.value)
    # The first in name order passed validation and waits in landing for the next run.
    (first,) = landing.pending_batches(built)
    assert first.suffix == ".csv"
    assert (refused.value.rejections[0].quarantine_path / f"{first.stem}.parquet").is_file()
    first.unlink()


def test_csv_dates_without_a_time_have_no_offset_and_are_refused(built, monkeypatch):
    monkeypatch.setenv("CHURN_STATE_DIR", str(built.storage.state_dir))
    batch = good_batch()
    path = built.storage.landing_dir / f"orders_{NEXT_DAY.isoformat()}.csv"
    batch.assign(order_timestamp=NEXT_DAY.isoformat()).to_csv(path, index=False)
    with pytest.raises(pipeline.BatchesRefused) as refused:
        pipeline.validate_landed_batches(built)
    assert "no timezone" in str(refused.value)  # "2026-04-10" ends in "-10": not an offset


def test_a_csv_export_with_a_byte_order_mark_is_read(built):
    path = built.storage.landing_dir / f"orders_{NEXT_DAY.isoformat()}.csv"
    _to_csv(good_batch(), path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # what spreadsheets write
    pd.testing.assert_frame_equal(landing.read_batch(path), good_batch())
    path.unlink()


def test_an_empty_csv_timestamp_is_refused_as_a_null(built, monkeypatch):
    monkeypatch.setenv("CHURN_STATE_DIR", str(built.storage.state_dir))
    batch = good_batch()
    text = batch["order_timestamp"].map(pd.Timestamp.isoformat).astype(object)
    text.iloc[2] = None
    path = built.storage.landing_dir / f"orders_{NEXT_DAY.isoformat()}.csv"
    batch.assign(order_timestamp=text).to_csv(path, index=False)
    with pytest.raises(pipeline.BatchesRefused) as refused:
        pipeline.validate_landed_batches(built)
    assert "expect_column_values_to_not_be_null on column 'order_timestamp'" in str(refused.value)
