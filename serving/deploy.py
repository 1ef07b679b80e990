"""The deploy step: roll the champion out to serving, smoke-test it, or move it back.

Run by each model's ``<model>_deploy`` DAG after a promotion (and by ``churn deploy``):

- **kubernetes** (a kubeconfig in the settings, or a task running in a pod): one
  ``helm upgrade`` of the release with the new version in the serving pods' annotation
  (:mod:`serving.kubernetes_rollout`), then the rollout is awaited.
- **local** (no cluster): nothing to roll; serving follows the registry aliases on its own.

Then, on either target, through the serving Service: the running server must report the
new champion (its ``churn_model_version`` gauge), ``/readyz`` must answer 200 and one
``/models/<name>/predict`` must answer with a valid prediction for one of the model's own
entities (:func:`smoke_entity`: from its own newest feature rows, online, with its spec's
key). On success the deployed version, time and "time to production" (from the
promotion's ``champion.since`` tag) are written on the MLflow model version.

A deploy judges the new version only on a server that was there to try it
(:class:`~core.steps.DeployOutcome`):

- **failed**: a server answered and served the new version but failed the smoke test, or
  answered all along without ever serving it (it could not load it), or the cluster's
  rollout of it failed. The release is rolled back (cluster), ``champion`` moves back to
  ``previous_champion``, the reason is written on the version; :class:`DeployFailed`.
- **nothing serving**: nothing answered at the serving URL within
  ``CHURN_DEPLOY_UNREACHABLE_SECONDS`` (connection refused: no ``make serve`` running), or
  in the cluster the serving Deployment is missing or has no ready pod. Nothing was tried,
  so nothing is rolled back: ``champion`` stays, the result says so (the DAG's task ends
  skipped). Serving loads the champion when it starts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from core.clock import wall_now
from core.settings import Settings
from core.spec import EntityId, ModelSpec
from core.steps import DeployOutcome, DeployResult
from data.entities import listing_of, newest_entities
from data.store import get_feature_store, get_online_features
from models.registry import (
    CHAMPION,
    CHAMPION_SINCE,
    alias_version,
    restore_previous_champion,
)
from models.tracking import configure_mlflow
from serving.kubernetes_rollout import (
    ClusterRelease,
    open_release,
    serving_absent,
    upgrade_values,
    wait_for_rollout,
)
from serving.routing import model_routes

log = logging.getLogger(__name__)

SERVED_VERSION_METRIC = "churn_model_version"
LOAD_FAILURES_METRIC = "churn_model_reload_failures_total"


class DeployFailed(RuntimeError):
    """The champion was not deployed; the result says why and what was restored."""

    def __init__(self, result: DeployResult) -> None:
        super().__init__(result.reason)
        self.result = result


def deploy_target(settings: Settings) -> str:
    """``kubernetes`` or ``local``, as ``settings.deploy.target`` resolves."""
    import os

    target = settings.deploy.target
    if target == "auto":
        in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        target = "kubernetes" if settings.deploy.kubeconfig or in_pod else "local"
    return target


def serving_url(settings: Settings) -> str:
    """Base URL of the serving Service the smoke test goes through."""
    return settings.deploy.serving_url or f"http://{settings.serving.host}:{settings.serving.port}"


# How many of the newest entities are looked up online, at most, for one that serves.
SMOKE_CANDIDATES = 200


def smoke_entity(spec: ModelSpec, settings: Settings) -> EntityId:
    """An entity of ``spec``'s own newest feature rows whose every feature is online.

    The entities come from the tables behind the spec's feature service
    (:mod:`data.entities`), keyed and typed as the spec declares: a model on its own table
    is smoke-tested on one of its own entities, never on another model's customer (which
    it would answer with a 404). The smallest such key is taken, so reruns ask the same.
    """
    store = get_feature_store(settings)
    listing = listing_of(store, spec)
    newest = newest_entities(listing)
    if newest.keys.empty:
        raise RuntimeError(
            f"no {spec.name} features yet in {listing.table_names}: nothing to smoke-test "
            "serving with"
        )
    candidates = newest.keys.head(SMOKE_CANDIDATES).tolist()
    online = get_online_features(
        store, candidates, spec.feature_service, entity_key=listing.join_key
    )
    complete = online[list(spec.feature_names)].notna().all(axis=1)
    if not complete.any():
        raise RuntimeError(
            f"none of the {len(candidates)} newest {spec.name} entities of "
            f"{listing.table_names} is online with all its features: run feature_pipeline "
            "(materialize) first"
        )
    # Python's own int or str: the JSON body and the result carry it as the spec's type.
    return online.loc[complete, listing.join_key].tolist()[0]


@dataclass(frozen=True)
class SmokeTest:
    """What one smoke test of a running server found.

    ``nothing_serving``: no server answered (at the end of the wait, and it never served
    the new version), so the version was not tried at all.
    """

    passed: bool
    message: str
    served_version: int | None = None
    nothing_serving: bool = False


@dataclass(frozen=True)
class ServingState:
    """What the server's ``/metrics`` said about one model (``answered``: any HTTP answer)."""

    answered: bool
    served_version: int | None = None  # the champion it serves (None: none loaded)
    load_failures: float = 0.0  # its champion's failed registry reads or model loads
    error: str | None = None  # why nothing answered


