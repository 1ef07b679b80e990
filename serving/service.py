"""The prediction API (BentoML): every declared model, by name, on one service.

``/models/<name>/predict`` scores one customer with model ``<name>`` (404 for a customer
without online features), ``/models/<name>/predict/batch`` many (one item per id, an
``unknown_customer`` item for an id without features). ``/predict`` and
``/predict/batch`` are the default model's (the spec with ``serves_default_routes``: the
churn model), with the same contract as before models were declared. Each model has its own
features (its Feast feature service, read online), its own registry aliases (``champion``,
and in A/B ``split`` mode the ``challenger`` for a sticky share of customers), its own
prediction log and its own metric series. Every prediction is committed to its model's log
before it is returned (a log store that cannot take it makes the answer a 503); errors
follow the one contract of serving/errors.py. The online store and the log stores sit
behind circuit breakers (serving/breaker.py): once one fails, requests answer 503 at once
until a probe finds it back. ``GET /readyz`` says why the service is not ready, or that a
model lags the registry (serving/readiness.py). See docs/serving.md for the design, the
fault behaviour and the benchmark.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import bentoml
import prometheus_client
from pydantic import BaseModel, ConfigDict, Field, RootModel, create_model
from starlette.responses import Response

from core import clock
from core.schema import ENTITY_ID_MAX, ENTITY_ID_MIN, ENTITY_KEY, ENTITY_STRING_MAX_LENGTH
from core.settings import get_settings
from core.spec import EntityId, EntityKeyDtype, ModelSpec
from models.aliases import CHALLENGER, CHAMPION
from models.catalog import load_specs
from serving.breaker import CircuitBreaker, StoreDown
from serving.errors import (
    ErrorDetail,
    FeatureServiceNotReady,
    OnlineStoreUnavailable,
    error_payload,
)
from serving.guard import RequestGuard
from serving.lifeline import exit_with_parent
from serving.prediction_log import (
    PredictionLogUnavailable,
    PredictionRecord,
    PredictionWriter,
    open_prediction_log,
)
from serving.readiness import Readiness, ReadinessRoute
from serving.routing import choose_variant, model_routes

if TYPE_CHECKING:  # Feast, MLflow and ONNX Runtime: imported by Predictor.__init__
    from serving.features import FeatureRow, OnlineFeatures
    from serving.live_models import AliasState, LiveModels
    from serving.model import LoadedModel

log = logging.getLogger(__name__)
CHECKPOINT_SECONDS = 5.0

CustomerId = Annotated[int, Field(ge=ENTITY_ID_MIN, le=ENTITY_ID_MAX, strict=True)]
# The Python type of an entity key in an answer, by the spec's entity_key_dtype.
KEY_TYPES: dict[EntityKeyDtype, type] = {"int64": int, "string": str}

# Per-variant traffic on /metrics. BentoML imports this module in each worker after it has
# set PROMETHEUS_MULTIPROC_DIR, so these series reach the workers' shared /metrics.
REQUESTS = prometheus_client.Counter(
    name="churn_predictions_total",
    documentation="Predictions answered, by model, variant and model version.",
    labelnames=["model", "variant", "version"],
)
LATENCY = prometheus_client.Histogram(
    name="churn_prediction_seconds",
    documentation="Time to answer one predict or predict/batch call, by model and variant.",
    labelnames=["model", "variant"],
    buckets=(0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)
SHADOW = prometheus_client.Counter(
    name="churn_shadow_predictions_total",
    documentation="Challenger scores computed in shadow mode (never returned).",
    labelnames=["model", "version"],
)
UNAVAILABLE = prometheus_client.Counter(
    name="churn_unavailable_total",
    documentation="Requests answered 503, by cause (model, feature_service, online_store, "
    "prediction_log).",
    labelnames=["cause"],
)
RELOAD_FAILURES = prometheus_client.Counter(
    name="churn_model_reload_failures_total",
    documentation="Registry reads or model loads that failed (the old model kept serving).",
    labelnames=["model", "alias"],
)
SERVED_VERSION = prometheus_client.Gauge(
    name="churn_model_version",
    documentation="Registered version served per model and alias.",
    labelnames=["model", "alias"],
)
REGISTRY_VERSION = prometheus_client.Gauge(
    name="churn_registry_model_version",
    documentation="Version the registry alias names at the last read (0: alias not set).",
    labelnames=["model", "alias"],
)
MODEL_BEHIND = prometheus_client.Gauge(
    name="churn_model_behind",
    documentation="1 while the registry's version of the alias failed to load and an older "
    "one (or none) serves; it is retried with back-off.",
    labelnames=["model", "alias"],
)


def entity_id_type(dtype: EntityKeyDtype, pattern: str | None = None) -> Any:
    """The type of one entity key in a request, by the spec's ``entity_key_dtype`` and
    ``entity_key_pattern``.

    An integer key takes the platform's id bounds; a string key is non-empty, bounded in
    length and, with a pattern, matches it. Both are strict: ``7`` is no string key and
    ``"7"`` no integer key.
    """
    if dtype == "int64":
        return CustomerId
    return Annotated[
        str, Field(min_length=1, max_length=ENTITY_STRING_MAX_LENGTH, pattern=pattern, strict=True)
    ]


def batch_key(entity_key: str) -> str:
    """The field of a predict/batch request: the spec's entity key, plural."""
    return f"{entity_key}s"


