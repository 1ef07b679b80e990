"""Replayed past traffic, and an operator's hand on the registry, on real components.

A replay logs what the service would have answered on past days (sticky routing, the
aliases' versions, Feast's point-in-time features), so its labels mature like live ones.
"""

from __future__ import annotations

import shutil
from datetime import UTC, timedelta

import pandas as pd
import pytest

from data import delta_tables
from data.store import get_feature_store, get_training_frame
from models.churn.spec import SPEC as CHURN
from models.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    alias_version,
    challenge_by_hand,
    promote_by_hand,
)
from models.tracking import configure_mlflow
from monitoring.outcomes import labelled_predictions
from serving.model import load_version
from serving.prediction_log import read_prediction_log
from serving.replay import replay_days
from serving.routing import choose_variant

pytestmark = pytest.mark.slow


def test_a_replayed_ab_logs_what_the_service_would_have_answered(two_versions):
    settings = two_versions["settings"]
    # The world copy is shared: start from an empty log (the other tests' are live traffic).
    shutil.rmtree(settings.storage.prediction_log_path(CHURN.name).parent, ignore_errors=True)
    name = CHURN.registered_model
    client = configure_mlflow(settings)
    client.set_registered_model_alias(name, CHAMPION, "1")
    with pytest.raises(RuntimeError, match="is the champion"):
        challenge_by_hand(settings, name, 1, "no")
    challenge_by_hand(settings, name, two_versions["v2"], "operator: a live A/B")
    assert alias_version(settings, name, CHALLENGER) == two_versions["v2"]
    tags = client.get_model_version(name, str(two_versions["v2"])).tags
    assert tags["gate.decision"] == "awaiting_live_verdict"

    # Two days old enough for churn's 30-day horizon to have passed in the world's data.
    last = max(delta_tables.partition_dates(settings.storage.raw_orders_path, "event_date"))
    days = [last - timedelta(days=45), last - timedelta(days=44)]
    done = replay_days(CHURN, settings, days, 120, seed=3, ab_mode="split", challenger_weight=0.5)
    assert done.days == [d.isoformat() for d in days] and 200 <= done.logged <= 240

    log = read_prediction_log(settings.storage.prediction_log_path(CHURN.name), CHURN)
    assert len(log) == done.logged
    assert set(log["logged_at"].dt.date) == set(days) and (log["logged_at"].dt.hour == 12).all()
    # Sticky routing as the service routes, each variant scored by its alias's version.
    assert list(log["variant"]) == [
        choose_variant(int(c), "split", 0.5, settings.serving.ab_salt) for c in log["customer_id"]
    ]
    versions = {CHAMPION: 1, CHALLENGER: two_versions["v2"]}
    assert (log["model_version"] == log["variant"].map(versions)).all()
    assert done.by_variant == {
        f"{variant} v{version}": int((log["variant"] == variant).sum())
        for variant, version in versions.items()
    }
    # Features as of each prediction's time, from Feast's offline store, and the answer the
    # loaded version gives for them.
    sample = log.iloc[:5]
    rows = sample[["customer_id", "logged_at"]].rename(columns={"logged_at": "event_timestamp"})
    offline = get_training_frame(get_feature_store(settings), rows, CHURN.feature_service)
    features = list(CHURN.feature_names)
    expected = offline.sort_values("event_timestamp")[features].reset_index(drop=True)
    logged = sample[features].reset_index(drop=True)
    pd.testing.assert_frame_equal(expected, logged, check_dtype=False)
    for row, (_, entry) in zip(expected.to_dict("records"), sample.iterrows(), strict=True):
        model = load_version(settings, CHURN, int(entry["model_version"]), entry["variant"])
        probabilities, _ = model.score_rows([row])
        assert probabilities[0] == pytest.approx(entry["probability"], rel=1e-6)
    # Their labels have matured: every replayed prediction is judged, none pending.
    # As of the morning after the world's last day.
    as_of = log["logged_at"].max().normalize() + timedelta(days=60)
    labelled = labelled_predictions(CHURN, settings, as_of.to_pydatetime())
    assert (labelled.logged, labelled.matured, labelled.pending) == (done.logged, done.logged, 0)
    assert labelled.frame["logged_at"].min().tzinfo == UTC


def test_a_promotion_by_hand_keeps_the_way_back(two_versions):
    settings = two_versions["settings"]
    name = CHURN.registered_model
    client = configure_mlflow(settings)
    client.set_registered_model_alias(name, CHAMPION, "1")
    v2 = two_versions["v2"]
    assert promote_by_hand(settings, name, v2, "operator: override") == 1
    assert alias_version(settings, name, CHAMPION) == v2
    assert alias_version(settings, name, PREVIOUS_CHAMPION) == 1
    tags = client.get_model_version(name, str(v2)).tags
    assert (tags["gate.decision"], tags["gate.reason"]) == (
        "promoted_by_hand",
        "operator: override",
    )
    with pytest.raises(RuntimeError, match="already the champion"):
        promote_by_hand(settings, name, v2, "again")
