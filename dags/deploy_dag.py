"""
### <model>_deploy (one DAG per model spec)

Runs whenever `<model>`'s champion moves (the Airflow asset
`churn://registry/<model>/champion`, updated by the training gate, the live A/B verdict
and the automatic rollback), or by hand from the UI.

**deploy**: in a cluster (a kubeconfig in `CHURN_DEPLOY_KUBECONFIG`, or the task running in
a pod) one `helm upgrade` of the release with the new version in the serving pods'
annotation, then the rollout is awaited; locally, the running server must pick the new
champion up by itself. Then, through the serving Service, `/readyz` and one
`/models/<model>/predict` smoke-test it. The deployed version, time and time to
production are written on the MLflow model version. A failed rollout or smoke test of the
new version rolls the release back and moves `champion` back to `previous_champion`, and
fails the run.

**Needs serving running**: `make serve` beside `make airflow` (same `CHURN_STATE_DIR`, or
`CHURN_DEPLOY_SERVING_URL` pointing at it), or the chart's serving Deployment in a
cluster. With nothing serving (connection refused for `CHURN_DEPLOY_UNREACHABLE_SECONDS`,
or no serving Deployment / no ready pod) the new version is not tried: the task ends
**skipped** with "nothing serving: ...", and `champion` stays where the promotion put it.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from dags.assets import champion_changed
from models.catalog import load_specs

# Under the chart's KubernetesExecutor the deploy task runs from this pod template (the
# chart mounts it into the scheduler): the only task pod with an API token, as the
# account whose Role may upgrade and roll back the release. Other executors ignore it.
DEPLOYER_POD_TEMPLATE = "/etc/churn/airflow-pod-template/deployer_pod_template.yaml"


def make_deploy_dag(dag_id: str, model: str, description: str, tags: tuple[str, ...]):
    """The deploy DAG of one model spec."""

    @dag(
        dag_id=dag_id,
        description=f"Deploy the champion of {description}",
        schedule=[champion_changed(model)],
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,  # one rollout of a release at a time
        doc_md=__doc__.replace("<model>", model),
        tags=[model, *tags, "deploy", "kubernetes", "bentoml"],
        # No retry: a failed deploy has already moved the release and the alias back.
        default_args={"owner": "ml-platform", "retries": 0},
    )
    def deploy_pipeline():
        @task(executor_config={"pod_template_file": DEPLOYER_POD_TEMPLATE})
        def deploy() -> dict:
            from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

            from core.settings import get_settings
            from core.steps import DeployOutcome, to_xcom
            from models.catalog import get_spec
            from serving.deploy import DeployFailed, deploy_champion

            try:
                result = deploy_champion(get_spec(model), get_settings())
            except DeployFailed as failed:
                raise AirflowFailException(failed.result.reason) from failed
            if result.outcome is not DeployOutcome.DEPLOYED:
                # Nothing serving (or no champion): nothing tried, nothing moved back.
                raise AirflowSkipException(result.reason)
            return to_xcom(result)

        deploy()

    return deploy_pipeline()


for _spec in load_specs():
    globals()[_spec.deploy_dag_id] = make_deploy_dag(
        _spec.deploy_dag_id, _spec.name, _spec.description, _spec.tags
    )
