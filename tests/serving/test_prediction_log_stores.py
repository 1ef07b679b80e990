"""The prediction log's two stores behind one interface, on real servers.

PostgreSQL (with ``CHURN_POSTGRES_URL``) takes writers on many hosts: here several
processes append at once, as serving replicas do, and nothing is lost or mixed up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from core.settings import Settings, StorageSettings
from models.churn.spec import SPEC as CHURN
from models.next_spend.spec import SPEC as NEXT_SPEND
from serving.prediction_log import (
    SHADOW_PREDICTIONS,
    PostgresPredictionLog,
    PredictionLog,
    PredictionRecord,
    open_prediction_log,
    read_predictions,
)

T0 = datetime(2026, 6, 1, 9, tzinfo=UTC)

WRITER = """
import sys
from datetime import UTC, datetime, timedelta
from core.settings import get_settings
from models.churn.spec import SPEC
from serving.prediction_log import PredictionRecord, open_prediction_log

writer, count = int(sys.argv[1]), int(sys.argv[2])
log = open_prediction_log(get_settings(), SPEC)
features = {f.name: "regular" if f.kind == "categorical" else float(writer)
            for f in SPEC.features}
t0 = datetime(2026, 6, 1, 9, tzinfo=UTC)
for i in range(count):  # one commit per answered request, as the service does
    log.append([PredictionRecord(t0 + timedelta(seconds=i), writer * 100000 + i, writer,
                                 "champion", features, 0.25, 0)])
log.close()
"""


def postgres_settings(state: Settings, postgres_url: str) -> Settings:
    """The test's state, with its prediction logs in a fresh PostgreSQL database."""
    storage = state.storage.model_copy(
        update={
            "postgres_url": postgres_url,
            "prediction_database": f"churn_predictions_{uuid.uuid4().hex[:8]}",
        }
    )
    return state.model_copy(update={"storage": storage})


def record(spec, at: datetime, customer: int, variant: str = "champion") -> PredictionRecord:
    features = {f.name: ("premium" if f.kind == "categorical" else 2.5) for f in spec.features}
    classifier = spec.task == "classification"
    return PredictionRecord(
        at, customer, 3, variant, features, 0.8 if classifier else None, 1 if classifier else 40.5
    )


def test_the_store_follows_the_settings():
    assert StorageSettings().prediction_log_backend == "sqlite"
    with_server = StorageSettings(postgres_url="postgresql://u@db:5432/postgres")
    assert with_server.prediction_log_backend == "postgresql"
    assert with_server.prediction_database_url == (
        "postgresql+psycopg2://u@db:5432/churn_predictions"
    )
    forced = StorageSettings(
        postgres_url="postgresql://u@db:5432/postgres", prediction_log_store="sqlite"
    )
    assert forced.prediction_log_backend == "sqlite"
    with pytest.raises(ValidationError, match="needs CHURN_POSTGRES_URL"):
        StorageSettings(prediction_log_store="postgresql")


@pytest.mark.parametrize("spec", [CHURN, NEXT_SPEND], ids=lambda s: s.name)
@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_both_stores_give_back_what_was_logged(state, postgres_url, spec, store):
    settings = postgres_settings(state, postgres_url) if store == "postgresql" else state
    log = open_prediction_log(settings, spec)
    assert isinstance(log, PostgresPredictionLog if store == "postgresql" else PredictionLog)
    log.append([record(spec, T0 + timedelta(minutes=i), 10 + i) for i in range(5)])
    log.append([record(spec, T0, 99, "shadow")], shadow=True)
    log.checkpoint()
    log.close()

    logged = read_predictions(settings, spec)
    assert list(logged["customer_id"]) == [10, 11, 12, 13, 14]
    assert str(logged["logged_at"].dt.tz) == "UTC"
    assert logged["logged_at"].iloc[0] == T0
    assert set(logged["variant"]) == {"champion"} and set(logged["model_version"]) == {3}
    for feature in spec.features:
        expected = "premium" if feature.kind == "categorical" else 2.5
        assert set(logged[feature.name]) == {expected}, feature.name
    since = read_predictions(settings, spec, since=T0 + timedelta(minutes=3))
    assert list(since["customer_id"]) == [13, 14]
    shadow = read_predictions(settings, spec, table=SHADOW_PREDICTIONS)
    assert list(shadow["customer_id"]) == [99]


def test_an_empty_postgres_log_reads_as_no_predictions(state, postgres_url):
    frame = read_predictions(postgres_settings(state, postgres_url), CHURN)
    assert frame.empty and "logged_at" in frame.columns


@pytest.mark.slow
def test_many_writers_at_once_lose_nothing_in_postgres(state, postgres_url, tmp_path):
    settings = postgres_settings(state, postgres_url)
    env = {
        **os.environ,
        "CHURN_STATE_DIR": str(settings.storage.state_dir),
        "CHURN_POSTGRES_URL": postgres_url,
        "CHURN_PREDICTION_DATABASE": settings.storage.prediction_database,
    }
    writers, each = 4, 250
    processes = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(w), str(each)], env=env)
        for w in range(1, writers + 1)
    ]
    assert [p.wait(timeout=300) for p in processes] == [0] * writers
    logged = read_predictions(settings, CHURN)
    assert len(logged) == writers * each
    assert logged["customer_id"].is_unique
    # Each writer's rows are all there, in its own order, with its own features.
    for writer in range(1, writers + 1):
        own = logged[logged["model_version"] == writer]
        assert list(own["customer_id"]) == [writer * 100000 + i for i in range(each)]
        assert set(own["total_orders_30d"]) == {float(writer)}
