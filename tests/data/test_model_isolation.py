"""One model's views never break another's: next_spend's view registered, its table absent.

The Feast repo declares every model's views, so ``customer_rhythm`` is registered as soon
as its definition file exists, before the feature pipeline has written its table (a model
just added, or a deployment whose pipeline runs only some models). Churn's pipeline,
``feast materialize`` run as the docs say, and churn's online reads must not care.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from core.settings import FEATURE_REPO_DIR
from data import delta_tables
from data.pipeline import run_feature_pipeline
from data.simulate import SimulationConfig, land_simulated_days
from data.store import (
    MaterializationFailed,
    get_feature_store,
    get_online_features,
    materialize,
    write_feature_store_yaml,
)
from models.churn.spec import SPEC as CHURN
from models.next_spend.features import RHYTHM_TABLE
from models.next_spend.spec import SPEC as NEXT_SPEND

AS_OF = datetime(2027, 1, 1, tzinfo=UTC)  # the runs' time: after every simulated day

FEAST = str(Path(sys.executable).with_name("feast"))


@pytest.fixture
def churn_only(state):
    """Churn's feature pipeline alone, on 40 simulated days: next_spend's table unwritten."""
    config = SimulationConfig(customers=120, start_date=date(2026, 1, 1), days=40, seed=5)
    land_simulated_days(config, state)
    run = run_feature_pipeline(state, [CHURN.feature_service], tables=(), as_of=AS_OF)
    return state, run


def test_churn_pipeline_passes_with_another_models_view_unwritten(churn_only) -> None:
    settings, run = churn_only
    assert delta_tables.table_version(settings.storage.delta_table_path(RHYTHM_TABLE)) is None
    assert "customer_rhythm" in run.materialized.applied  # registered, like every view
    assert run.materialized.views == ["customer_features"]  # churn's only
    store = get_feature_store(settings)
    online = get_online_features(store, [1, 2, 3], CHURN.feature_service)
    assert online["total_orders_30d"].notna().any()


def test_the_other_models_view_fails_alone(churn_only) -> None:
    settings, _ = churn_only
    store = get_feature_store(settings)
    end = datetime.now(UTC)
    with pytest.raises(MaterializationFailed) as failed:
        materialize(store, end - timedelta(days=60), end, [NEXT_SPEND.feature_service])
    assert set(failed.value.failures) == {"customer_rhythm"}
    assert failed.value.done == ["customer_features"]  # the shared view was still loaded


def test_feast_materialize_as_the_docs_say(churn_only) -> None:
    settings, _ = churn_only
    write_feature_store_yaml(settings)
    end = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    command = [
        FEAST, "--chdir", str(FEATURE_REPO_DIR),
        "--feature-store-yaml", str(settings.storage.feature_store_yaml),
        "materialize", "2025-12-01T00:00:00", end, "--views", "customer_features",
    ]  # fmt: skip
    done = subprocess.run(
        command, env={**env, "PYTHONWARNINGS": "ignore"}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "customer_features" in done.stdout and "customer_rhythm" not in done.stdout


def test_a_model_added_later_gets_its_table_over_the_whole_history(state) -> None:
    config = SimulationConfig(customers=100, start_date=date(2026, 1, 1), days=36, seed=6)
    first_days = [config.start_date + timedelta(days=i) for i in range(30)]
    land_simulated_days(config, state, first_days)
    run_feature_pipeline(state, [CHURN.feature_service], tables=(), as_of=AS_OF)
    land_simulated_days(config, state, [config.start_date + timedelta(days=i) for i in (30, 31)])
    services = [CHURN.feature_service, NEXT_SPEND.feature_service]
    run = run_feature_pipeline(state, services, NEXT_SPEND.feature_tables, as_of=AS_OF)
    rhythm = delta_tables.read_table(state.storage.delta_table_path(RHYTHM_TABLE))
    snapshots = delta_tables.read_table(state.storage.customer_features_path)
    assert rhythm["snapshot_date"].min() == snapshots["snapshot_date"].min() == "2026-01-01"
    assert rhythm["snapshot_date"].max() == "2026-02-01"
    assert run.materialized.views == ["customer_features", "customer_rhythm"]
