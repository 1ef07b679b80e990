"""Loading the served model from the MLflow registry and scoring feature rows."""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
import pandas as pd

from feature_repo.settings import Settings
from models.registry import CHAMPION
from models.tracking import configure_mlflow
from models.training import model_input


@dataclass(frozen=True)
class LoadedModel:
    name: str
    alias: str
    version: int
    model: object

    def score(self, features: pd.DataFrame) -> tuple[list[float], list[int]]:
        """Churn probabilities and decisions (at the model's tuned threshold)."""
        inputs = model_input(features)
        probability = self.model.predict_proba(inputs)[:, 1]
        prediction = self.model.predict(inputs)
        return [float(p) for p in probability], [int(p) for p in prediction]


def load_model(settings: Settings, alias: str = CHAMPION) -> LoadedModel:
    """Resolve ``alias`` to a version and load that version (so the version is exact)."""
    client = configure_mlflow(settings)
    version = client.get_model_version_by_alias(settings.model_name, alias)
    model = mlflow.sklearn.load_model(f"models:/{settings.model_name}/{version.version}")
    return LoadedModel(settings.model_name, alias, int(version.version), model)
