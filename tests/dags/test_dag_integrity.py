"""DAG integrity: every DAG imports, and carries tags, retries, docs and an owner.

The DAG ids are derived from the model specs: one training, monitoring, deploy and batch
scoring DAG per spec (made by the factories in dags/), plus the shared feature pipeline.
"""

import itertools

import pytest
from platform_support import tools_imported_by

from cli.airflow_runner import use_project_airflow
from core.settings import get_settings
from models.catalog import load_specs

SPECS = {spec.name: spec for spec in load_specs()}
TRAINING_TASKS = ["build_training_set", "train", "register", "gate", "announce_champion"]
MONITORING_TASKS = [
    "drift_report",
    "live_quality",
    "retrain_decision",
    "retrain_accepted",
    "retrain",
]
# Tasks off the main chain, and the task they follow.
BRANCHES = {"announce_champion": "live_quality"}
# A failed deploy has already rolled back: a retry would only deploy the restored version.
NOT_RETRIED = {"validate", "deploy"}

EXPECTED = {"feature_pipeline": ["validate", "ingest", "build_features", "materialize"]}
MODEL_OF = {"feature_pipeline": None}
for _spec in SPECS.values():
    EXPECTED[_spec.training_dag_id] = TRAINING_TASKS
    EXPECTED[_spec.monitoring_dag_id] = MONITORING_TASKS
    EXPECTED[_spec.deploy_dag_id] = ["deploy"]
    EXPECTED[_spec.batch_scoring_dag_id] = ["score"]
    for _dag_id in (
        _spec.training_dag_id,
        _spec.monitoring_dag_id,
        _spec.deploy_dag_id,
        _spec.batch_scoring_dag_id,
    ):
        MODEL_OF[_dag_id] = _spec


@pytest.fixture(scope="module")
def dagbag():
    settings = get_settings()
    use_project_airflow(settings)
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=settings.airflow_env()["AIRFLOW__CORE__DAGS_FOLDER"])


def test_every_spec_has_its_dags_and_churn_is_one_of_them():
    assert "churn" in SPECS
    assert {"feature_pipeline", "churn_training_pipeline", "churn_monitoring"} <= set(EXPECTED)
    assert len(EXPECTED) == 1 + 4 * len(SPECS)


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == set(EXPECTED)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dag_shape_and_hygiene(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    spec = MODEL_OF[dag_id]
    assert dag.tags
    assert ("churn" if spec is None else spec.name) in dag.tags
    if spec is not None:
        assert set(spec.tags) <= set(dag.tags)
    assert dag.doc_md and dag_id in dag.doc_md
    assert "<model>" not in dag.doc_md
    assert dag.max_active_runs == 1 and not dag.catchup
    branches = {
        t: up for t, up in BRANCHES.items() if t in dag.task_ids and t not in EXPECTED[dag_id]
    }
    assert set(dag.task_ids) == set(EXPECTED[dag_id]) | set(branches)
    for t in dag.tasks:
        assert t.owner == "ml-platform"
        if t.task_id in NOT_RETRIED:
            assert t.retries == 0, f"{dag_id}.{t.task_id} must fail at once"
        else:
            assert t.retries >= 1, f"{dag_id}.{t.task_id} has no retries"
    chain = EXPECTED[dag_id]
    for upstream, downstream in itertools.pairwise(chain):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    for task, upstream in branches.items():
        assert task in dag.get_task(upstream).downstream_task_ids


@pytest.mark.parametrize("name", sorted(SPECS))
def test_monitoring_retrains_its_own_model(dagbag, name):
    spec = SPECS[name]
    retrain = dagbag.dags[spec.monitoring_dag_id].get_task("retrain")
    assert retrain.trigger_dag_id == spec.training_dag_id


@pytest.mark.parametrize("name", sorted(SPECS))
def test_materialized_features_schedule_every_monitoring_dag(dagbag, name):
    """The asset feature_pipeline updates is consumed: it schedules monitoring, and daily."""
    from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable

    outlets = dagbag.dags["feature_pipeline"].get_task("materialize").outlets
    (asset,) = [o for o in outlets if isinstance(o, Asset)]
    timetable = dagbag.dags[SPECS[name].monitoring_dag_id].timetable
    assert isinstance(timetable, AssetOrTimeSchedule)
    assert asset in timetable.asset_condition.objects
    assert isinstance(timetable.timetable, CronTriggerTimetable)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_champion_move_schedules_the_models_deploy_dag(dagbag, name):
    """The gate and the monitoring run (live verdict, rollback) update the model's champion
    asset, and that asset alone schedules the model's deploy DAG."""
    from airflow.sdk import Asset

    spec = SPECS[name]
    emitted = set()
    for dag_id in (spec.training_dag_id, spec.monitoring_dag_id):
        outlets = dagbag.dags[dag_id].get_task("announce_champion").outlets
        emitted |= {o for o in outlets if isinstance(o, Asset)}
    assert len(emitted) == 1
    (asset,) = emitted
    assert spec.name in asset.uri
    deploy = dagbag.dags[spec.deploy_dag_id]
    assert set(deploy.timetable.asset_condition.objects) == {asset}
    others = [s for s in SPECS.values() if s.name != name]
    for other in others:  # one model's promotion never deploys another
        objects = dagbag.dags[other.deploy_dag_id].timetable.asset_condition.objects
        assert asset not in set(objects)


def test_validate_is_not_retried(dagbag):
    assert dagbag.dags["feature_pipeline"].get_task("validate").retries == 0


@pytest.mark.parametrize(
    "dag_file",
    [
        "feature_pipeline_dag.py",
        "training_pipeline_dag.py",
        "monitoring_dag.py",
        "deploy_dag.py",
        "batch_scoring_dag.py",
    ],
)
def test_dag_files_do_no_work_at_import(dag_file):
    """Parsing a DAG file must not touch the tools (Airflow parses them constantly)."""
    tools = ("feast", "mlflow", "great_expectations", "evidently", "bentoml", "sklearn")
    assert tools_imported_by(f"import runpy; runpy.run_path('dags/{dag_file}')", tools) == []
