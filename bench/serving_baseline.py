"""The naive baseline of the serving benchmark, built like the textbook example.

A FeatureStore is built for every request, the online features come back as a pandas
DataFrame, and the one-row DataFrame goes into the MLflow-loaded scikit-learn model
(``predict_proba`` and ``predict``). Same registry model, same Redis features, same
request and response as ``serving.service``; no logging, no A/B, no fault handling.
Only the benchmark starts it (``bentoml serve bench.serving_baseline:NaiveChurnPredictor``).
"""

from __future__ import annotations

import bentoml
import mlflow
from feast import FeatureStore

from core.schema import model_input
from core.settings import FEATURE_REPO_DIR, get_settings
from data.store import get_feature_store, write_feature_store_yaml
from models.registry import CHAMPION
from models.tracking import configure_mlflow


def predict_with_pandas(store, model, settings, customer_id: int, variant: str) -> dict:
    """The textbook request: online features as a DataFrame, one row into the pipeline."""
    frame = store.get_online_features(
        features=store.get_feature_service(settings.feature_service),
        entity_rows=[{"customer_id": customer_id}],
    ).to_df()
    inputs = model_input(frame)
    return {
        "customer_id": customer_id,
        "churn": bool(model.predict(inputs)[0]),
        "probability": float(model.predict_proba(inputs)[0, 1]),
        "variant": variant,
    }


@bentoml.service(name="churn_baseline", traffic={"timeout": 10})
class NaiveChurnPredictor:
    """Textbook BentoML + Feast + pandas churn service."""

    def __init__(self) -> None:
        self.settings = get_settings()
        configure_mlflow(self.settings)
        self.model = mlflow.sklearn.load_model(f"models:/{self.settings.model_name}@{CHAMPION}")
        write_feature_store_yaml(self.settings)  # the textbook service reads the file

    @bentoml.api(route="/predict")
    def predict(self, customer_id: int) -> dict:
        """Churn prediction for one customer."""
        store = FeatureStore(
            repo_path=str(FEATURE_REPO_DIR), fs_yaml_file=self.settings.feature_store_yaml
        )
        return predict_with_pandas(store, self.model, self.settings, customer_id, "baseline")


@bentoml.service(name="churn_baseline_cached", traffic={"timeout": 10})
class CachedStoreChurnPredictor:
    """The same textbook service with the one obvious fix: the FeatureStore built once.

    Still pandas end to end (``to_df()``, one-row DataFrame into the sklearn pipeline):
    the stronger of the two baselines, reported next to the textbook one.
    """

    def __init__(self) -> None:
        self.settings = get_settings()
        configure_mlflow(self.settings)
        self.model = mlflow.sklearn.load_model(f"models:/{self.settings.model_name}@{CHAMPION}")
        self.store = get_feature_store(self.settings)

    @bentoml.api(route="/predict")
    def predict(self, customer_id: int) -> dict:
        """Churn prediction for one customer."""
        return predict_with_pandas(
            self.store, self.model, self.settings, customer_id, "baseline_cached"
        )
