"""
### training_pipeline

**training set** (labels joined point-in-time to `customer_features_v1` by Feast) ->
**train** (scikit-learn, logged to MLflow with metrics, signature, dataset input and
lineage tags) -> **register** (`customer_churn_model`, alias `challenger`) -> **gate**
(alias `champion` moves only if the new version beats the champion's F1 on the same
holdout; the decision and reason are written on the version).

Triggered by `monitoring` when drift is significant, or by hand from the UI.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task


@dag(
    dag_id="training_pipeline",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["churn", "training", "mlflow", "feast"],
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(seconds=30)},
)
def training_pipeline():
    @task
    def build_training_set(run_id: str | None = None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from core.settings import get_settings
        from core.steps import to_xcom
        from expectations.validation import BatchRejected
        from models.training import TrainingDataNotReady, build_training_set

        try:
            return to_xcom(build_training_set(get_settings(), run_name=_safe(run_id)))
        except (TrainingDataNotReady, BatchRejected) as error:
            # The same data would fail the same way: fail now instead of after a retry.
            raise AirflowFailException(str(error)) from error

    @task
    def train(training_set: dict, run_id: str | None = None) -> dict:
        from core.settings import get_settings
        from core.steps import TrainingSet, from_xcom, to_xcom
        from models.training import train_and_log

        built = from_xcom(TrainingSet, training_set)
        return to_xcom(train_and_log(built, get_settings(), dag_run_id=run_id or "manual"))

    @task
    def register(trained: dict) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from core.settings import get_settings
        from core.steps import TrainedModel, from_xcom, to_xcom
        from models.onnx_model import OnnxVerificationError
        from models.registry import register_model

        try:
            return to_xcom(register_model(from_xcom(TrainedModel, trained), get_settings()))
        except OnnxVerificationError as error:  # the same model fails the same way again
            raise AirflowFailException(str(error)) from error

    @task
    def gate(registered: dict, training_set: dict) -> dict:
        from core.settings import get_settings
        from core.steps import RegisteredVersion, TrainingSet, from_xcom, to_xcom
        from models.promotion import gate

        version = from_xcom(RegisteredVersion, registered).version
        holdout = from_xcom(TrainingSet, training_set).holdout_path
        return to_xcom(gate(version, holdout, get_settings()))

    training_set = build_training_set()
    gate(register(train(training_set)), training_set)


def _safe(run_id: str | None) -> str:
    """A folder name from a DAG run id."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in (run_id or "manual"))


training_pipeline()
