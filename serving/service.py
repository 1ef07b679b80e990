"""The churn prediction API (BentoML).

``/predict`` scores one customer (404 for one without online features), ``/predict/batch``
many (one item per id, an ``unknown_customer`` item for an id without features). Features
come from Feast's online store; the answering model is the registry's ``champion`` (or, in
A/B ``split`` mode, the ``challenger`` for a sticky share of customers). Every prediction
is committed to the prediction log before it is returned; errors follow the one contract
of serving/errors.py. See docs/serving.md for the design, the fault behaviour and the
benchmark.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
import warnings
from datetime import UTC, datetime
from typing import Annotated, Literal, cast

import bentoml
import prometheus_client
from pydantic import BaseModel, ConfigDict, Field, RootModel, create_model
from starlette.responses import Response

from core.schema import CUSTOMER_FEATURES
from core.settings import get_settings
from models.registry import CHALLENGER, CHAMPION
from serving.errors import error_payload
from serving.features import FeatureRow, OnlineFeatures, OnlineStoreUnavailable
from serving.guard import RequestGuard
from serving.live_models import LiveModels
from serving.model import LoadedModel
from serving.prediction_log import PredictionLog, PredictionRecord
from serving.routing import choose_variant

log = logging.getLogger(__name__)
MAX_CUSTOMER_ID = 2**53  # JSON numbers above this lose precision in many clients
BATCH_LIMIT = get_settings().batch_limit  # reads the environment only
CHECKPOINT_SECONDS = 5.0

CustomerId = Annotated[int, Field(ge=1, le=MAX_CUSTOMER_ID, strict=True)]

# Per-variant traffic on /metrics. BentoML imports this module in each worker after it has
# set PROMETHEUS_MULTIPROC_DIR, so these series reach the workers' shared /metrics.
REQUESTS = prometheus_client.Counter(
    name="churn_predictions_total",
    documentation="Predictions answered, by variant and model version.",
    labelnames=["variant", "version"],
)
LATENCY = prometheus_client.Histogram(
    name="churn_prediction_seconds",
    documentation="Time to answer one /predict or /predict/batch call, by answering variant.",
    labelnames=["variant"],
    buckets=(0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)
SHADOW = prometheus_client.Counter(
    name="churn_shadow_predictions_total",
    documentation="Challenger scores computed in shadow mode (never returned).",
    labelnames=["version"],
)
UNAVAILABLE = prometheus_client.Counter(
    name="churn_unavailable_total",
    documentation="Requests answered 503, by cause.",
    labelnames=["cause"],
)
RELOAD_FAILURES = prometheus_client.Counter(
    name="churn_model_reload_failures_total",
    documentation="Registry reads or model loads that failed (the old model kept serving).",
    labelnames=["alias"],
)
SERVED_VERSION = prometheus_client.Gauge(
    name="churn_model_version",
    documentation="Registered version served per alias.",
    labelnames=["alias"],
)


class PredictRequest(BaseModel):
    """Body of /predict. Unknown fields are refused (400) rather than ignored."""

    model_config = ConfigDict(extra="forbid")
    customer_id: CustomerId


class BatchRequest(BaseModel):
    """Body of /predict/batch: 1 to ``CHURN_BATCH_LIMIT`` customer ids."""

    model_config = ConfigDict(extra="forbid")
    customer_ids: Annotated[list[CustomerId], Field(min_length=1, max_length=BATCH_LIMIT)]


# The features as served (null when the online store holds no value for one), one field
# per feature of core/schema.py.
CustomerFeatures = create_model(
    "CustomerFeatures",
    __doc__="The features as served (null when the online store holds no value for one).",
    **{f.name: (f.served_type | None, Field(description=f.description)) for f in CUSTOMER_FEATURES},
)


class Prediction(BaseModel):
    customer_id: int
    churn: bool
    probability: float
    model_name: str
    model_version: int
    variant: str
    features: CustomerFeatures


UNKNOWN_CUSTOMER = "unknown customer_id (no online features)"


class UnknownCustomer(BaseModel):
    """A /predict/batch item for a customer the online store holds no features for.

    Same ``error`` (message) and ``type`` (code) keys as an error body; nothing is logged.
    """

    customer_id: int
    error: str
    type: Literal["unknown_customer"]

    @classmethod
    def of(cls, customer_id: int) -> UnknownCustomer:
        """The item for ``customer_id``."""
        return cls(customer_id=customer_id, error=UNKNOWN_CUSTOMER, type="unknown_customer")


# A named model, not a bare union: BentoML's OpenAPI keeps only the first member of a union
# in a response schema, but lists a named model's schema whole.
class BatchItem(RootModel[Prediction | UnknownCustomer]):
    """One /predict/batch item, in request order: a prediction or an unknown customer."""


# Error statuses each route can answer (serving/errors.py), listed in the OpenAPI document.
COMMON_ERRORS = (400, 401, 413, 415, 500, 503)
ERROR_STATUSES = {"/predict": (*COMMON_ERRORS, 404), "/predict/batch": COMMON_ERRORS}


class Unavailable(Exception):
    """The service cannot answer now; the client should retry (503 + Retry-After)."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


