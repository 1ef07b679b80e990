"""The raw-orders contract, run through real Great Expectations (no mocks).

Each test gets its own CHURN state folder (tmp_path), so its own GX context, results,
Data Docs and quarantine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.settings import Settings
from expectations import validation
from expectations.validation import (
    RAW_ORDERS_SUITE,
    SUITES_DIR,
    BatchRejected,
    ValidationReport,
    validate_raw_orders,
)

SEGMENTS = ["budget", "regular", "premium"]
# The platform's present in these tests (the settings' clock), so no verdict depends on the
# day or on a run crossing midnight.
PRESENT = pd.Timestamp("2026-03-15 09:30", tz="UTC")
YESTERDAY = (PRESENT.floor("D") - pd.Timedelta(days=1)).date()


def valid_batch(rows: int = 50, seed: int = 0) -> pd.DataFrame:
    """One day of order events that meets the contract: yesterday (UTC), all in the past."""
    rng = np.random.default_rng(seed)
    day = pd.Timestamp(YESTERDAY, tz="UTC")
    return pd.DataFrame(
        {
            "order_id": [f"o-{day:%Y%m%d}-{i:06d}" for i in range(rows)],
            "customer_id": rng.integers(1, 3000, rows).astype("int64"),
            "order_timestamp": day + pd.to_timedelta(rng.integers(0, 86_400, rows), unit="s"),
            "amount": rng.uniform(0.5, 900.0, rows).round(2),
            "customer_segment": rng.choice(SEGMENTS, rows),
        }
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(storage={"state_dir": tmp_path}, now=PRESENT.to_pydatetime())


def test_valid_batch_helper_has_the_contract_dtypes() -> None:
    dtypes = {name: str(dtype) for name, dtype in valid_batch().dtypes.items()}
    assert dtypes == {
        "order_id": "object",
        "customer_id": "int64",
        "order_timestamp": "datetime64[ns, UTC]",
        "amount": "float64",
        "customer_segment": "object",
    }


def test_valid_batch_passes(settings: Settings) -> None:
    report = validate_raw_orders(valid_batch(), settings, "2026-01-05", batch_day=YESTERDAY)

    assert isinstance(report, ValidationReport)
    assert report.success
    assert report.failures == ()
    assert report.suite == RAW_ORDERS_SUITE
    assert report.batch_name == "2026-01-05"
    assert report.evaluated == 20
    assert report.row_count == 50
    assert report.result_path is not None and report.result_path.is_file()
    assert report.result_path.is_relative_to(settings.storage.gx_dir)
    assert json.loads(report.result_path.read_text())["success"] is True
    assert report.data_docs_path is not None and report.data_docs_path.name == "index.html"
    assert report.data_docs_path.is_file()
    assert "PASSED" in report.summary()
    assert not settings.storage.quarantine_dir.exists()


def test_the_context_is_reused_within_a_process(settings: Settings) -> None:
    validate_raw_orders(valid_batch(), settings, "day-1", batch_day=YESTERDAY)
    runtime = validation._runtime(settings.storage.gx_dir)
    validate_raw_orders(valid_batch(seed=1), settings, "day-2", batch_day=YESTERDAY)
    assert validation._runtime(settings.storage.gx_dir) is runtime
    results = list((settings.storage.gx_dir / "uncommitted" / "validations").rglob("*.json"))
    assert len(results) == 2


def _drop_amount(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns="amount")


def _extra_column(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(coupon_code="WELCOME10")


def _duplicated_label(df: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([df, df[["amount"]]], axis=1)


def _amount_as_string(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(amount=df["amount"].astype(str))


def _naive_timestamps(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(order_timestamp=df["order_timestamp"].dt.tz_localize(None))


def _null_customer_ids(df: pd.DataFrame) -> pd.DataFrame:
    df = df.assign(customer_id=df["customer_id"].astype("float64"))  # what a null does to int64
    df.loc[[3, 7], "customer_id"] = np.nan
    return df


def _negative_amount(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[4, "amount"] = -12.5
    return df


def _unknown_segment(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[2, "customer_segment"] = "vip"
    return df


def _duplicate_order_ids(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[9, "order_id"] = df.loc[8, "order_id"]
    return df


def _customer_id_beyond_the_api(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[6, "customer_id"] = 2**62
    return df


def _future_timestamps(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[5, "order_timestamp"] = PRESENT + pd.Timedelta(hours=1)
    return df


def _empty(df: pd.DataFrame) -> pd.DataFrame:
    return df.iloc[0:0]


COLUMN_SET = "expect_table_columns_to_match_set"
COLUMN_COUNT = "expect_table_column_count_to_equal"
ROW_COUNT = "expect_table_row_count_to_be_between"
OF_TYPE = "expect_column_values_to_be_of_type"
NOT_NULL = "expect_column_values_to_not_be_null"
BETWEEN = "expect_column_values_to_be_between"
IN_SET = "expect_column_values_to_be_in_set"
UNIQUE = "expect_column_values_to_be_unique"

# How to break a valid batch, the failing expectation, its column, text its line must hold,
# and whether it is the only failure.
BAD_BATCHES = [
    pytest.param(_drop_amount, COLUMN_SET, None, "missing ['amount']", False, id="missing column"),
    pytest.param(_extra_column, COLUMN_SET, None, "['coupon_code']", False, id="extra column"),
    pytest.param(_duplicated_label, COLUMN_COUNT, None, "observed 6", False, id="duplicated label"),
    pytest.param(_amount_as_string, OF_TYPE, "amount", "'float64'", False, id="amount as string"),
    pytest.param(_naive_timestamps, OF_TYPE, "order_timestamp", "datetime64", False, id="naive ts"),
    pytest.param(_null_customer_ids, NOT_NULL, "customer_id", "2 of 50", False, id="null customer"),
    pytest.param(_negative_amount, BETWEEN, "amount", "-12.5", True, id="negative amount"),
    pytest.param(_unknown_segment, IN_SET, "customer_segment", "'vip'", True, id="unknown segment"),
    pytest.param(_duplicate_order_ids, UNIQUE, "order_id", "2 of 50", True, id="duplicate ids"),
    pytest.param(_future_timestamps, BETWEEN, "order_timestamp", "1 of 50", True, id="future ts"),
    pytest.param(
        _customer_id_beyond_the_api,
        BETWEEN,
        "customer_id",
        "<= 9007199254740991; 1 of 50",
        True,
        id="customer id beyond the API",
    ),
    pytest.param(_empty, ROW_COUNT, None, "observed 0", True, id="empty batch"),
]


@pytest.mark.parametrize(("breaks", "expectation", "column", "text", "only"), BAD_BATCHES)
def test_bad_batch_is_refused_with_a_readable_message(
    settings: Settings,
    breaks: Callable[[pd.DataFrame], pd.DataFrame],
    expectation: str,
    column: str | None,
    text: str,
    only: bool,
) -> None:
    with pytest.raises(BatchRejected) as caught:
        validate_raw_orders(breaks(valid_batch()), settings, "bad-day", batch_day=YESTERDAY)

    report = caught.value.report
    assert not report.success
    failed = {(f.expectation, f.column) for f in report.failures}
    assert (expectation, column) in failed
    if only:
        assert failed == {(expectation, column)}
    message = str(caught.value)
    where = f"column {column!r}" if column is not None else "table"
    line = next(line for line in message.splitlines() if f"{expectation} on {where}" in line)
    assert text in line
    assert message.startswith("REJECTED batch 'bad-day'")
    assert "Traceback" not in message


def test_orders_from_other_days_are_refused_with_count_and_example(settings: Settings) -> None:
    bad = valid_batch()
    old = PRESENT.floor("D") - pd.Timedelta(days=41)
    bad.loc[[0, 1, 2], "order_timestamp"] = old  # 40-day-old orders in yesterday's batch
    with pytest.raises(BatchRejected) as caught:
        validate_raw_orders(bad, settings, "late-orders", batch_day=YESTERDAY)

    (failure,) = caught.value.report.failures
    assert (failure.expectation, failure.column) == (BETWEEN, "order_timestamp")
    assert f">= {YESTERDAY.isoformat()} 00:00:00+00:00" in failure.details
    assert "3 of 50 rows unexpected" in failure.details
    assert str(old.date()) in failure.details  # an example of an offending value


def test_order_ids_already_ingested_are_refused_by_name(settings: Settings) -> None:
    batch = valid_batch()
    taken = [batch.loc[3, "order_id"], batch.loc[11, "order_id"], "o-not-in-this-batch"]
    with pytest.raises(BatchRejected) as caught:
        validate_raw_orders(batch, settings, "again", batch_day=YESTERDAY, ingested_ids=taken)

    (failure,) = caught.value.report.failures
    assert (failure.expectation, failure.column) == (
        "expect_column_values_to_not_be_in_set",
        "order_id",
    )
    assert "2 of 50 rows unexpected" in failure.details
    assert taken[0] in failure.details and "an order is ingested once" in failure.details
    assert (caught.value.quarantine_path / "report.json").is_file()


def test_naive_timestamps_are_refused_with_a_timezone_fix(settings: Settings) -> None:
    with pytest.raises(BatchRejected) as caught:
        validate_raw_orders(
            _naive_timestamps(valid_batch()), settings, "naive", batch_day=YESTERDAY
        )
    details = {f.details for f in caught.value.report.failures if f.column == "order_timestamp"}
    assert details and all("no timezone" in d for d in details)
    assert any("tz_localize('UTC')" in d and "+00:00" in d for d in details)
    assert "Invalid comparison" not in str(caught.value)


def test_missing_column_names_the_column_in_every_check_that_needs_it(settings: Settings) -> None:
    with pytest.raises(BatchRejected) as caught:
        validate_raw_orders(_drop_amount(valid_batch()), settings, "no-amount", batch_day=YESTERDAY)
    by_column = {f.expectation: f.details for f in caught.value.report.failures if f.column}
    assert set(by_column) == {OF_TYPE, NOT_NULL, BETWEEN}
    assert all("column 'amount' is not in the batch" in d for d in by_column.values())


def test_rejected_batch_is_quarantined_with_its_report(settings: Settings) -> None:
    bad = _unknown_segment(valid_batch())
    with pytest.raises(BatchRejected) as caught:
        validate_raw_orders(bad, settings, "2026-01-05/part 1", batch_day=YESTERDAY)

    folder = caught.value.quarantine_path
    assert folder.parent == settings.storage.quarantine_dir / RAW_ORDERS_SUITE
    assert folder.name.startswith("2026-01-05_part_1-") and folder.name.endswith("Z")
    assert str(folder) in str(caught.value)
    assert sorted(p.name for p in folder.iterdir()) == ["batch.parquet", "report.json"]
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "batch.parquet"), bad)

    saved = json.loads((folder / "report.json").read_text())
    assert saved["report"]["success"] is False
    assert saved["report"]["batch_name"] == "2026-01-05/part 1"
    assert saved["report"]["failures"] == [
        {
            "expectation": "expect_column_values_to_be_in_set",
            "column": "customer_segment",
            "details": caught.value.report.failures[0].details,
        }
    ]
    assert saved["summary"] == caught.value.report.summary()
    assert saved["batch"]["rows"] == 50 and saved["batch"]["note"] is None
    assert saved["gx_validation_result"]["success"] is False
    assert caught.value.report.result_path is not None
    assert caught.value.report.result_path.is_file()


def test_a_batch_parquet_cannot_hold_is_quarantined_as_strings(settings: Settings) -> None:
    bad = valid_batch()
    bad["order_id"] = bad["order_id"].astype(object)
    bad.loc[0, "order_id"] = 12345  # mixed str/int: pyarrow refuses the column
    with pytest.raises(BatchRejected) as caught:
        validate_raw_orders(bad, settings, "mixed", batch_day=YESTERDAY)

    assert {(f.expectation, f.column) for f in caught.value.report.failures} == {
        ("expect_column_values_to_be_of_type", "order_id")
    }
    folder = caught.value.quarantine_path
    saved = json.loads((folder / "report.json").read_text())
    assert "as strings" in saved["batch"]["note"]
    kept = pd.read_parquet(folder / "batch.parquet")
    assert kept.shape == bad.shape and kept.loc[0, "order_id"] == "12345"


def test_committed_suite_is_gx_json_with_the_contract() -> None:
    import great_expectations as gx

    raw = json.loads((SUITES_DIR / f"{RAW_ORDERS_SUITE}.json").read_text())
    suite = gx.ExpectationSuite(**raw)
    assert suite.name == RAW_ORDERS_SUITE
    assert len(suite.expectations) == len(raw["expectations"]) == 20
    kinds = {e["type"] for e in raw["expectations"]}
    assert {
        "expect_table_columns_to_match_set",
        "expect_table_row_count_to_be_between",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_be_unique",
        "expect_column_values_to_not_be_in_set",
    } <= kinds
    columns = next(e for e in raw["expectations"] if e["type"] == COLUMN_SET)
    assert columns["kwargs"]["exact_match"] is True
    future = [e for e in raw["expectations"] if e["kwargs"].get("column") == "order_timestamp"]
    assert any(
        e["kwargs"].get("max_value") == {"$PARAMETER": validation.VALIDATION_TIME_PARAMETER}
        for e in future
    )


def test_import_has_no_side_effects(tmp_path: Path) -> None:
    code = "import sys, expectations.validation;print('great_expectations' in sys.modules)"
    env = {"CHURN_STATE_DIR": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
    assert not (tmp_path / "state").exists()


def test_any_frame_can_be_validated_against_a_named_suite(settings: Settings) -> None:
    from expectations.validation import TRAINING_SET_SUITE, validate_frame

    with pytest.raises(BatchRejected) as caught:
        validate_frame(valid_batch(), settings, suite_name=TRAINING_SET_SUITE, batch_name="raw")
    assert caught.value.report.suite == TRAINING_SET_SUITE
    assert any(f.expectation == COLUMN_SET for f in caught.value.report.failures)


def test_a_refusal_keeps_the_share_of_rows_mostly_asks_for(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A suite of our own, in a folder of its own: the committed suites ask every row.
    suites = tmp_path / "suites"
    suites.mkdir()
    suite = {
        "name": "mostly_rows",
        "expectations": [
            {
                "type": NOT_NULL,
                "kwargs": {"column": "customer_id", "mostly": 0.99},
                "meta": {},
            },
            {
                "type": IN_SET,
                "kwargs": {"column": "customer_segment", "value_set": SEGMENTS, "mostly": 0.995},
                "meta": {},
            },
            {"type": UNIQUE, "kwargs": {"column": "order_id"}, "meta": {}},
        ],
        "meta": {},
    }
    (suites / "mostly_rows.json").write_text(json.dumps(suite))
    monkeypatch.setattr(validation, "SUITES_DIR", suites)
    bad = _duplicate_order_ids(_unknown_segment(_null_customer_ids(valid_batch())))

    with pytest.raises(BatchRejected) as caught:
        validation.validate_frame(bad, settings, suite_name="mostly_rows", batch_name="mostly")

    details = {f.expectation: f.details for f in caught.value.report.failures}
    assert details[NOT_NULL].startswith(
        "expected no nulls in at least 99% of rows; 2 of 50 rows unexpected (4%)"
    )
    assert details[IN_SET].startswith(
        "expected values in ['budget', 'premium', 'regular'] in at least 99.5% of rows; "
        "1 of 50 rows unexpected (2%)"
    )
    # Without mostly, every row: the text says no share.
    assert details[UNIQUE].startswith("expected unique values; 2 of 50 rows unexpected")
