"""
### <model>_training_pipeline (one DAG per model spec)

**training set** (the spec's labels joined point-in-time to its Feast feature service,
checked by its Great Expectations suite) -> **train** (the spec's scikit-learn estimator,
logged to MLflow with metrics, signature, dataset input and lineage tags) -> **register**
(ONNX copy verified, alias `challenger`) -> **gate** (alias `champion` moves only if the
new version beats the champion on the spec's gate metric, on the same holdout; the
decision and reason are written on the version) -> **announce champion** (when the gate
promoted the version: updates the asset `churn://registry/<model>/champion`, which runs
`<model>_deploy`; skipped otherwise).

Triggered by the model's `<model>_monitoring` DAG when its retraining policy accepts a
request (drift, performance drift or the cadence; the reason arrives in the run's `conf`,
is logged by `train` and tagged on the MLflow run as `trigger.*`), or by hand from the UI.
The DAGs are made from `models/<name>/spec.py` by the factory in this file.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from dags.assets import champion_changed
from models.catalog import load_specs


def make_training_dag(dag_id: str, model: str, description: str, tags: tuple[str, ...]):
    """The training pipeline DAG of one model spec."""

    @dag(
        dag_id=dag_id,
        description=description,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        doc_md=__doc__.replace("<model>", model),
        tags=[model, *tags, "training", "mlflow", "feast"],
        default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(seconds=30)},
    )
    def training_pipeline():
        @task
        def build_training_set(run_id: str | None = None) -> dict:
            from airflow.sdk.exceptions import AirflowFailException

            from core.settings import get_settings
            from core.steps import to_xcom
            from expectations.validation import BatchRejected
            from models.catalog import get_spec
            from models.training import TrainingDataNotReady, build_training_set

            try:
                built = build_training_set(get_spec(model), get_settings(), run_name=_safe(run_id))
            except (TrainingDataNotReady, BatchRejected) as error:
                # The same data would fail the same way: fail now instead of after a retry.
                raise AirflowFailException(str(error)) from error
            return to_xcom(built)

        @task
        def train(training_set: dict, run_id: str | None = None, dag_run=None) -> dict:
            import logging

            from core.settings import get_settings
            from core.steps import TrainingSet, from_xcom, to_xcom
            from models.catalog import get_spec
            from models.tuning import train_model

            # Why this run: the monitoring DAG's retraining policy puts it in the conf.
            conf = dict(getattr(dag_run, "conf", None) or {})
            reason = str(conf.get("reason", "manual run"))
            logging.getLogger(__name__).info("training %s because: %s", model, reason)
            built = from_xcom(TrainingSet, training_set)
            trained = train_model(  # with CHURN_TUNE_TRIALS > 0: the best of a search
                get_spec(model),
                built,
                get_settings(),
                dag_run_id=run_id or "manual",
                trigger={
                    "reason": reason,
                    "kind": str(conf.get("trigger", "manual")),
                    "requested_at": str(conf.get("requested_at", "")),
                    **{k: str(conf[k]) for k in ("drift_report", "alert") if conf.get(k)},
                },
            )
            return to_xcom(trained)

        @task
        def register(trained: dict) -> dict:
            from airflow.sdk.exceptions import AirflowFailException

            from core.settings import get_settings
            from core.steps import TrainedModel, from_xcom, to_xcom
            from models.catalog import get_spec
            from models.onnx_model import OnnxVerificationError
            from models.registry import register_model

            fitted = from_xcom(TrainedModel, trained)
            try:
                return to_xcom(register_model(get_spec(model), fitted, get_settings()))
            except OnnxVerificationError as error:  # the same model fails the same way again
                raise AirflowFailException(str(error)) from error

        @task
        def gate(registered: dict, training_set: dict) -> dict:
            from core.settings import get_settings
            from core.steps import RegisteredVersion, TrainingSet, from_xcom, to_xcom
            from models.catalog import get_spec
            from models.promotion import gate

            version = from_xcom(RegisteredVersion, registered).version
            holdout = from_xcom(TrainingSet, training_set).holdout_path
            return to_xcom(gate(get_spec(model), version, holdout, get_settings()))

        @task(outlets=[champion_changed(model)])
        def announce_champion(decision: dict) -> int:
            """Success updates the champion asset (its deploy DAG runs); a skip does not."""
            from airflow.sdk.exceptions import AirflowSkipException

            if not decision["promoted"]:
                raise AirflowSkipException(f"champion unchanged: {decision['reason']}")
            return int(decision["version"])

        training_set = build_training_set()
        announce_champion(gate(register(train(training_set)), training_set))

    return training_pipeline()


def _safe(run_id: str | None) -> str:
    """A folder name from a DAG run id."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in (run_id or "manual"))


for _spec in load_specs():
    globals()[_spec.training_dag_id] = make_training_dag(
        _spec.training_dag_id, _spec.name, _spec.description, _spec.tags
    )