@dataclass(frozen=True)
class EntityModels:
    """The pydantic types that carry a model's entity key: its two request bodies and the
    batch item of an entity without online features."""

    request: type[BaseModel]
    batch_request: type[BaseModel]
    unknown: type[BaseModel]


def entity_models(spec: ModelSpec) -> EntityModels:
    """``spec``'s request bodies and unknown-entity item, their key named and typed by it.

    The models keyed by the platform's customers (churn, next_spend) share one set, named
    as before specs declared their keys (``PredictRequest``, ``BatchRequest``,
    ``UnknownCustomer``), so their OpenAPI document did not change; any other model's
    names start with its title.
    """
    declared = (spec.entity_key, spec.entity_key_dtype, spec.entity_key_pattern)
    prefix = "" if declared == (ENTITY_KEY, "int64", None) else _title(spec)
    return _entity_models(*declared, prefix=prefix)


@functools.cache
def _entity_models(
    key: str, dtype: EntityKeyDtype, pattern: str | None, prefix: str
) -> EntityModels:
    forbid = ConfigDict(extra="forbid")  # unknown fields are refused (400), not ignored
    key_type = entity_id_type(dtype, pattern)
    request = create_model(
        f"{prefix}PredictRequest",
        __config__=forbid,
        __doc__="Body of a predict route. Unknown fields are refused (400) rather than ignored.",
        **{key: (key_type, ...)},
    )
    # The batch's upper bound is the settings' and is checked when the call is served (the
    # settings are read when the service starts, never at import).
    batch_request = create_model(
        f"{prefix}BatchRequest",
        __config__=forbid,
        __doc__=f"Body of a predict/batch route: 1 to ``CHURN_SERVE_BATCH_LIMIT`` {key}s.",
        **{batch_key(key): (Annotated[list[key_type], Field(min_length=1)], ...)},  # type: ignore[valid-type]
    )
    unknown = create_model(
        f"{prefix}UnknownCustomer",
        __doc__="A /predict/batch item for a customer the online store holds no features for."
        "\n\nSame ``error`` (message) and ``type`` (code) keys as an error body; nothing is "
        "logged.",
        **{key: (KEY_TYPES[dtype], ...)},
        error=(str, ...),
        type=(Literal["unknown_customer"], ...),
    )
    return EntityModels(request, batch_request, unknown)


def features_model(spec: ModelSpec) -> type[BaseModel]:
    """The model's features as served (null when the online store holds no value for one)."""
    return create_model(
        f"{_title(spec)}Features",
        __doc__="The features as served (null when the online store holds no value for one).",
        **{f.name: (f.served_type | None, Field(description=f.description)) for f in spec.features},
    )


def prediction_model(spec: ModelSpec) -> type[BaseModel]:
    """The answer of ``spec``'s predict route, its fields derived from the spec.

    A classifier answers ``<output>: bool`` and ``probability``; a regression answers
    ``<output>: float``.
    """
    answer: dict[str, Any] = (
        {
            spec.output: (bool, Field(description=spec.description)),
            "probability": (float, Field(description="Probability of the positive class")),
        }
        if spec.task == "classification"
        else {spec.output: (float, Field(description=spec.description))}
    )
    return create_model(
        f"{_title(spec)}Prediction",
        __doc__=f"A prediction of {spec.registered_model}.",
        **{spec.entity_key: (KEY_TYPES[spec.entity_key_dtype], ...)},
        **answer,
        model_name=(str, ...),
        model_version=(int, ...),
        variant=(str, ...),
        features=(features_model(spec), ...),
    )


