"""Fixtures of the serving tests: real BentoML servers over copies of the session world.

The session ``world`` is shared by many test modules, so tests that move registry aliases,
stop Redis or kill servers work on a copy of its state (``copy_world``); its Delta tables
and model artifacts are only read.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from serving_support import copy_world, settings_for

from data import delta_tables
from serving.server import BentoServer


@pytest.fixture(scope="session")
def server(world, free_port) -> Iterator[httpx.Client]:
    """The service over the world's state (SQLite online store), default settings."""
    with (
        BentoServer(world.settings, port=free_port) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield client


@pytest.fixture(scope="session")
def known_customers(world) -> list[int]:
    snapshots = delta_tables.read_table(
        world.settings.storage.customer_features_path, columns=["customer_id"]
    )
    return sorted(int(c) for c in snapshots["customer_id"].unique())


@pytest.fixture(scope="session")
def two_versions(world, tmp_path_factory) -> dict:
    """A world copy whose registry holds v1 (champion) and v2 (trained on 60% of the rows)."""
    from dataclasses import replace

    import pandas as pd

    from models import registry, training
    from models.churn.spec import SPEC as CHURN

    target = tmp_path_factory.mktemp("two_versions")
    env = copy_world(world, target / "state")
    settings = settings_for(env)
    train = pd.read_parquet(world.training_set.train_path)
    subset = target / "train_subset.parquet"
    train.sample(frac=0.6, random_state=5).to_parquet(subset, index=False)
    training_set = replace(world.training_set, train_path=str(subset))
    trained = training.train_and_log(CHURN, training_set, settings, dag_run_id="challenger")
    v2 = registry.register_model(CHURN, trained, settings).version
    return {"env": env, "settings": settings, "v1": 1, "v2": v2, "model_uri": trained.model_uri}
