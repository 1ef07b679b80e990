"""Each feature is declared once, in core/schema.py; every other view of it is derived."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core import schema
from core.settings import PROJECT_ROOT
from expectations.validation import TRAINING_SET_SUITE, load_suite


def test_the_schema_names_each_feature_once_with_its_owner_and_kind():
    assert len(set(schema.FEATURE_COLUMNS)) == len(schema.CUSTOMER_FEATURES) == 6
    assert all(f.description and f.owner for f in schema.CUSTOMER_FEATURES)
    assert schema.CATEGORICAL_FEATURES == ("customer_segment",)
    assert set(schema.NUMERIC_FEATURES) | set(schema.CATEGORICAL_FEATURES) == set(
        schema.FEATURE_COLUMNS
    )


def test_the_training_set_suite_takes_its_feature_columns_from_the_schema():
    committed = json.loads((PROJECT_ROOT / "expectations/suites/training_set.json").read_text())
    assert not any(f in json.dumps(committed["expectations"]) for f in schema.FEATURE_COLUMNS)
    suite = load_suite(TRAINING_SET_SUITE)
    (columns,) = (
        e["kwargs"]["column_set"]
        for e in suite["expectations"]
        if e["type"] == "expect_table_columns_to_match_set"
    )
    assert set(schema.FEATURE_COLUMNS) <= set(columns)
    not_null = {
        e["kwargs"]["column"]
        for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_not_be_null"
    }
    assert set(schema.FEATURE_COLUMNS) <= not_null


# Runs in a copy of the tree where one feature was renamed: the pipeline, Feast, training
# (its suite and signature), serving's models and log, and monitoring all see the new name.
RENAMED_RUN = """
from datetime import UTC, date, datetime
import json
from core.settings import get_settings
from data import pipeline
from data.simulate import SimulationConfig, land_simulated_days
from data import delta_tables
from data.store import get_feature_store, get_online_features
from models import promotion
from models.catalog import computed_tables, load_specs
from models.churn.spec import SPEC as CHURN
import mlflow

settings = get_settings()
land_simulated_days(SimulationConfig(customers=300, start_date=date(2026, 3, 1), days=75), settings)
specs = load_specs()
pipeline.run_feature_pipeline(
    settings, [s.feature_service for s in specs], computed_tables(),
    as_of=datetime(2026, 6, 1, tzinfo=UTC),
)
done = promotion.run_training_pipeline(CHURN, settings, run_name="renamed")
store = get_feature_store(settings)
model = mlflow.models.get_model_info(done.trained.model_uri)

from serving.prediction_log import log_columns
from serving.service import features_model

print(json.dumps({
    "delta": list(delta_tables.read_table(settings.storage.customer_features_path).columns),
    "feast": [f.name for f in store.get_feature_view("customer_features").features],
    "online": list(get_online_features(store, [1], "customer_features_v1").columns),
    "signature": [i["name"] for i in model.signature.inputs.to_dict()],
    "served": list(features_model(CHURN).model_fields),
    "log": list(log_columns(CHURN)),
}))
"""


@pytest.mark.slow
def test_renaming_a_feature_is_one_edit(tmp_path: Path):
    copy = tmp_path / "tree"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for name in files:
        source = PROJECT_ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    schema_file = copy / "core" / "schema.py"
    text = schema_file.read_text()
    assert text.count('"avg_order_value"') == 1
    schema_file.write_text(text.replace('"avg_order_value"', '"mean_order_value"'))
    changed = [
        name
        for name in files
        if (PROJECT_ROOT / name).is_file()
        and (PROJECT_ROOT / name).read_bytes() != (copy / name).read_bytes()
    ]
    assert changed == ["core/schema.py"]  # the one edit

    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")}
    env.update(
        {
            "CHURN_STATE_DIR": str(tmp_path / "state"),
            "CHURN_FEATURE_STORE_YAML": str(tmp_path / "state" / "feature_store.yaml"),
            "CHURN_GATE_MIN_SCORES": '{"churn": 0.0}',
            "PYTHONPATH": str(copy),
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", RENAMED_RUN], cwd=copy, env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    for view, columns in seen.items():
        assert "mean_order_value" in columns, view
        assert "avg_order_value" not in columns, view


def test_entity_id_bounds_are_declared_once_for_the_api_and_ingress():
    """The API's customer_id and the ingress suites take their bounds from core/schema.py."""
    from pydantic import TypeAdapter, ValidationError

    from expectations.validation import ENTITY_ID_PARAMETERS, RAW_ORDERS_SUITE
    from serving.service import CustomerId

    assert schema.ENTITY_ID_MAX == 2**53 - 1  # what a JSON client's doubles hold exactly
    served = TypeAdapter(CustomerId)
    assert served.validate_python(schema.ENTITY_ID_MAX) == schema.ENTITY_ID_MAX
    for outside in (schema.ENTITY_ID_MIN - 1, schema.ENTITY_ID_MAX + 1, 2**62):
        with pytest.raises(ValidationError):
            served.validate_python(outside)
    assert ENTITY_ID_PARAMETERS == {
        "entity_id_min": schema.ENTITY_ID_MIN,
        "entity_id_max": schema.ENTITY_ID_MAX,
    }
    for suite in (RAW_ORDERS_SUITE, TRAINING_SET_SUITE):
        (bounds,) = (
            e["kwargs"]
            for e in load_suite(suite)["expectations"]
            if e["type"] == "expect_column_values_to_be_between"
            and e["kwargs"]["column"] == schema.ENTITY_KEY
        )
        assert bounds["min_value"] == {"$PARAMETER": "entity_id_min"}
        assert bounds["max_value"] == {"$PARAMETER": "entity_id_max"}