def _title(spec: ModelSpec) -> str:
    return "".join(part.capitalize() for part in spec.name.split("_"))


def unknown_message(spec: ModelSpec) -> str:
    """The message of an entity without online features."""
    return f"unknown {spec.entity_key} (no online features)"


def batch_item_model(spec: ModelSpec, prediction: type[BaseModel]) -> type[RootModel]:
    """One predict/batch item, in request order: a prediction or an unknown customer.

    A named model, not a bare union: BentoML's OpenAPI keeps only the first member of a
    union in a response schema, but lists a named model's schema whole.
    """
    name = f"{_title(spec)}BatchItem"
    item = RootModel[prediction | entity_models(spec).unknown]  # type: ignore[valid-type]
    return type(name, (item,), {"__doc__": batch_item_model.__doc__.splitlines()[0]})


# Error statuses each route can answer (serving/errors.py), listed in the OpenAPI document.
COMMON_ERRORS = (400, 401, 413, 415, 431, 500, 503)


class Unavailable(Exception):
    """The service cannot answer now; the client should retry (503 + Retry-After)."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass
class ServedModel:
    """One model as served: its spec, online features, live versions and prediction log
    (behind its own breaker)."""

    spec: ModelSpec
    features: OnlineFeatures
    models: LiveModels
    log: PredictionWriter
    log_breaker: CircuitBreaker
    prediction: type[BaseModel]
    features_type: type[BaseModel]


@dataclass(frozen=True)
class ApiModels:
    """The pydantic types of one model's routes."""

    prediction: type[BaseModel]
    batch_item: type[RootModel]
    entities: EntityModels


def api_models(spec: ModelSpec) -> ApiModels:
    """The pydantic types of ``spec``'s routes, from its declaration."""
    prediction = prediction_model(spec)
    return ApiModels(prediction, batch_item_model(spec, prediction), entity_models(spec))


SPECS = load_specs()  # declarations only: no settings, environment or connection
API_MODELS = {spec.name: api_models(spec) for spec in SPECS}
DEFAULT = next((s for s in SPECS if s.serves_default_routes), None)
ERROR_STATUSES: dict[str, tuple[int, ...]] = {}
for _spec in SPECS:
    _one, _many = model_routes(_spec.name)
    ERROR_STATUSES |= {_one: (*COMMON_ERRORS, 404), _many: COMMON_ERRORS}
if DEFAULT is not None:
    ERROR_STATUSES |= {"/predict": (*COMMON_ERRORS, 404), "/predict/batch": COMMON_ERRORS}


