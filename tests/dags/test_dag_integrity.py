"""DAG integrity: every DAG imports, and carries tags, retries, docs and an owner."""

import itertools

import pytest

from cli.airflow_runner import use_project_airflow
from core.settings import get_settings

EXPECTED = {
    "feature_pipeline": ["validate", "ingest", "build_features", "materialize"],
    "training_pipeline": ["build_training_set", "train", "register", "gate"],
    "monitoring": ["drift_report", "drift_is_significant", "retrain"],
}


@pytest.fixture(scope="module")
def dagbag():
    settings = get_settings()
    use_project_airflow(settings)
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=settings.airflow_env()["AIRFLOW__CORE__DAGS_FOLDER"])


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == set(EXPECTED)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dag_shape_and_hygiene(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.tags and "churn" in dag.tags
    assert dag.doc_md and dag_id in dag.doc_md
    assert dag.max_active_runs == 1 and not dag.catchup
    assert set(dag.task_ids) == set(EXPECTED[dag_id])
    for t in dag.tasks:
        assert t.owner == "ml-platform"
        if t.task_id != "validate":  # a refused batch must fail at once, not retry
            assert t.retries >= 1, f"{dag_id}.{t.task_id} has no retries"
    chain = EXPECTED[dag_id]
    for upstream, downstream in itertools.pairwise(chain):
        assert downstream in dag.get_task(upstream).downstream_task_ids


def test_validate_is_not_retried(dagbag):
    assert dagbag.dags["feature_pipeline"].get_task("validate").retries == 0


def test_dag_files_do_no_work_at_import():
    """Parsing a DAG file must not touch the tools (Airflow parses them constantly)."""
    import subprocess
    import sys

    code = (
        "import sys, runpy\n"
        "runpy.run_path('dags/feature_pipeline_dag.py')\n"
        "tools = ('feast', 'mlflow', 'great_expectations', 'evidently', 'bentoml')\n"
        "heavy = [m for m in tools if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"