class ServingProbe:
    """HTTP checks of a running prediction service, for one model."""

    def __init__(self, settings: Settings, spec: ModelSpec, url: str) -> None:
        headers = {}
        if settings.serving.api_key:
            headers["Authorization"] = f"Bearer {settings.serving.api_key.get_secret_value()}"
        self.spec = spec
        self.url = url
        self.http = httpx.Client(base_url=url, headers=headers, timeout=10)

    def close(self) -> None:
        self.http.close()

    def state(self) -> ServingState:
        """The champion version the server reports serving, and its failed loads."""
        try:
            text = self.http.get("/metrics").text
        except httpx.TransportError as error:  # refused, unresolvable, no answer in time
            return ServingState(False, error=f"{type(error).__name__}: {error}")
        served, failures = None, 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                if labels.get("model") != self.spec.name or labels.get("alias") != CHAMPION:
                    continue
                if sample.name == SERVED_VERSION_METRIC:
                    served = int(sample.value)
                elif sample.name == LOAD_FAILURES_METRIC:
                    failures += sample.value
        return ServingState(True, served, failures)

    def served_version(self) -> int | None:
        """The champion version the server reports serving (None: unreachable or none)."""
        return self.state().served_version

    def smoke(self, entity: EntityId, expected_version: int) -> SmokeTest:
        """``/readyz`` answers 200 and one prediction for ``entity`` (a key of the spec's
        entity) comes from a served version."""
        try:
            ready = self.http.get("/readyz")
            if ready.status_code != 200:
                return SmokeTest(False, f"/readyz answered {ready.status_code}")
            route, _ = model_routes(self.spec.name)
            answer = self.http.post(route, json={self.spec.entity_key: entity})
        except httpx.HTTPError as error:
            return SmokeTest(False, f"serving unreachable: {error}")
        if answer.status_code != 200:
            return SmokeTest(False, f"{route} answered {answer.status_code}: {answer.text[:300]}")
        body = answer.json()
        missing = {"model_name", "model_version", "variant", self.spec.output} - set(body)
        if missing:
            return SmokeTest(False, f"{route} answer lacks {sorted(missing)}")
        if body["model_name"] != self.spec.registered_model:
            return SmokeTest(False, f"{route} answered with model {body['model_name']!r}")
        if body["variant"] == CHAMPION and int(body["model_version"]) != expected_version:
            return SmokeTest(False, f"champion answered as v{body['model_version']}")
        return SmokeTest(True, f"{route} answered v{body['model_version']}", expected_version)