class Predictor:
    """Predicts with every declared model (see the module docstring)."""

    def __init__(self) -> None:
        exit_with_parent()  # a killed `bentoml serve` leaves no worker serving
        self.settings = get_settings()
        # BentoML 1.4.40 trips a pydantic deprecation warning on every request; writing it
        # to stderr each time cost more than the prediction. Only this process is affected.
        warnings.simplefilter("ignore", DeprecationWarning)
        # A dead MLflow server must fail fast, not after minutes of HTTP retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
        # Here, in the worker, not at the top: `bentoml serve`'s parent process imports this
        # module only to read the service's definition, and Feast, MLflow and ONNX Runtime
        # would cost it seconds of CPU at every server start.
        from serving.features import OnlineFeatures, build_serving_store, online_store_breaker
        from serving.live_models import LiveModels

        store = build_serving_store(self.settings)  # one registry cache for every model
        online = online_store_breaker(self.settings)  # one online store for every model
        retry = self.settings.serving.retry_after_seconds
        self.served: dict[str, ServedModel] = {}
        for spec in SPECS:
            self.served[spec.name] = ServedModel(
                spec=spec,
                features=OnlineFeatures(self.settings, spec, store, online),
                models=LiveModels(
                    self.settings,
                    spec,
                    on_failure=lambda alias, _, m=spec.name: RELOAD_FAILURES.labels(
                        model=m, alias=alias
                    ).inc(),
                    on_state=lambda alias, state, m=spec.name: _publish(m, alias, state),
                ),
                log=open_prediction_log(self.settings, spec, auto_checkpoint=False),
                log_breaker=CircuitBreaker(f"{spec.name} prediction log", retry),
                prediction=API_MODELS[spec.name].prediction,
                features_type=API_MODELS[spec.name].prediction.model_fields["features"].annotation,  # type: ignore[arg-type]
            )
        for served in self.served.values():
            if not served.models.refresh():
                log.error(
                    "%s not ready: %s; retrying in the background",
                    served.spec.name,
                    served.models.last_error,
                )
            served.models.start()
        self._stop = threading.Event()
        threading.Thread(
            target=self._checkpoint_loop, name="prediction-log-checkpoint", daemon=True
        ).start()
        # Start-up objects (feast, mlflow, sklearn: ~1M) move out of the collector's reach,
        # so a full collection no longer walks them: this removed the 60-160 ms p99 stalls.
        gc.collect()
        gc.freeze()
        for served in self.served.values():
            champion = served.models.get(CHAMPION)
            log.info(
                "%s: serving %s",
                served.spec.name,
                f"{champion.name} v{champion.version}" if champion else "nothing yet",
            )

    def __is_ready__(self) -> bool:
        """BentoML's readiness hook: :meth:`readiness` without the reasons."""
        return self.readiness().ready

    def readiness(self) -> Readiness:
        """Ready when the default model's champion is loaded, its feature service registered,
        and the online store and its prediction log store answer (``GET /readyz``).

        Another model without a champion answers 503 on its own routes; it does not make
        the whole service unready (one model never holds up another). A model serving an
        older version than the registry names, because that version failed to load, leaves
        the service ready but degraded (see serving/readiness.py for why).
        """
        served = self.served[DEFAULT.name] if DEFAULT else next(iter(self.served.values()))
        name = served.spec.name
        problems = []
        if served.models.get(CHAMPION) is None:
            problems.append(f"no {name} model loaded yet: {served.models.last_error}")
        if (reason := served.features.not_ready_reason()) is not None:
            problems.append(f"{name}: {reason}")
        for reason in (served.features.unavailable_reason(), self._log_problem(served)):
            if reason is not None:
                problems.append(reason)
        degraded = []
        models: dict[str, dict[str, dict[str, Any]]] = {}
        for each in self.served.values():
            models[each.spec.name] = {}
            for alias in each.models.aliases:
                state = each.models.state(alias)
                detail: dict[str, Any] = {"served": state.served, "registry": state.registry}
                if state.behind:
                    detail |= {"error": state.error, "retry_in_seconds": state.retry_in}
                    serving = f"v{state.served}" if state.served else "nothing"
                    degraded.append(
                        f"{each.spec.name} {alias}: serving {serving}, the registry names "
                        f"v{state.registry}, which failed to load (next try in "
                        f"{state.retry_in:g} s): {state.error}"
                    )
                models[each.spec.name][alias] = detail
        retry = self.settings.serving.retry_after_seconds
        return Readiness(problems, degraded, models, retry)

    def _log_problem(self, served: ServedModel) -> str | None:
        """None when the model's prediction log store answers, else why not."""
        try:
            served.log_breaker.call(served.log.ping, (PredictionLogUnavailable,))
        except (StoreDown, PredictionLogUnavailable) as error:  # StoreDown: the last error
            return str(error)
        return None

    def _checkpoint_loop(self) -> None:
        while not self._stop.wait(CHECKPOINT_SECONDS):
            for served in self.served.values():
                try:
                    served.log.checkpoint()
                except Exception:  # a busy database retries at the next tick
                    log.exception("%s: prediction log checkpoint failed", served.spec.name)

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        """Stop background threads and close the logs (records were committed already)."""
        self._stop.set()
        for served in self.served.values():
            served.models.stop()
            served.log.close()
        for served in self.served.values():
            served.features.close()  # Redis clients; the shared store's refresh thread

    # --- the handlers behind every model's routes -------------------------------------------
    def predict_one(self, name: str, entity_id: EntityId) -> BaseModel | Response:
        """Model ``name``'s prediction for one entity (404 without online features)."""
        served = self.served[name]
        try:
            prediction = self._predict(served, [entity_id])[0]
        except Unavailable as error:
            return self._unavailable(error)
        if prediction is None:
            message = f"{unknown_message(served.spec)}: {entity_id}"
            payload = error_payload(404, message, "unknown_customer")
            return Response(payload, 404, media_type="application/json")
        return prediction

    def predict_many(self, name: str, entity_ids: list[EntityId]) -> list[RootModel] | Response:
        """Model ``name``'s predictions, one item per requested id, in request order."""
        served = self.served[name]
        limit = self.settings.serving.batch_limit
        if len(entity_ids) > limit:
            field = batch_key(served.spec.entity_key)
            message = f"List should have at most {limit} items, not {len(entity_ids)}"
            detail = ErrorDetail(field=field, message=message, code="too_long")
            payload = error_payload(400, f"{field}: {message}", details=[detail])
            return Response(payload, 400, media_type="application/json")
        try:
            predictions = self._predict(served, list(entity_ids))
        except Unavailable as error:
            return self._unavailable(error)
        models = API_MODELS[name]
        key, unknown = served.spec.entity_key, unknown_message(served.spec)
        return [
            models.batch_item(
                p
                if p is not None
                else models.entities.unknown(**{key: c}, error=unknown, type="unknown_customer")
            )
            for c, p in zip(entity_ids, predictions, strict=True)
        ]

    def _unavailable(self, error: Unavailable) -> Response:
        UNAVAILABLE.labels(cause=error.cause).inc()
        retry = self.settings.serving.retry_after_seconds
        payload = error_payload(503, str(error), retry_after_seconds=retry)
        return Response(payload, 503, {"Retry-After": str(retry)}, media_type="application/json")

    def _predict(self, served: ServedModel, entity_ids: list[EntityId]) -> list[BaseModel | None]:
        """Predictions in request order; ``None`` for an entity without online features.

        Only known customers are scored, logged and counted.
        """
        started = time.perf_counter()
        spec = served.spec
        champion = served.models.get(CHAMPION)
        if champion is None:
            raise Unavailable(
                "model", f"no {spec.name} model loaded yet: {served.models.last_error}"
            )
        try:
            all_rows = served.features.read(entity_ids)
        except OnlineStoreUnavailable as error:
            raise Unavailable("online_store", str(error)) from error
        except FeatureServiceNotReady as error:
            raise Unavailable("feature_service", f"{spec.name}: {error}") from error
        positions = [i for i, row in enumerate(all_rows) if row is not None]
        answers: list[BaseModel | None] = [None] * len(entity_ids)
        if not positions:
            return answers
        ids = [entity_ids[i] for i in positions]
        known = cast("list[FeatureRow]", [all_rows[i] for i in positions])
        groups = self._route(served, ids, champion)
        scores: list[float] = [0.0] * len(ids)
        decisions: list[int] = [0] * len(ids)
        by_index: list[LoadedModel] = [champion] * len(ids)
        for model, indices in groups:
            values, decided = model.score_rows([known[i] for i in indices])
            for j, i in enumerate(indices):
                scores[i], by_index[i] = values[j], model
                if decided is not None:
                    decisions[i] = decided[j]
        now = clock.now(self.settings)
        classifier = spec.task == "classification"
        records = [
            PredictionRecord(
                now, c, by_index[i].version, by_index[i].alias, known[i],
                scores[i] if classifier else None, decisions[i] if classifier else scores[i],
            )
            for i, c in enumerate(ids)
        ]  # fmt: skip
        try:  # committed before the answer: a write that fails is never acknowledged
            served.log_breaker.call(served.log.append, (PredictionLogUnavailable,), records)
        except (StoreDown, PredictionLogUnavailable) as error:  # StoreDown: the last error
            raise Unavailable("prediction_log", str(error)) from error
        self._shadow(served, ids, known, now)
        for i, c in enumerate(ids):
            answer: dict[str, object] = (
                {spec.output: bool(decisions[i]), "probability": scores[i]}
                if classifier
                else {spec.output: scores[i]}
            )
            answers[positions[i]] = served.prediction(
                **{spec.entity_key: c},
                **answer,
                model_name=by_index[i].name,
                model_version=by_index[i].version,
                variant=by_index[i].alias,
                features=served.features_type(**known[i]),
            )
        elapsed = time.perf_counter() - started
        for model, indices in groups:
            REQUESTS.labels(model=spec.name, variant=model.alias, version=str(model.version)).inc(
                len(indices)
            )
            LATENCY.labels(model=spec.name, variant=model.alias).observe(elapsed)
        return answers

    def _route(
        self, served: ServedModel, entity_ids: list[EntityId], champion: LoadedModel
    ) -> list[tuple[LoadedModel, list[int]]]:
        """Group request positions by the model version that answers them."""
        settings = self.settings
        challenger = served.models.get(CHALLENGER) if settings.serving.ab_mode == "split" else None
        if challenger is None:
            return [(champion, list(range(len(entity_ids))))]
        chosen: dict[str, list[int]] = {CHAMPION: [], CHALLENGER: []}
        for i, c in enumerate(entity_ids):
            variant = choose_variant(
                c, "split", settings.serving.ab_challenger_weight, settings.serving.ab_salt
            )
            chosen[variant].append(i)
        models = {CHAMPION: champion, CHALLENGER: challenger}
        return [(models[v], idx) for v, idx in chosen.items() if idx]

    def _shadow(
        self,
        served: ServedModel,
        entity_ids: list[EntityId],
        rows: list[FeatureRow],
        now: datetime,
    ) -> None:
        """Shadow mode: the challenger scores the same rows; logged apart, never returned."""
        shadowing = self.settings.serving.ab_mode == "shadow"
        challenger = served.models.get(CHALLENGER) if shadowing else None
        if challenger is None:
            return
        classifier = served.spec.task == "classification"
        try:
            values, decisions = challenger.score_rows(rows)
            records = [
                PredictionRecord(
                    now, c, challenger.version, "shadow", rows[i],
                    values[i] if classifier else None,
                    decisions[i] if classifier and decisions is not None else values[i],
                )
                for i, c in enumerate(entity_ids)
            ]  # fmt: skip
            served.log.append(records, shadow=True)
            SHADOW.labels(model=served.spec.name, version=str(challenger.version)).inc(
                len(entity_ids)
            )
        except Exception:  # the shadow must never change or fail the champion's answer
            log.exception("shadow scoring failed")


