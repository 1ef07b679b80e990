"""Entity keys from the spec: the API's request and answer models name and type the key.

No model of the catalog is keyed by strings yet, so the string-keyed spec here is churn's
with an ``account_id`` string key (``dataclasses.replace``). Its routes are served by
BentoML in this process, on a stand-in for the predictor that runs the real handlers
(``Predictor.predict_one`` / ``predict_many``) over fixed scores instead of a store and a
model: what is checked is the API layer, not scoring.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import bentoml
import pytest
from pydantic import BaseModel, ValidationError
from starlette.testclient import TestClient

from core.schema import CUSTOMER, ENTITY_STRING_MAX_LENGTH, EntityKey
from core.settings import get_settings
from core.spec import EntityId, ModelSpec
from models.churn.spec import SPEC as CHURN
from models.next_spend.spec import SPEC as NEXT_SPEND
from serving import service
from serving.errors import ErrorBody, validation_details
from serving.guard import RequestGuard
from serving.routing import CHALLENGER, choose_variant, customer_bucket

ACCOUNT = EntityKey("account", "account_id", "string", "A customer account, by its code.")
ACCOUNTS = replace(CHURN, name="churn_by_account", entity=ACCOUNT, serves_default_routes=False)
PATTERNED = replace(
    ACCOUNTS, name="churn_by_code", entity=replace(ACCOUNT, pattern=r"^\d{4}-[A-Z]{5}$")
)
KNOWN = "1234-ABCDE"  # the one account the stand-in has features for
ONE, MANY = "/accounts/predict", "/accounts/predict/batch"


def refused(model: type[BaseModel], body: dict[str, Any]) -> list[tuple[str, str]]:
    """The (field, code) pairs of the 400 answer to ``body`` (as serving/errors.py words it)."""
    with pytest.raises(ValidationError) as error:
        model.model_validate_json(json.dumps(body))
    return [(d.field, d.code) for d in validation_details(error.value.errors())]


def test_a_string_key_is_named_and_typed_by_its_spec():
    models = service.entity_models(ACCOUNTS)
    assert models.request.model_validate({"account_id": KNOWN}).account_id == KNOWN
    assert refused(models.request, {"account_id": 7}) == [("account_id", "string_type")]
    assert refused(models.request, {"account_id": ""}) == [("account_id", "string_too_short")]
    too_long = "x" * (ENTITY_STRING_MAX_LENGTH + 1)
    assert refused(models.request, {"account_id": too_long}) == [("account_id", "string_too_long")]
    assert ("customer_id", "extra_forbidden") in refused(models.request, {"customer_id": 7})
    batch = models.batch_request.model_validate({"account_ids": [KNOWN, "x"]})
    assert batch.account_ids == [KNOWN, "x"]
    assert refused(models.batch_request, {"account_ids": [KNOWN, 7]}) == [
        ("account_ids[1]", "string_type")
    ]
    assert refused(models.batch_request, {"account_ids": []}) == [("account_ids", "too_short")]


def test_a_declared_pattern_is_enforced_and_only_on_string_keys():
    request = service.entity_models(PATTERNED).request
    assert request.model_validate({"account_id": KNOWN}).account_id == KNOWN
    assert refused(request, {"account_id": "abc"}) == [("account_id", "string_pattern_mismatch")]
    with pytest.raises(ValueError, match="entity customer: a pattern needs dtype 'string'"):
        replace(CUSTOMER, pattern=r"^\d+$")


def test_the_customer_models_keep_their_integer_key_and_names():
    """churn and next_spend share the customer's types, named as before keys were declared."""
    models = service.entity_models(CHURN)
    assert service.entity_models(NEXT_SPEND) is models
    assert models.request.model_validate({"customer_id": 7}).customer_id == 7
    for not_an_id in ("abc", "7", 0):
        assert [f for f, _ in refused(models.request, {"customer_id": not_an_id})] == [
            "customer_id"
        ]
    assert refused(models.batch_request, {"customer_ids": [1, "abc"]}) == [
        ("customer_ids[1]", "int_type")
    ]
    names = (models.request.__name__, models.batch_request.__name__, models.unknown.__name__)
    assert names == ("PredictRequest", "BatchRequest", "UnknownCustomer")
    assert service.entity_models(ACCOUNTS).request.__name__ == "ChurnByAccountPredictRequest"


def test_string_keys_are_split_stickily_and_integer_buckets_do_not_move():
    accounts = [f"{i:04d}-ABCDE" for i in range(4000)]
    routed = [choose_variant(a, "split", 0.3, "salt") for a in accounts]
    assert routed == [choose_variant(a, "split", 0.3, "salt") for a in accounts]
    assert 0.25 < routed.count(CHALLENGER) / len(routed) < 0.35
    # An integer key is hashed as its text, as it always was: its bucket is unchanged.
    assert customer_bucket(7, "salt") == customer_bucket("7", "salt")


