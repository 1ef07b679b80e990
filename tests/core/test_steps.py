"""Step results keep one shape and survive the trip through XCom's JSON."""

import json
from dataclasses import fields
from datetime import UTC, datetime

from core.steps import BuiltFeatures, Materialized, TimeWindow, from_xcom, to_xcom


def test_a_result_survives_xcom_json():
    built = BuiltFeatures(
        features_version=3,
        snapshot_rows=10,
        window=TimeWindow(datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC), datetime.now(UTC)),
        table_versions={"customer_spend": 2, "churn_labels": 4, "not_written_yet": None},
    )
    data = json.loads(json.dumps(to_xcom(built)))  # what Airflow stores and hands back
    assert from_xcom(BuiltFeatures, data) == built


def test_nothing_to_do_has_the_same_shape():
    empty = Materialized(applied=[], window=None)
    assert empty.views == []
    assert from_xcom(Materialized, to_xcom(empty)) == empty
    assert set(to_xcom(empty)) == {f.name for f in fields(Materialized)}


def test_build_features_answers_one_shape_when_no_day_changed(state):
    from data.pipeline import build_features

    built = build_features([], state, as_of=datetime(2026, 6, 1, tzinfo=UTC))
    assert isinstance(built, BuiltFeatures) and built.window is None
    assert set(to_xcom(built)) == {f.name for f in fields(BuiltFeatures)}