def _publish(model: str, alias: str, state: AliasState) -> None:
    """The alias's served and registry versions on /metrics (after each registry read)."""
    if state.served is not None:
        SERVED_VERSION.labels(model=model, alias=alias).set(state.served)
    REGISTRY_VERSION.labels(model=model, alias=alias).set(state.registry or 0)
    MODEL_BEHIND.labels(model=model, alias=alias).set(1 if state.behind else 0)


def add_routes(
    cls: type, spec: ModelSpec, models: ApiModels, one: str, many: str, suffix: str
) -> None:
    """Add BentoML API methods for ``spec`` on ``one`` and ``many`` to ``cls``: a body of
    ``models``' request types is answered by ``cls.predict_one`` / ``cls.predict_many``."""
    name, key, keys = spec.name, spec.entity_key, batch_key(spec.entity_key)

    # BentoML validates the body with the input_spec and passes its fields as keyword
    # arguments: the one field is named after the spec's entity key, whatever that is.
    def predict(self, **body: EntityId):  # type: ignore[no-untyped-def]
        return self.predict_one(name, body[key])

    def predict_batch(self, **body: list[EntityId]):  # type: ignore[no-untyped-def]
        return self.predict_many(name, body[keys])

    predict.__doc__ = f"{spec.description} One customer (404 without online features)."
    predict_batch.__doc__ = (
        f"{spec.description} Up to CHURN_SERVE_BATCH_LIMIT customers; one item per id, in order "
        "(an unknown_customer item for an id without online features)."
    )
    predict.__annotations__["return"] = models.prediction
    predict_batch.__annotations__["return"] = list[models.batch_item]  # type: ignore[name-defined]
    requests = models.entities
    setattr(cls, f"predict{suffix}", bentoml.api(route=one, input_spec=requests.request)(predict))
    setattr(
        cls,
        f"predict_batch{suffix}",
        bentoml.api(route=many, input_spec=requests.batch_request)(predict_batch),
    )


for _spec in SPECS:
    add_routes(
        Predictor, _spec, API_MODELS[_spec.name], *model_routes(_spec.name), suffix=f"_{_spec.name}"
    )
if DEFAULT is not None:
    add_routes(
        Predictor, DEFAULT, API_MODELS[DEFAULT.name], "/predict", "/predict/batch", suffix=""
    )

ChurnPredictor = bentoml.service(
    name="churn_predictor",
    traffic={"timeout": 10},
    # The access log costs ~0.3 ms of the event loop per request; /metrics counts requests.
    logging={"access": {"enabled": False}},
)(Predictor)
ChurnPredictor.add_asgi_middleware(RequestGuard, error_statuses=ERROR_STATUSES)
ChurnPredictor.add_asgi_middleware(ReadinessRoute)  # inside the guard: GET /readyz
