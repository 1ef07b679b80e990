"""The links to MLflow's UI that `churn mlflow-ui` prints (models/tracking.py)."""

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from models.churn.spec import SPEC as CHURN
from models.next_spend.spec import SPEC as NEXT_SPEND
from models.tracking import experiment_links


@pytest.fixture
def own_tracking_uri():
    """This test points MLflow at its own store; the next tests find it where it was."""
    tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)


def test_the_mlflow_ui_links_open_each_experiment_on_its_runs(state, own_tracking_uri):
    """MLflow 3.17's UI opens an experiment in the GenAI mode of a new browser (its Overview
    of traces) unless the link names the model-training mode: `churn mlflow-ui` prints these."""
    links = dict(experiment_links(state, [CHURN, NEXT_SPEND], "http://127.0.0.1:5000/"))
    assert links["experiments"] == (
        "http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"
    )
    client = MlflowClient()
    for spec in (CHURN, NEXT_SPEND):
        for name, what in (
            (spec.experiment, "training"),
            (spec.monitoring_experiment, "monitoring"),
        ):
            experiment = client.get_experiment_by_name(name)
            assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
            assert links[f"{name} ({what} runs)"] == (
                f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs"
                "?workflowType=machine_learning"
            )