def wait_until_served(
    probe: ServingProbe,
    version: int,
    entity: EntityId,
    timeout_seconds: float,
    poll_seconds: float,
    clock: Callable[[], float] = time.monotonic,
    unreachable_seconds: float | None = None,
) -> SmokeTest:
    """Wait for the server to report ``version`` as champion, then smoke-test it.

    A failing smoke test is retried until the deadline (a pod that has just turned ready
    may still be warming its connections); the last failure is returned. When nothing
    answers for ``unreachable_seconds`` from the start (default: the whole wait), or
    nothing answers at the deadline and the new version was never served, the result is
    ``nothing_serving``: no server tried the version.
    """
    start = clock()
    deadline = start + timeout_seconds
    give_up = start + min(unreachable_seconds or timeout_seconds, timeout_seconds)
    last = SmokeTest(False, "never checked")
    answered = served_new = False
    while True:
        state = probe.state()
        if not state.answered:
            last = SmokeTest(
                False, f"nothing answers at {probe.url} ({state.error})", nothing_serving=True
            )
            if not answered and clock() >= give_up:
                waited = clock() - start
                return SmokeTest(False, f"{last.message} for {waited:.0f} s", None, True)
        elif state.served_version == version:
            answered = served_new = True
            last = probe.smoke(entity, version)
            if last.passed:
                return last
        else:
            answered = True
            shown = "nothing" if state.served_version is None else f"v{state.served_version}"
            failed = (
                f" ({state.load_failures:.0f} failed champion loads or registry reads since "
                "it started)"
                if state.load_failures
                else ""
            )
            last = SmokeTest(False, f"serving reports {shown} as champion, not v{version}{failed}")
        if clock() >= deadline:
            return SmokeTest(
                False,
                f"{last.message} (after {timeout_seconds:.0f} s)",
                last.served_version,
                last.nothing_serving and not served_new,
            )
        time.sleep(poll_seconds)


def deploy_champion(
    spec: ModelSpec,
    settings: Settings,
    release_factory: Callable[[Settings], Any] = open_release,
) -> DeployResult:
    """Roll the current ``champion`` of ``spec`` out and smoke-test it (module docstring).

    Returns the result when the version deployed, when nothing is serving (outcome
    ``nothing_serving``: champion left as it is) and when there is no champion. Raises
    :class:`DeployFailed` (carrying the result) when the rollout or the smoke test of the
    new version failed; the release and the alias have been moved back by then.
    """
    client = configure_mlflow(settings)
    name = spec.registered_model
    target = deploy_target(settings)
    url = serving_url(settings)
    version = alias_version(settings, name, CHAMPION, client)
    if version is None:
        return DeployResult(
            spec.name, None, target, deployed=False, outcome=DeployOutcome.NO_CHAMPION,
            reason="no champion to deploy", serving_url=url,
        )  # fmt: skip
    promoted_at = client.get_model_version(name, str(version)).tags.get(CHAMPION_SINCE)
    entity = smoke_entity(spec, settings)
    probe = ServingProbe(settings, spec, url)
    try:
        if target == "kubernetes":
            with release_factory(settings) as release:
                return _deploy_to_cluster(
                    spec, settings, release, probe, version, entity, promoted_at
                )
        smoke = _wait(probe, settings, version, entity)
        if smoke.nothing_serving:
            return _nothing_serving(spec, settings, version, target, url, smoke.message, entity)
        if not smoke.passed:
            return _fail(spec, settings, version, target, url, smoke.message, entity)
        return _succeed(spec, settings, version, target, url, promoted_at, entity, None)
    finally:
        probe.close()


def _wait(probe: ServingProbe, settings: Settings, version: int, entity: EntityId) -> SmokeTest:
    deploy = settings.deploy
    return wait_until_served(
        probe, version, entity, deploy.timeout_seconds, deploy.poll_seconds,
        unreachable_seconds=deploy.unreachable_seconds,
    )  # fmt: skip


def _deploy_to_cluster(
    spec: ModelSpec,
    settings: Settings,
    release: ClusterRelease,
    probe: ServingProbe,
    version: int,
    entity: EntityId,
    promoted_at: str | None,
) -> DeployResult:
    deploy, url = settings.deploy, serving_url(settings)
    absent = serving_absent(release.serving_deployment)
    if absent is not None:  # no server to try the version on: no upgrade, no judgement
        return _nothing_serving(spec, settings, version, "kubernetes", url, absent, entity)
    values = upgrade_values(release.values(), spec.name, version)
    revision = release.upgrade(values, description=f"deploy {spec.registered_model} v{version}")
    log.info("helm upgrade: revision %s deploys %s v%s", revision, spec.name, version)
    rollout = wait_for_rollout(
        release.serving_deployment, deploy.timeout_seconds, deploy.poll_seconds
    )
    if rollout.state == "complete":
        smoke = _wait(probe, settings, version, entity)
        if smoke.passed:
            return _succeed(
                spec, settings, version, "kubernetes", url, promoted_at, entity, revision
            )
        if smoke.nothing_serving:
            # The pods rolled out and turned ready (they serve the new champion), but the
            # Service did not answer: nothing to judge the version by, so no rollback.
            reason = f"revision {revision} rolled out, but {smoke.message}"
            return _nothing_serving(
                spec, settings, version, "kubernetes", url, reason, entity, revision
            )
        reason = f"smoke test failed: {smoke.message}"
    else:
        reason = f"rollout failed: {rollout.message}"
    # The previous revision: the one this upgrade replaced.
    release.rollback(revision - 1 if revision > 1 else None)
    return _fail(
        spec, settings, version, "kubernetes", url, reason, entity, revision, rolled_back=True
    )


