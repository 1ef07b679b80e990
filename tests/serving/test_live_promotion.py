"""Promotion that waits for the live verdict: offline gate first, then labelled live traffic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from models.churn.spec import SPEC as CHURN
from models.promotion import gate
from models.registry import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION, alias_version, load_version
from models.tracking import configure_mlflow
from models.training import evaluate
from monitoring.ab_verdict import promote_on_live_verdict

START = datetime(2026, 6, 1, tzinfo=UTC)


def live(version: int, variant: str, correct_share: float, n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(version)
    label = rng.integers(0, 2, n)
    prediction = np.where(np.arange(n) < correct_share * n, label, 1 - label)
    return pd.DataFrame(
        {
            "logged_at": [START + timedelta(minutes=i) for i in range(n)],
            "customer_id": np.arange(n),
            "model_version": version,
            "variant": variant,
            "probability": prediction * 0.8 + 0.1,
            "prediction": prediction,
            "churned": label,
        }
    )


def test_the_gate_waits_and_the_live_verdict_promotes(two_versions, world):
    settings = two_versions["settings"].model_copy(
        update={"promotion_requires_live_verdict": True, "live_verdict_min_samples": 200}
    )
    client = configure_mlflow(settings)
    name = CHURN.registered_model
    holdout = world.training_set.holdout_path
    scores = {
        v: evaluate(CHURN, load_version(name, v), pd.read_parquet(holdout))["f1"]
        for v in (two_versions["v1"], two_versions["v2"])
    }
    worse, better = sorted(scores, key=scores.get)
    assert scores[better] > scores[worse]
    client.set_registered_model_alias(name, CHAMPION, str(worse))

    decision = gate(CHURN, better, holdout, settings)
    assert decision.awaiting_live_verdict and not decision.promoted
    assert alias_version(settings, name, CHAMPION) == worse
    assert client.get_model_version(name, str(better)).tags["gate.decision"] == (
        "awaiting_live_verdict"
    )
    client.set_registered_model_alias(name, CHALLENGER, str(better))

    # Too little live evidence: no verdict, nothing moves.
    few = pd.concat([live(worse, "champion", 0.7, 50), live(better, "challenger", 0.9, 50)])
    assert promote_on_live_verdict(CHURN, few, settings).decision == "insufficient_data"
    assert alias_version(settings, name, CHAMPION) == worse

    # Live, the challenger is right more often: it becomes champion.
    labelled = pd.concat([live(worse, "champion", 0.70), live(better, "challenger", 0.85)])
    verdict = promote_on_live_verdict(CHURN, labelled, settings)
    assert verdict.decision == "challenger_better" and verdict.ci_low > 0
    assert alias_version(settings, name, CHAMPION) == better
    assert alias_version(settings, name, PREVIOUS_CHAMPION) == worse
    tags = client.get_model_version(name, str(better)).tags
    assert tags["gate.decision"] == "promoted" and "live A/B" in tags["gate.live_reason"]
    assert tags["live_ab.decision"] == "challenger_better"
    # Nothing awaits a verdict any more: the next monitoring run leaves the aliases alone.
    assert promote_on_live_verdict(CHURN, labelled, settings) is None


def test_a_challenger_worse_live_is_not_promoted(two_versions):
    settings = two_versions["settings"].model_copy(update={"promotion_requires_live_verdict": True})
    client = configure_mlflow(settings)
    name = CHURN.registered_model
    v1, v2 = two_versions["v1"], two_versions["v2"]
    client.set_registered_model_alias(name, CHAMPION, str(v1))
    client.set_registered_model_alias(name, CHALLENGER, str(v2))
    client.set_model_version_tag(name, str(v2), "gate.decision", "awaiting_live_verdict")
    labelled = pd.concat([live(v1, "champion", 0.85), live(v2, "challenger", 0.6)])
    verdict = promote_on_live_verdict(CHURN, labelled, settings)
    assert verdict.decision == "champion_better"
    assert alias_version(settings, name, CHAMPION) == v1
    assert client.get_model_version(name, str(v2)).tags["gate.decision"] == "rejected_live"
    assert alias_version(settings, name, CHALLENGER) is None  # no more traffic for it
