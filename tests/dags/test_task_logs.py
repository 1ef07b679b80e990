"""What a task log shows: each step's own INFO lines and decisions, MLflow's lines at their
own level, and no wall of one repeated third-party warning (core/logs.py)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from dataclasses import replace

import pytest

from cli.airflow_runner import use_project_airflow
from core.logs import _writes_to_mlflow_stream, configure_logging, python_warnings
from core.settings import Settings
from models.churn.spec import SPEC as CHURN


def test_the_airflow_environment_logs_at_info_and_mlflow_through_logging(monkeypatch):
    monkeypatch.delenv("CHURN_AIRFLOW_LOG_LEVEL", raising=False)
    env = Settings().airflow_env()
    assert env["AIRFLOW__LOGGING__LOGGING_LEVEL"] == "INFO"
    # MLflow's own handler writes to stderr, which Airflow tags ERROR in a task log.
    assert env["MLFLOW_CONFIGURE_LOGGING"] == "false"
    assert env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
    monkeypatch.setenv("CHURN_AIRFLOW_LOG_LEVEL", "WARNING")  # what `churn demo` runs with
    assert Settings().airflow_env()["AIRFLOW__LOGGING__LOGGING_LEVEL"] == "WARNING"


def airflow_deprecation_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if w.category.__name__ == "DeprecatedImportWarning"]


SKOPS_SCAN = """
import warnings

import airflow.utils  # registers Airflow's deprecated modules, as in a task
import scipy.special
from skops.io._utils import whichmodule

with warnings.catch_warnings():  # Airflow imports a DAG file so: its filters do not last
    from core.logs import filter_repeated_warnings

    filter_repeated_warnings()
with warnings.catch_warnings(record=True) as caught:
    # A name no module holds: the scan passes every module, as each ufunc's scan does in a
    # task (Airflow's modules are loaded before scipy's there).
    whichmodule(scipy.special.psi, "no_module_holds_this_name")
print(sum(w.category.__name__ == "DeprecatedImportWarning" for w in caught))
"""


def test_skops_lookups_in_airflows_deprecated_modules_are_filtered_at_their_source(state):
    """The repeated warning itself: skops looks a scipy ufunc up in every loaded module, and
    each of Airflow's deprecated compatibility modules answers with a warning. The Airflow
    environment's PYTHONWARNINGS filters it for the whole process."""
    env = {**os.environ, **use_project_airflow(state)}

    def warned(env: dict[str, str]) -> int:
        command = [sys.executable, "-c", SKOPS_SCAN]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return int(done.stdout.split()[-1])

    assert env["PYTHONWARNINGS"] == python_warnings()
    assert warned({k: v for k, v in env.items() if k != "PYTHONWARNINGS"}) >= 5
    assert warned(env) == 0


@pytest.mark.slow
def test_a_training_run_logs_its_steps_and_the_gates_decision_at_info(world, caplog):
    """The training DAG's steps, in this process as in a task: each step's INFO line, the
    gate's decision, MLflow's INFO as INFO records (not stderr), the skops warning at most
    once. A model of its own in the registry, so the shared world's champion is untouched."""
    from models import promotion

    settings = world.settings
    use_project_airflow(settings)
    import airflow.utils  # noqa: F401

    spec = replace(CHURN, registered_model="task_logs_model", experiment="task_logs")
    configure_logging("INFO")
    # Airflow configures logging when first imported (above), replacing the root logger's
    # handlers: capture there again, as Airflow's own task-log handler does in a task.
    logging.getLogger().addHandler(caplog.handler)
    caplog.set_level(logging.INFO)
    with warnings.catch_warnings(record=True) as caught:
        done = promotion.run_training_pipeline(spec, settings, run_name="task-logs")
    lines = {(r.name, r.levelname, r.getMessage()) for r in caplog.records}

    def logged(logger: str, start: str) -> bool:
        return any(n == logger and lvl == "INFO" and m.startswith(start) for n, lvl, m in lines)

    assert logged("models.training", "churn training set: ")
    assert logged("models.training", f"trained churn: MLflow run {done.trained.run_id}")
    assert logged("models.registry", "registered task_logs_model version 1 (alias challenger)")
    assert logged("models.promotion", "gate task_logs_model version 1: promoted. first model:")
    # MLflow's own INFO lines are log records at INFO, through the root logger's handlers.
    assert any(n.startswith("mlflow.") and lvl == "INFO" for n, lvl, _ in lines)
    mlflow_logger = logging.getLogger("mlflow")
    assert mlflow_logger.propagate
    assert not any(_writes_to_mlflow_stream(h) for h in mlflow_logger.handlers)
    assert len(airflow_deprecation_warnings(caught)) <= 1
