"""The numpy fast path gives exactly the registered model's answers."""

import numpy as np
import pandas as pd
import pytest

from core.schema import FEATURE_COLUMNS, model_input
from data.store import get_feature_store, get_online_features
from models import registry
from serving.model import compile_fast_path, load_model, probe_rows


@pytest.fixture(scope="module")
def champion(world):
    return load_model(world.settings)


def test_fast_path_is_compiled_for_the_champion(champion):
    assert champion.fast is not None and champion.fast.forest is not None


def test_fast_path_equals_mlflow_model_on_holdout_and_online_rows(world, champion, known_customers):
    reference = registry.load_version(world.settings, champion.version)  # mlflow.sklearn
    holdout = pd.read_parquet(world.training_set["holdout_path"])
    online = get_online_features(
        get_feature_store(world.settings), known_customers, world.settings.feature_service
    ).dropna(subset=list(FEATURE_COLUMNS))
    for frame in (holdout, online):
        inputs = model_input(frame)
        rows = inputs.to_dict(orient="records")
        probability, decision = champion.score_rows(rows)
        assert np.array_equal(np.asarray(probability), reference.predict_proba(inputs)[:, 1])
        assert np.array_equal(np.asarray(decision), reference.predict(inputs))
        one_by_one = [champion.score_rows([row])[0][0] for row in rows[:50]]
        assert one_by_one == probability[:50]


def test_fast_path_handles_missing_values_and_unknown_segments(world, champion):
    reference = registry.load_version(world.settings, champion.version)
    rows = probe_rows(champion.fast)
    rows += [{**row, "total_spend_30d": None} for row in rows[:8]]
    frame = model_input(pd.DataFrame(rows, columns=list(FEATURE_COLUMNS)))
    probability, decision = champion.score_rows(rows)
    assert np.array_equal(np.asarray(probability), reference.predict_proba(frame)[:, 1])
    assert np.array_equal(np.asarray(decision), reference.predict(frame))


def test_models_of_another_shape_have_no_fast_path():
    from sklearn.linear_model import LogisticRegression

    assert compile_fast_path(LogisticRegression()) is None
