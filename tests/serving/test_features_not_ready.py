"""A model whose feature service is missing or disagrees with its spec is not ready alone."""

from __future__ import annotations

from dataclasses import replace

import pytest

from models.churn.spec import SPEC as CHURN
from serving.features import FeatureServiceNotReady, OnlineFeatures, build_serving_store


@pytest.fixture(scope="module")
def store(world):
    return build_serving_store(world.settings)


def test_an_unregistered_service_is_not_ready_and_says_so(world, store) -> None:
    added = replace(CHURN, name="added_later", feature_service="added_later_v1")
    features = OnlineFeatures(world.settings, added, store)  # building it does not raise
    assert not features.is_ready()
    with pytest.raises(FeatureServiceNotReady, match="added_later_v1 is not registered yet"):
        features.read([1])
    assert OnlineFeatures(world.settings, CHURN, store).is_ready()  # churn is unaffected


def test_a_service_that_disagrees_with_the_spec_is_not_ready(world, store) -> None:
    fewer = replace(CHURN, features=CHURN.features[:5])
    features = OnlineFeatures(world.settings, fewer, store)
    with pytest.raises(FeatureServiceNotReady, match="lifetime_value"):
        features.read([1])
