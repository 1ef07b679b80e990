"""A/B testing on a real server: sticky weighted split, shadow mode, and API-key auth."""

from __future__ import annotations

import httpx
import pytest
from serving_support import free_tcp_port, metric_values

from models.churn.spec import SPEC as CHURN
from models.registry import CHALLENGER, CHAMPION
from models.tracking import configure_mlflow
from serving.model import load_version
from serving.prediction_log import SHADOW_PREDICTIONS, read_prediction_log
from serving.routing import choose_variant
from serving.server import BentoServer

pytestmark = pytest.mark.slow
API_KEY = "test-key-7f3a9c"  # a test value, not a secret


def set_aliases(two_versions) -> None:
    client = configure_mlflow(two_versions["settings"])
    name = CHURN.registered_model
    client.set_registered_model_alias(name, CHAMPION, str(two_versions["v1"]))
    client.set_registered_model_alias(name, CHALLENGER, str(two_versions["v2"]))


def test_split_is_sticky_weighted_and_logged(two_versions, known_customers):
    set_aliases(two_versions)
    settings = two_versions["settings"]
    env = {
        **two_versions["env"],
        "CHURN_SERVE_AB_MODE": "split",
        "CHURN_SERVE_AB_CHALLENGER_WEIGHT": "0.3",
    }
    customers = known_customers[:400]
    with (
        BentoServer(settings, port=free_tcp_port(), env=env) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        first = client.post("/predict/batch", json={"customer_ids": customers}).json()
        again = [client.post("/predict", json={"customer_id": c}).json() for c in customers[:100]]
        metrics = client.get("/metrics").text
    variants = {p["customer_id"]: p["variant"] for p in first}
    assert variants == {
        c: choose_variant(c, "split", 0.3, settings.serving.ab_salt) for c in customers
    }
    assert [p["variant"] for p in again] == [variants[c] for c in customers[:100]]
    share = sum(v == CHALLENGER for v in variants.values()) / len(variants)
    assert 0.2 < share < 0.4
    expected_version = {CHAMPION: two_versions["v1"], CHALLENGER: two_versions["v2"]}
    assert all(p["model_version"] == expected_version[p["variant"]] for p in first)
    challenger = metric_values(
        metrics,
        "churn_predictions_total",
        model="churn",
        variant="challenger",
        version=str(two_versions["v2"]),
    )
    assert challenger and challenger[0] > 0, metrics
    assert metric_values(
        metrics, "churn_prediction_seconds_count", model="churn", variant="champion"
    ), metrics
    logged = read_prediction_log(settings.storage.prediction_log_path(CHURN.name), CHURN)
    assert set(zip(logged["customer_id"], logged["variant"], strict=True)) >= set(variants.items())


def test_shadow_never_changes_the_answer_and_auth_guards_predict(two_versions, known_customers):
    set_aliases(two_versions)
    settings = two_versions["settings"]
    env = {**two_versions["env"], "CHURN_SERVE_AB_MODE": "shadow", "CHURN_SERVE_API_KEY": API_KEY}
    customers = known_customers[:300]
    configure_mlflow(settings)
    champion = load_version(settings, CHURN, two_versions["v1"])
    challenger = load_version(settings, CHURN, two_versions["v2"], alias=CHALLENGER)
    server = BentoServer(settings, port=free_tcp_port(), env=env)
    with server as url, httpx.Client(base_url=url, timeout=10) as client:
        body = {"customer_ids": customers}
        refused = client.post("/predict/batch", json=body)
        assert refused.status_code == 401
        assert refused.json() == {
            "error": "missing or wrong API key (Authorization: Bearer <key>)",
            "status": 401,
            "type": "unauthorized",
        }
        wrong = {"Authorization": "Bearer nope"}
        assert client.post("/predict/batch", json=body, headers=wrong).status_code == 401
        assert client.get("/readyz").status_code == 200  # probes need no key
        assert client.get("/metrics").status_code == 200
        auth = {"Authorization": f"Bearer {API_KEY}"}
        served = client.post("/predict/batch", json=body, headers=auth).json()
        metrics = client.get("/metrics").text
    assert API_KEY not in server.log_path.read_text()
    rows = [p["features"] for p in served]
    expected, _ = champion.score_rows(rows)
    assert [p["probability"] for p in served] == expected
    assert {(p["variant"], p["model_version"]) for p in served} == {(CHAMPION, two_versions["v1"])}
    shadowed = metric_values(
        metrics, "churn_shadow_predictions_total", model="churn", version=str(two_versions["v2"])
    )
    assert shadowed and shadowed[0] >= len(customers), metrics
    shadow = read_prediction_log(
        settings.storage.prediction_log_path(CHURN.name), CHURN, table=SHADOW_PREDICTIONS
    )
    shadow = shadow[shadow["customer_id"].isin(customers)]
    assert len(shadow) == len(customers) and set(shadow["model_version"]) == {two_versions["v2"]}
    assert list(shadow["probability"]) == challenger.score_rows(rows)[0]
    assert list(shadow["probability"]) != expected, "the challenger is a different model"


def test_a_removed_challenger_alias_stops_serving_it(two_versions):
    """A rejected challenger loses its alias; its share of traffic goes back to the champion."""
    from serving.live_models import LiveModels

    set_aliases(two_versions)
    settings = two_versions["settings"]
    split = settings.model_copy(
        update={"serving": settings.serving.model_copy(update={"ab_mode": "split"})}
    )
    served = LiveModels(split, CHURN)
    assert served.refresh()
    assert served.get(CHALLENGER).version == two_versions["v2"]
    configure_mlflow(settings).delete_registered_model_alias(CHURN.registered_model, CHALLENGER)
    assert served.refresh()
    assert served.get(CHALLENGER) is None
    assert served.get(CHAMPION).version == two_versions["v1"]