@bentoml.service(
    name="churn_predictor",
    traffic={"timeout": 10},
    # The access log costs ~0.3 ms of the event loop per request; /metrics counts requests.
    logging={"access": {"enabled": False}},
)
class ChurnPredictor:
    """Predicts whether a customer will place no order in the next 30 days."""

    def __init__(self) -> None:
        self.settings = get_settings()
        # BentoML 1.4.40 trips a pydantic deprecation warning on every request; writing it
        # to stderr each time cost more than the prediction. Only this process is affected.
        warnings.simplefilter("ignore", DeprecationWarning)
        # A dead MLflow server must fail fast, not after minutes of HTTP retries.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
        self.features = OnlineFeatures(self.settings)
        self.log = PredictionLog(self.settings.prediction_log_path, auto_checkpoint=False)
        self.models = LiveModels(
            self.settings,
            on_failure=lambda alias, _: RELOAD_FAILURES.labels(alias=alias).inc(),
            on_swap=lambda alias, version: SERVED_VERSION.labels(alias=alias).set(version),
        )
        if not self.models.refresh():
            log.error("not ready: %s; retrying in the background", self.models.last_error)
        self.models.start()
        self._stop = threading.Event()
        threading.Thread(
            target=self._checkpoint_loop, name="churn-log-checkpoint", daemon=True
        ).start()
        # Start-up objects (feast, mlflow, sklearn: ~1M) move out of the collector's reach,
        # so a full collection no longer walks them: this removed the 60-160 ms p99 stalls.
        gc.collect()
        gc.freeze()
        champion = self.models.get(CHAMPION)
        log.info(
            "serving %s", f"{champion.name} v{champion.version}" if champion else "nothing yet"
        )

    def __is_ready__(self) -> bool:
        """Ready when a champion is loaded and the online store answers."""
        return self.models.get(CHAMPION) is not None and self.features.is_reachable()

    def _checkpoint_loop(self) -> None:
        while not self._stop.wait(CHECKPOINT_SECONDS):
            try:
                self.log.checkpoint()
            except Exception:  # a busy database retries at the next tick
                log.exception("prediction log checkpoint failed")

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        """Stop background threads and close the log (records were committed already)."""
        self._stop.set()
        self.models.stop()
        self.log.close()
        self.features.close()

    @bentoml.api(route="/predict", input_spec=PredictRequest)
    def predict(self, customer_id: CustomerId) -> Prediction:
        """Churn prediction for one customer (404 when it has no online features)."""
        try:
            prediction = self._predict([customer_id])[0]
        except Unavailable as error:
            return self._unavailable(error)  # type: ignore[return-value]
        if prediction is None:
            payload = error_payload(404, f"{UNKNOWN_CUSTOMER}: {customer_id}", "unknown_customer")
            return Response(payload, 404, media_type="application/json")  # type: ignore[return-value]
        return prediction

    @bentoml.api(route="/predict/batch", input_spec=BatchRequest)
    def predict_batch(self, customer_ids: list[int]) -> list[BatchItem]:
        """Churn predictions for up to ``CHURN_BATCH_LIMIT`` customers in one call.

        One item per requested id, in request order: a prediction, or an
        ``unknown_customer`` item for an id without online features (200 either way).
        """
        try:
            predictions = self._predict(list(customer_ids))
        except Unavailable as error:
            return self._unavailable(error)  # type: ignore[return-value]
        return [
            BatchItem(p if p is not None else UnknownCustomer.of(c))
            for c, p in zip(customer_ids, predictions, strict=True)
        ]

    def _unavailable(self, error: Unavailable) -> Response:
        UNAVAILABLE.labels(cause=error.cause).inc()
        retry = self.settings.serve_retry_after_seconds
        payload = error_payload(503, str(error), retry_after_seconds=retry)
        return Response(payload, 503, {"Retry-After": str(retry)}, media_type="application/json")

    def _predict(self, customer_ids: list[int]) -> list[Prediction | None]:
        """Predictions in request order; ``None`` for a customer without online features.

        Only known customers are scored, logged and counted.
        """
        started = time.perf_counter()
        champion = self.models.get(CHAMPION)
        if champion is None:
            raise Unavailable("model", f"no model loaded yet: {self.models.last_error}")
        try:
            all_rows = self.features.read(customer_ids)
        except OnlineStoreUnavailable as error:
            raise Unavailable("online_store", str(error)) from error
        positions = [i for i, row in enumerate(all_rows) if row is not None]
        answers: list[Prediction | None] = [None] * len(customer_ids)
        if not positions:
            return answers
        ids = [customer_ids[i] for i in positions]
        known = cast(list[FeatureRow], [all_rows[i] for i in positions])
        groups = self._route(ids, champion)
        probabilities: list[float] = [0.0] * len(ids)
        decisions: list[int] = [0] * len(ids)
        by_index: list[LoadedModel] = [champion] * len(ids)
        for model, indices in groups:
            p, d = model.score_rows([known[i] for i in indices])
            for i, pi, di in zip(indices, p, d, strict=True):
                probabilities[i], decisions[i], by_index[i] = pi, di, model
        now = datetime.now(UTC)
        records = [
            PredictionRecord(now, c, by_index[i].version, by_index[i].alias, known[i],
                             probabilities[i], decisions[i])
            for i, c in enumerate(ids)
        ]  # fmt: skip
        self.log.append(records)
        self._shadow(ids, known, now)
        for i, c in enumerate(ids):
            answers[positions[i]] = Prediction(
                customer_id=c,
                churn=bool(decisions[i]),
                probability=probabilities[i],
                model_name=by_index[i].name,
                model_version=by_index[i].version,
                variant=by_index[i].alias,
                features=CustomerFeatures(**known[i]),  # type: ignore[arg-type]
            )
        elapsed = time.perf_counter() - started
        for model, indices in groups:
            REQUESTS.labels(variant=model.alias, version=str(model.version)).inc(len(indices))
            LATENCY.labels(variant=model.alias).observe(elapsed)
        return answers

    def _route(
        self, customer_ids: list[int], champion: LoadedModel
    ) -> list[tuple[LoadedModel, list[int]]]:
        """Group request positions by the model that answers them."""
        settings = self.settings
        challenger = self.models.get(CHALLENGER) if settings.ab_mode == "split" else None
        if challenger is None:
            return [(champion, list(range(len(customer_ids))))]
        chosen: dict[str, list[int]] = {CHAMPION: [], CHALLENGER: []}
        for i, c in enumerate(customer_ids):
            variant = choose_variant(c, "split", settings.ab_challenger_weight, settings.ab_salt)
            chosen[variant].append(i)
        models = {CHAMPION: champion, CHALLENGER: challenger}
        return [(models[v], idx) for v, idx in chosen.items() if idx]

    def _shadow(self, customer_ids: list[int], rows: list[FeatureRow], now: datetime) -> None:
        """Shadow mode: the challenger scores the same rows; logged apart, never returned."""
        challenger = self.models.get(CHALLENGER) if self.settings.ab_mode == "shadow" else None
        if challenger is None:
            return
        try:
            probabilities, decisions = challenger.score_rows(rows)
            records = [
                PredictionRecord(now, c, challenger.version, "shadow", rows[i],
                                 probabilities[i], decisions[i])
                for i, c in enumerate(customer_ids)
            ]  # fmt: skip
            self.log.append(records, shadow=True)
            SHADOW.labels(version=str(challenger.version)).inc(len(customer_ids))
        except Exception:  # the shadow must never change or fail the champion's answer
            log.exception("shadow scoring failed")


ChurnPredictor.add_asgi_middleware(RequestGuard, error_statuses=ERROR_STATUSES)