def _succeed(
    spec: ModelSpec,
    settings: Settings,
    version: int,
    target: str,
    url: str,
    promoted_at: str | None,
    entity: EntityId,
    revision: int | None,
) -> DeployResult:
    served_at = wall_now()  # timing: time to production
    seconds = None
    if promoted_at:
        seconds = round((served_at - datetime.fromisoformat(promoted_at)).total_seconds(), 3)
    result = DeployResult(
        spec.name, version, target, True, DeployOutcome.DEPLOYED, f"v{version} serves at {url}",
        url, promoted_at, served_at.isoformat(), seconds, None, revision, entity,
    )  # fmt: skip
    tags = {
        "deploy.status": "deployed",
        "deploy.target": target,
        "deploy.deployed_at": result.served_at,
        "deploy.serving_url": url,
    }
    if seconds is not None:
        tags["deploy.time_to_production_seconds"] = f"{seconds:.3f}"
    if revision is not None:
        tags["deploy.helm_revision"] = str(revision)
    _tag(settings, spec, version, tags)
    client = configure_mlflow(settings)
    if "deploy.reason" in client.get_model_version(spec.registered_model, str(version)).tags:
        # Left by an earlier attempt that found nothing serving: it no longer applies.
        client.delete_model_version_tag(spec.registered_model, str(version), "deploy.reason")
    log.info("deployed %s v%s (time to production: %s s)", spec.name, version, seconds)
    return result


def _nothing_serving(
    spec: ModelSpec,
    settings: Settings,
    version: int,
    target: str,
    url: str,
    why: str,
    entity: EntityId,
    revision: int | None = None,
) -> DeployResult:
    """No server was there to try ``version`` on: it is not judged, champion stays."""
    start = (
        "start serving (`make serve`, beside `make airflow`) and run the deploy again"
        if target == "local"
        else "check the serving Deployment and Service, then run the deploy again"
    )
    reason = (
        f"nothing serving: {why}. v{version} was not tried, so champion stays on it "
        f"(nothing rolled back); serving loads it when it starts. To check it: {start}"
    )
    _tag(
        settings,
        spec,
        version,
        {
            "deploy.status": DeployOutcome.NOTHING_SERVING.value,
            "deploy.target": target,
            "deploy.checked_at": wall_now().isoformat(),
            "deploy.reason": reason,
        },
    )
    log.warning("deploy of %s v%s: %s", spec.name, version, reason)
    return DeployResult(
        spec.name, version, target, False, DeployOutcome.NOTHING_SERVING, reason, url,
        helm_revision=revision, smoke_entity=entity,
    )  # fmt: skip


def _fail(
    spec: ModelSpec,
    settings: Settings,
    version: int,
    target: str,
    url: str,
    reason: str,
    entity: EntityId,
    revision: int | None = None,
    rolled_back: bool = False,
) -> DeployResult:
    restored = restore_previous_champion(settings, spec.registered_model, version)
    tags = {
        "deploy.status": "failed",
        "deploy.target": target,
        "deploy.failed_at": wall_now().isoformat(),
        "deploy.reason": reason,
    }
    if restored is not None:
        tags["deploy.restored_version"] = str(restored)
    if rolled_back:
        tags["deploy.helm_rolled_back_from"] = str(revision)
    _tag(settings, spec, version, tags)
    moved = f"champion moved back to v{restored}" if restored else "no previous champion"
    log.error("deploy of %s v%s failed: %s; %s", spec.name, version, reason, moved)
    result = DeployResult(
        spec.name, version, target, False, DeployOutcome.FAILED, f"{reason}; {moved}", url,
        None, None, None, restored, revision, entity,
    )  # fmt: skip
    raise DeployFailed(result)


def _tag(settings: Settings, spec: ModelSpec, version: int, tags: dict[str, str]) -> None:
    client = configure_mlflow(settings)
    for key, value in tags.items():
        client.set_model_version_tag(spec.registered_model, str(version), key, value)
