"""The training DAG, run for real, on data that cannot make a training set."""

import pytest

from cli.airflow_runner import migrate_airflow_db, run_dag
from models.churn.spec import SPEC as CHURN

pytestmark = pytest.mark.slow


def test_training_without_labels_fails_at_once_with_the_reason(state, capfd):
    migrate_airflow_db(state)
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    result = run_dag(CHURN.training_dag_id, state)

    assert result.state == "failed"
    assert result.task_states["build_training_set"] == "failed"
    assert {result.task_states[t] for t in ("train", "register", "gate")} == {"upstream_failed"}
    with create_session() as session:
        tries = session.scalar(
            select(TaskInstance.try_number).where(
                TaskInstance.dag_id == CHURN.training_dag_id,
                TaskInstance.run_id == result.run_id,
                TaskInstance.task_id == "build_training_set",
            )
        )
    assert tries == 1, "a deterministic data error must not wait for a retry"
    output = "".join(capfd.readouterr())
    assert "AirflowFailException: no churn labels yet" in output