@dataclass
class StandIn:
    """What the predictor's handlers read of a served model: its spec."""

    spec: ModelSpec


class AccountPredictor:
    """The predictor's real handlers over fixed answers: ``KNOWN`` has features, no other."""

    predict_one = service.Predictor.predict_one
    predict_many = service.Predictor.predict_many

    def __init__(self) -> None:
        self.settings = get_settings()
        self.served = {ACCOUNTS.name: StandIn(ACCOUNTS)}

    def _predict(self, served: StandIn, entity_ids: list[EntityId]) -> list[BaseModel | None]:
        prediction = service.API_MODELS[served.spec.name].prediction
        features = prediction.model_fields["features"].annotation
        assert features is not None
        return [
            prediction(account_id=c, churn=True, probability=0.75, model_name="stand-in",
                       model_version=1, variant="champion",
                       features=features(**dict.fromkeys(ACCOUNTS.feature_names)))
            if c == KNOWN else None
            for c in entity_ids
        ]  # fmt: skip


@pytest.fixture(scope="module")
def accounts() -> Iterator[TestClient]:
    """ACCOUNTS' routes through BentoML and the request guard, in this process."""
    with pytest.MonkeyPatch.context() as patch:
        models = service.api_models(ACCOUNTS)
        patch.setitem(service.API_MODELS, ACCOUNTS.name, models)
        service.add_routes(AccountPredictor, ACCOUNTS, models, ONE, MANY, suffix="")
        served = bentoml.service(name="string_keys_probe")(AccountPredictor)
        served.add_asgi_middleware(RequestGuard, error_statuses={ONE: (400, 404), MANY: (400,)})
        with TestClient(served.to_asgi()) as client:
            yield client


def test_bentoml_passes_a_string_key_under_its_own_name(accounts):
    answer = accounts.post(ONE, json={"account_id": KNOWN})
    assert answer.status_code == 200, answer.text
    assert answer.json()["account_id"] == KNOWN and "customer_id" not in answer.json()
    unknown = accounts.post(ONE, json={"account_id": "9999-ZZZZZ"})
    assert unknown.status_code == 404
    error = ErrorBody.model_validate(unknown.json())
    assert (error.error, error.type) == (
        "unknown account_id (no online features): 9999-ZZZZZ",
        "unknown_customer",
    )
    items = accounts.post(MANY, json={"account_ids": ["9999-ZZZZZ", KNOWN]})
    assert items.status_code == 200, items.text
    first, second = items.json()
    assert first == {"account_id": "9999-ZZZZZ", "type": "unknown_customer",
                     "error": "unknown account_id (no online features)"}  # fmt: skip
    assert second["account_id"] == KNOWN and second["churn"] is True


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [({"account_id": 7}, "account_id", "Input should be a valid string"),
     ({"account_id": ""}, "account_id", "String should have at least 1 character"),
     ({"customer_id": 7}, "account_id", "Field required")],
)  # fmt: skip
def test_bentoml_refuses_what_the_string_key_refuses(accounts, body, field, message):
    answer = accounts.post(ONE, json=body)
    assert answer.status_code == 400
    error = ErrorBody.model_validate(answer.json())
    assert error.type == "invalid_request"
    assert any((d.field, d.message) == (field, message) for d in error.details or []), error


def test_the_openapi_document_types_the_string_key(accounts):
    document = accounts.get("/docs.json").json()
    schemas = document["components"]["schemas"]

    def request_schema(route: str) -> dict[str, Any]:
        return document["paths"][route]["post"]["requestBody"]["content"]["application/json"][
            "schema"
        ]

    one = request_schema(ONE)
    assert one["required"] == ["account_id"] and one["additionalProperties"] is False
    key = one["properties"]["account_id"]
    assert (key["type"], key["minLength"], key["maxLength"]) == (
        "string",
        1,
        ENTITY_STRING_MAX_LENGTH,
    )
    many = request_schema(MANY)["properties"]["account_ids"]
    assert many["items"]["type"] == "string" and many["minItems"] == 1
    assert schemas["ChurnByAccountPrediction"]["properties"]["account_id"]["type"] == "string"
    assert "customer_id" not in schemas["ChurnByAccountPrediction"]["properties"]
    unknown = schemas["ChurnByAccountUnknownCustomer"]["properties"]
    assert unknown["account_id"]["type"] == "string"
