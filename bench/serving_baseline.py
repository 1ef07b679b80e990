"""The naive baseline of the serving benchmark, built like the textbook example.

A FeatureStore is built for every request, the online features come back as a pandas
DataFrame, and the one-row DataFrame goes into the MLflow-loaded scikit-learn model
(``predict_proba`` and ``predict``). Same registry model, same Redis features, same
request and response as ``serving.service``; no logging, no A/B, no fault handling.
Only the benchmark starts it (``bentoml serve bench.serving_baseline:NaiveChurnPredictor``).
Which model it serves is the benchmark's ``BENCH_MODEL`` (a spec name, default churn),
read when the service starts; its ``/predict`` answers like the model's own route.
"""

from __future__ import annotations

import os

import bentoml
import mlflow
from feast import FeatureStore

from core.schema import model_input
from core.settings import FEATURE_REPO_DIR, get_settings
from core.spec import ModelSpec
from data.store import get_feature_store, write_feature_store_yaml
from models.catalog import get_spec
from models.registry import CHAMPION
from models.tracking import configure_mlflow


def bench_spec() -> ModelSpec:
    """The model this baseline serves (``BENCH_MODEL``, default churn)."""
    return get_spec(os.environ.get("BENCH_MODEL", "churn"))


def load_champion(spec: ModelSpec):
    """The champion's MLflow scikit-learn model, as the textbook loads it."""
    return mlflow.sklearn.load_model(f"models:/{spec.registered_model}@{CHAMPION}")


def predict_with_pandas(store, model, spec: ModelSpec, customer_id: int, variant: str) -> dict:
    """The textbook request: online features as a DataFrame, one row into the pipeline."""
    frame = store.get_online_features(
        features=store.get_feature_service(spec.feature_service),
        entity_rows=[{"customer_id": customer_id}],
    ).to_df()
    inputs = model_input(frame, spec.features)
    answer: dict = {"customer_id": customer_id, "variant": variant}
    if spec.task == "classification":
        answer[spec.output] = bool(model.predict(inputs)[0])
        answer["probability"] = float(model.predict_proba(inputs)[0, 1])
    else:
        answer[spec.output] = float(model.predict(inputs)[0])
    return answer


@bentoml.service(name="churn_baseline", traffic={"timeout": 10})
class NaiveChurnPredictor:
    """Textbook BentoML + Feast + pandas churn service."""

    def __init__(self) -> None:
        self.settings = get_settings()
        self.spec = bench_spec()
        configure_mlflow(self.settings)
        self.model = load_champion(self.spec)
        write_feature_store_yaml(self.settings)  # the textbook service reads the file

    @bentoml.api(route="/predict")
    def predict(self, customer_id: int) -> dict:
        """The model's prediction for one customer."""
        store = FeatureStore(
            repo_path=str(FEATURE_REPO_DIR), fs_yaml_file=self.settings.storage.feature_store_yaml
        )
        return predict_with_pandas(store, self.model, self.spec, customer_id, "baseline")


@bentoml.service(name="churn_baseline_cached", traffic={"timeout": 10})
class CachedStoreChurnPredictor:
    """The same textbook service with the one obvious fix: the FeatureStore built once.

    Still pandas end to end (``to_df()``, one-row DataFrame into the sklearn pipeline):
    the stronger of the two baselines, reported next to the textbook one.
    """

    def __init__(self) -> None:
        self.settings = get_settings()
        self.spec = bench_spec()
        configure_mlflow(self.settings)
        self.model = load_champion(self.spec)
        self.store = get_feature_store(self.settings)

    @bentoml.api(route="/predict")
    def predict(self, customer_id: int) -> dict:
        """The model's prediction for one customer."""
        return predict_with_pandas(
            self.store, self.model, self.spec, customer_id, "baseline_cached"
        )
