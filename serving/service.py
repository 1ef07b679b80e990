"""The churn prediction API (BentoML).

``/predict`` scores one customer, ``/predict/batch`` many. Features come from Feast's
online store; the model is the registry's ``champion``. Every prediction is logged
durably before it is returned.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

import bentoml
from bentoml.exceptions import NotFound
from pydantic import BaseModel, Field

from feature_repo.settings import get_settings
from feature_repo.store import get_feature_store, get_online_features
from feature_repo.transforms import FEATURE_COLUMNS
from serving.model import load_model
from serving.prediction_log import PredictionLog, PredictionRecord

log = logging.getLogger(__name__)
MAX_CUSTOMER_ID = 2**53  # JSON numbers above this lose precision in many clients
BATCH_LIMIT = get_settings().batch_limit  # reads the environment only

CustomerId = Annotated[int, Field(ge=1, le=MAX_CUSTOMER_ID, strict=True)]


class CustomerFeatures(BaseModel):
    total_orders_30d: float
    total_spend_30d: float
    avg_order_value: float
    days_since_last_order: float
    customer_segment: str
    lifetime_value: float


class Prediction(BaseModel):
    customer_id: int
    churn: bool
    probability: float
    model_name: str
    model_version: int
    variant: str
    features: CustomerFeatures


@bentoml.service(name="churn_predictor", traffic={"timeout": 10})
class ChurnPredictor:
    """Predicts whether a customer will place no order in the next 30 days."""

    def __init__(self) -> None:
        self.settings = get_settings()
        self.store = get_feature_store(self.settings)
        self.model = load_model(self.settings)
        self.log = PredictionLog(self.settings.prediction_log_path)
        log.info("serving %s v%s", self.model.name, self.model.version)

    def _predict(self, customer_ids: list[int]) -> list[Prediction]:
        rows = get_online_features(self.store, customer_ids, self.settings.feature_service)
        unknown = rows.loc[rows[list(FEATURE_COLUMNS)].isna().all(axis=1), "customer_id"]
        if len(unknown):
            ids = ", ".join(str(int(c)) for c in unknown.unique()[:20])
            raise NotFound(f"unknown customer_id (no online features): {ids}")
        probabilities, decisions = self.model.score(rows)
        now = datetime.now(UTC)
        records = []
        predictions = []
        for i, customer_id in enumerate(customer_ids):
            features = {c: _plain(rows.at[i, c]) for c in FEATURE_COLUMNS}
            record = PredictionRecord(
                now,
                customer_id,
                self.model.version,
                self.model.alias,
                features,
                probabilities[i],
                decisions[i],
            )
            records.append(record)
            predictions.append(
                Prediction(
                    customer_id=customer_id,
                    churn=bool(decisions[i]),
                    probability=probabilities[i],
                    model_name=self.model.name,
                    model_version=self.model.version,
                    variant=self.model.alias,
                    features=CustomerFeatures(**features),
                )
            )
        self.log.append(records)
        return predictions

    @bentoml.api(route="/predict")
    def predict(self, customer_id: CustomerId) -> Prediction:
        """Churn prediction for one customer."""
        return self._predict([customer_id])[0]

    @bentoml.api(route="/predict/batch")
    def predict_batch(
        self,
        customer_ids: Annotated[list[CustomerId], Field(min_length=1, max_length=BATCH_LIMIT)],
    ) -> list[Prediction]:
        """Churn predictions for up to ``CHURN_BATCH_LIMIT`` customers in one call."""
        return self._predict(list(customer_ids))


def _plain(value: object) -> object:
    """numpy scalars -> Python scalars for pydantic and SQLite."""
    return value.item() if hasattr(value, "item") else value
