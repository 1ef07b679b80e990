"""A version rebuilt from its lineage after new data landed, and after the data was changed."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest

from core.settings import get_settings
from data import delta_tables
from data.simulate import land_simulated_days
from models.churn.spec import SPEC as CHURN
from models.feature_pipeline import run_feature_pipeline
from models.reproduce import recorded_lineage, reproduce_version
from models.tracking import configure_mlflow

pytestmark = pytest.mark.slow


def test_a_version_rebuilds_after_new_data_and_a_changed_table_is_named(
    world, tmp_path, monkeypatch
):
    # A copy of the world, where new days land (the world itself is only read). Not its
    # Feast folder: the copied registry's infra names the world's SQLite online tables, and
    # `feast apply` in the copy would drop them as objects it no longer has.
    state = tmp_path / "state"
    shutil.copytree(
        world.settings.storage.state_dir, state,
        ignore=shutil.ignore_patterns("serving", "airflow", "gx", "reports", "feast"),
    )  # fmt: skip
    monkeypatch.setenv("CHURN_STATE_DIR", str(state))
    monkeypatch.setenv("CHURN_FEATURE_STORE_YAML", str(state / "feature_store.yaml"))
    settings = get_settings()
    recorded = recorded_lineage(settings, CHURN, 1)
    assert {"customer_features", "churn_labels"} <= set(recorded["tables"])

    last = world.config.start_date + timedelta(days=world.config.days - 1)
    land_simulated_days(world.config, settings, [last + timedelta(days=i) for i in (1, 2, 3)])
    run_feature_pipeline(settings)
    features = settings.storage.customer_features_path
    assert delta_tables.table_version(features) > recorded["tables"]["customer_features"]

    done = reproduce_version(CHURN, 1, settings)
    assert done.matched, done.differences
    assert done.differences == []
    assert done.rebuilt["hash"] == done.recorded["hash"]
    assert done.rebuilt["train_rows"] == world.training_set.train_rows
    assert done.max_prediction_diff <= done.prediction_tolerance
    assert done.data_versions == recorded["tables"]

    # A deliberate change to the data: the run's lineage now names the tables as they are
    # today (three more days of orders, snapshots and labels), not as it was trained on.
    client = configure_mlflow(settings)
    for table in ("customer_features", "churn_labels"):
        newest = delta_tables.table_version(settings.storage.delta_table_path(table))
        assert newest > recorded["tables"][table], table
        client.set_tag(done.run_id, f"lineage.delta.{table}_version", str(newest))

    changed = reproduce_version(CHURN, 1, settings)
    assert not changed.matched
    assert changed.differences[0].startswith("training-set hash: recorded")
    named = " | ".join(changed.differences)
    assert "train_rows: recorded" in named or "holdout_rows: recorded" in named, named
    assert "holdout predictions" in named or "metric f1" in named, named
