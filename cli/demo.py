"""``make demo``: the closed loop end to end, through the real DAGs, on one machine.

Four acts over one simulated timeline that ends yesterday by the platform's clock
(``core.clock``: the wall clock, or ``CHURN_NOW``). The world is drawn from the seed and
each day's offset in the timeline, so the story is the same on any date, only moved in
time. Each act happens at its own present, the morning after the days it landed: the DAG
runs' logical date, the serving process's clock and every decision (label maturity,
windows, cool-downs) read it.

1. **Normal months.** Orders land -> ``feature_pipeline`` -> every model's training
   pipeline (v1) -> the BentoML server answers live HTTP traffic -> monitoring finds no
   drift (the labels of these predictions are all pending: they mature in 30 days).
2. **A concept shift.** Customers' behaviour stops meaning what it meant (the simulator's
   ``ConceptShift``): the feature distributions barely move, so PSI stays calm, but the
   champion's live F1 falls once the labels of its predictions mature. The monitoring run
   judges the replayed days as its window, raises the performance-drift alert, and its
   retraining policy triggers the training pipeline, which runs (v2). A deliberately
   worse version (v3, trained on inverted labels) is sent to a live A/B.
3. **The live verdict and a bad promotion.** Split traffic is judged on matured labels: the
   live verdict rejects v3. An operator promotes v3 anyway; its live F1 falls short of
   the champion it replaced, the monitoring run rolls ``champion`` back while HTTP
   traffic flows, and its alert on v3 retrains (v4), which runs.
4. **Drift.** Spend doubles and the segment mix moves: PSI fires for both models and both
   retrain; the next monitoring run finds the same drift and the retraining policy
   debounces it (inside the cool-down).

Past days' traffic is replayed (:mod:`serving.replay`: the service's routing, models and
log, with features as of each day from Feast's offline store), since a label takes 30
days to mature and the demo takes minutes. The summary is printed and written as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd

from cli import airflow_runner
from core import clock
from core.clock import midnight
from core.settings import Settings, get_settings
from core.spec import ModelSpec
from data import delta_tables
from data.simulate import ConceptShift, Drift, SimulationConfig, land_simulated_days

STATE_PARTS = (
    "delta", "feast", "mlflow", "serving", "landing", "quarantine", "reports", "gx",
    "training_sets", "tmp", "airflow", "evidently", "platform.db",
)  # fmt: skip

# The concept-shift act, in days from the shift's start (its days land in two batches).
SHIFT_DAYS = 140
# Landed before the retrain: the labels of days 10-15 have matured, and the retrain has
# post-shift label dates outside its 28-day holdout to learn the new behaviour from.
FIRST_BATCH_DAYS = 100
DEGRADED_DAYS = (10, 16)  # replayed with v1: the live F1 it reaches after the shift
SPLIT_DAYS = (100, 104)  # 50/50 A/B of the champion (v2) and the worse challenger (v3)
BAD_PROMOTION_DAYS = (104, 108)  # v3 promoted by hand serves alone; matured by day 140


def reset_state(settings: Settings) -> None:
    """Remove the state the demo writes, so every demo starts from nothing."""
    for part in STATE_PARTS:
        path = settings.storage.state_dir / part
        if path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)


def ignore_library_warnings() -> None:
    """Hide the libraries' warnings, whichever filters they installed when imported.

    Feast (``feature_view``) and Airflow (``configuration``) put "once"/"default" warning
    filters in front of any set before them, so "ignore" goes in front again once both are
    loaded (Airflow only after ``use_project_airflow`` has configured it).
    """
    import airflow.configuration  # noqa: F401
    import feast.feature_view  # noqa: F401

    warnings.simplefilter("ignore")


def active_customers(settings: Settings, window_days: int = 30) -> np.ndarray:
    """Customers with an order in the last ``window_days`` of ingested data."""
    last = max(delta_tables.partition_dates(settings.storage.raw_orders_path, "event_date"))
    first = (last - timedelta(days=window_days - 1)).isoformat()
    recent = delta_tables.read_table(
        settings.storage.raw_orders_path,
        columns=["customer_id"],
        filters=[("event_date", ">=", first)],
    )
    return np.sort(recent["customer_id"].unique())


def send_predictions(
    url: str,
    customers: np.ndarray,
    requests: int,
    seed: int,
    route: str = "/predict",
    stop: threading.Event | None = None,
    pause: float = 0.0,
) -> dict[str, Any]:
    """Real HTTP traffic to ``route``: mostly single predictions, every 50th a batch of 20.

    With ``stop``: keeps sending until it is set (``requests`` is then a minimum), with
    ``pause`` seconds between requests.
    """
    rng = np.random.default_rng(seed)
    latencies, statuses, versions = [], {}, {}
    with httpx.Client(base_url=url, timeout=10) as client:
        i = 0
        while i < requests or (stop is not None and not stop.is_set()):
            if i % 50 == 49:
                ids = [int(c) for c in rng.choice(customers, size=20, replace=False)]
                body, path = {"customer_ids": ids}, f"{route}/batch"
            else:
                body, path = {"customer_id": int(rng.choice(customers))}, route
            started = time.perf_counter()
            response = client.post(path, json=body)
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 200 and "model_version" in response.json():
                served = response.json()["model_version"]
                versions[served] = versions.get(served, 0) + 1
            i += 1
            if pause:
                time.sleep(pause)
    return {
        "route": route,
        "requests": i,
        "status_codes": statuses,
        "versions_served": versions,
        "latency_ms_p50": round(statistics.median(latencies), 2),
        "latency_ms_p99": round(float(np.percentile(latencies, 99)), 2),
    }


def _step(title: str) -> float:
    print(f"\n==> {title}", flush=True)
    return time.monotonic()


def _check(result: airflow_runner.DagRunResult) -> airflow_runner.DagRunResult:
    print(f"    {result.dag_id}: {result.state} {result.task_states}", flush=True)
    if not result.succeeded:
        raise RuntimeError(f"{result.dag_id} run {result.run_id} ended {result.state}")
    return result


def model_route(spec: ModelSpec) -> str:
    """The route the demo sends a model's traffic to (the default model: ``/predict``)."""
    return "/predict" if spec.serves_default_routes else f"/models/{spec.name}/predict"


def traffic(url: str, settings: Settings, specs: tuple[ModelSpec, ...], requests: int, seed: int):
    """The same customers' traffic to every model's route."""
    customers = active_customers(settings)
    sent = {
        spec.name: send_predictions(url, customers, requests, seed, model_route(spec))
        for spec in specs
    }
    for name, figures in sent.items():
        print(f"    {name}: {figures}")
    return sent


def days_of(start: date, span: tuple[int, int]) -> list[date]:
    """The days ``start + span[0]`` up to (not including) ``start + span[1]``."""
    return [start + timedelta(days=i) for i in range(*span)]


def monitor(spec: ModelSpec, settings: Settings, conf: dict | None = None) -> dict[str, Any]:
    """One run of the model's monitoring DAG at the present (``conf``: its window); its
    drift, live quality and retrain request."""
    before = len(retrain_decisions(spec, settings))
    done = run(spec.monitoring_dag_id, settings, conf)
    drift, quality = done.returns["drift_report"], done.returns["live_quality"]
    conf = done.returns.get("retrain_decision") or {}
    decisions = retrain_decisions(spec, settings)
    decision = decisions[-1] if len(decisions) > before else None  # None: nothing asked
    outcome = {
        "drift": {
            "window": drift["window"],
            "rows": drift["current_rows"],
            "significant": drift["significant"],
            "reason": drift["reason"],
            "psi": {f["column"]: round(f["psi"], 4) for f in drift.get("features", [])},
            "max_feature_psi": max((f["psi"] for f in drift.get("features", [])), default=None),
            "html_report": drift.get("html_path"),
        },
        "labels": {k: quality[k] for k in ("logged", "matured", "pending")},
        "alerts": [alert_figures(a) for a in quality["alerts"]],
        "ab_verdict": quality["ab_verdict"],
        "rollback": quality["rollback"],
        "deploy": deploy_if_promoted(spec, done, settings),
        "retrain": decision,
        "retrain_triggered": bool(conf),
        "mlflow_run_id": quality["mlflow_run_id"],
    }
    labels = outcome["labels"]
    print(f"    {spec.name}: {drift['current_rows']} predictions in the window; drift "
          f"{drift['significant']} ({drift['reason']})")  # fmt: skip
    print(f"    {spec.name}: labels logged {labels['logged']}, matured {labels['matured']}, "
          f"pending {labels['pending']}; alerts {len(quality['alerts'])}")  # fmt: skip
    if outcome["retrain"]:
        print(f"    {spec.name}: retraining policy: {outcome['retrain']['why']}")
    return outcome


def alert_figures(alert: dict[str, Any]) -> dict[str, Any]:
    """A performance alert's figures: version, metric, threshold and the bad periods."""
    return {
        "model_version": alert["model_version"],
        "variant": alert["variant"],
        "metric": alert["metric"],
        "threshold": alert["threshold"],
        "periods": {
            str(p["period_start"])[:10]: round(p["metrics"][alert["metric"]], 4)
            for p in alert["periods"]
        },
    }


def retrain_decisions(spec: ModelSpec, settings: Settings) -> list[dict[str, Any]]:
    """Every decision the retraining policy recorded for the model, oldest first."""
    from monitoring.retraining import retrain_history

    return [
        {
            "kind": d.request.kind,
            "reason": d.request.reason,
            "accepted": d.accepted,
            "why": d.why,
            "requested_at": d.request.requested_at.isoformat(),
        }
        for d in retrain_history(spec, settings)
    ]


def run_requested_training(
    specs: Sequence[ModelSpec], monitoring: dict[str, dict[str, Any]], settings: Settings
) -> dict[str, list[dict[str, Any]]]:
    """Run the training runs the monitoring runs queued, as the scheduler would; their gates."""
    gates = {}
    for spec in specs:
        if monitoring[spec.name]["retrain_triggered"]:
            ran = [_check(r) for r in airflow_runner.run_queued(spec.training_dag_id, settings)]
            if not ran:
                raise RuntimeError(f"{spec.name}: a retrain was accepted but no run was queued")
            gates[spec.name] = [
                {**r.returns["gate"], "deploy": deploy_if_promoted(spec, r, settings)} for r in ran
            ]
            print(f"    gate: {ran[-1].returns['gate']['reason']}")
    return gates


def deploy_if_promoted(
    spec: ModelSpec, moved_by: airflow_runner.DagRunResult, settings: Settings
) -> dict[str, Any] | None:
    """Run the model's deploy DAG when ``moved_by`` moved its champion, as the asset would."""
    if moved_by.task_states.get("announce_champion") != "success":
        return None
    done = run(spec.deploy_dag_id, settings)
    deployed = done.returns.get("deploy")
    if deployed is None:  # skipped: nothing was serving, yet the demo runs a server
        state = done.task_states.get("deploy")
        raise RuntimeError(f"{spec.deploy_dag_id}: deploy {state} (nothing serving? see its log)")
    seconds = deployed["time_to_production_seconds"]
    print(f"    deployed {spec.name} v{deployed['version']}: {seconds} s from promotion to a")
    print("    smoke-tested answer of the new version (time to production)")
    return deployed


def live_quality_by_day(spec: ModelSpec, settings: Settings) -> list[dict[str, Any]]:
    """The scored periods of the model's last monitoring run (``quality.json``)."""
    path = settings.storage.reports_dir / "performance" / spec.name / "quality.json"
    if not path.exists():
        return []
    return [
        {
            "day": str(p["period_start"])[:10],
            "version": p["model_version"],
            "variant": p["variant"],
            "labelled": p["labelled"],
            spec.gate_metric: round(p["metrics"][spec.gate_metric], 4),
        }
        for p in json.loads(path.read_text())["periods"]
        if p["metrics"]
    ]


def replay(
    spec: ModelSpec, settings: Settings, line: Timeline, days: list[date], per_day: int, **routing
):
    """Replay ``days`` of the model's traffic (see :mod:`serving.replay`), drawn from the
    seed and the days' offsets in the timeline."""
    from serving.replay import replay_days

    seed = settings.random_seed * 1_000 + line.offset(days[0])
    done = replay_days(spec, settings, days, per_day, seed=seed, **routing)
    print(f"    {spec.name}: replayed {done.logged} predictions on {days[0]}..{days[-1]} "
          f"({done.by_variant})")  # fmt: skip
    return asdict(done)


def train_worse_challenger(spec: ModelSpec, settings: Settings) -> int:
    """A deliberately worse version, registered and sent to a live A/B against the champion
    (the offline gate would refuse it): the spec's own pipeline on corrupted labels, a
    classifier's inverted (it learns to flag the customers who stay), a regression's
    shuffled."""
    from models.registry import challenge_by_hand, register_model
    from models.training import build_training_set, train_and_log

    built = build_training_set(spec, settings, run_name="corrupted-labels")
    train = pd.read_parquet(built.train_path)
    if spec.task == "classification":
        train[spec.label] = 1 - train[spec.label]
        how = "inverted"
    else:
        rng = np.random.default_rng(settings.random_seed)
        train[spec.label] = rng.permutation(train[spec.label].to_numpy())
        how = "shuffled"
    corrupted = built.train_path.replace(".parquet", f"_{how}.parquet")
    train.to_parquet(corrupted, index=False)
    reason = f"demo: deliberately worse, trained on {how} labels"
    trained = train_and_log(
        spec,
        replace(built, train_path=corrupted),
        settings,
        dag_run_id=f"{how}-labels",
        trigger={
            "reason": reason,
            "kind": "manual",
            "requested_at": clock.now(settings).isoformat(),
        },
    )
    version = register_model(spec, trained, settings).version
    challenge_by_hand(settings, spec.registered_model, version, reason)
    return version


def wait_for_version(url: str, route: str, customer: int, version: int, seconds: float) -> float:
    """Seconds until the server answers with ``version`` (an alias move reached serving)."""
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=10) as client:
        while time.monotonic() - started < seconds:
            answer = client.post(route, json={"customer_id": customer})
            if answer.status_code == 200 and answer.json().get("model_version") == version:
                return round(time.monotonic() - started, 1)
            time.sleep(0.5)
    raise RuntimeError(f"serving did not follow the move to v{version} in {seconds} s")


@dataclass(frozen=True)
class Timeline:
    """The demo's simulated days, as offsets from the clock's today: the same story on
    any date, only moved in time. Each act happens at its own present, the morning after
    the days it landed: the clock of the DAG runs, the server and every decision."""

    start: date
    shift: date
    drift: date
    end: date  # the last simulated day: yesterday

    @classmethod
    def ending_before(cls, today: date, normal_days: int, drift_days: int) -> Timeline:
        start = today - timedelta(days=normal_days + SHIFT_DAYS + drift_days)
        shift = start + timedelta(days=normal_days)
        drift = shift + timedelta(days=SHIFT_DAYS)
        return cls(start, shift, drift, drift + timedelta(days=drift_days - 1))

    def present_after(self, last_landed: date) -> datetime:
        """The act's present: 06:00 UTC on the day after its last landed day."""
        return midnight(last_landed + timedelta(days=1)) + timedelta(hours=PRESENT_HOUR)

    def offset(self, day: date) -> int:
        return (day - self.start).days


PRESENT_HOUR = 6


def at_present(present: datetime) -> Settings:
    """The settings of an act: the platform's clock (CHURN_NOW) at ``present``, for this
    process, the DAG runs in it and the server it starts."""
    os.environ["CHURN_NOW"] = present.isoformat()
    return get_settings()


def run(dag_id: str, settings: Settings, conf: dict | None = None) -> airflow_runner.DagRunResult:
    """One DAG run at the clock's present (its logical date), checked."""
    return _check(
        airflow_runner.run_dag(dag_id, settings, conf=conf, logical_date=clock.now(settings))
    )


def window_conf(days: list[date]) -> dict[str, str]:
    """A monitoring run's window over whole ``days`` (late or replayed traffic)."""
    end = midnight(days[-1] + timedelta(days=1))
    return {"window_start": midnight(days[0]).isoformat(), "window_end": end.isoformat()}


def run_demo(
    settings: Settings,
    customers: int | None = None,
    days: int | None = None,
    drift_days: int = 28,
    requests: int = 400,
    replay_per_day: int = 800,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run the four acts; return (and write) the summary. ``quiet`` hides library warnings."""
    from models.catalog import get_spec, load_specs
    from models.registry import CHAMPION, alias_version, promote_by_hand
    from serving.server import BentoServer, ensure_port_free

    # Refused before anything is reset or run: the acts start their server on this port.
    ensure_port_free(settings.serving.host, settings.serving.port, command="make demo")
    specs = load_specs()
    churn = get_spec("churn")
    labelled_specs = [s for s in specs if s.outcomes is not None]
    started = time.monotonic()
    customers = customers or settings.simulation.customers
    days = days or settings.simulation.days
    today = clock.today(settings)
    line = Timeline.ending_before(today, days, drift_days)
    config = SimulationConfig(
        customers=customers,
        start_date=line.start,
        days=days + SHIFT_DAYS + drift_days,
        seed=settings.random_seed,
        concept_shift=ConceptShift(start=line.shift),
        drift=Drift(start=line.drift),
    )
    user_now = os.environ.get("CHURN_NOW")
    airflow_db = False  # migrated: the in-process runs' leftovers are removed at the end
    dropped: dict[str, int] = {}
    timings: dict[str, float] = {}
    acts: dict[str, dict[str, Any]] = {}
    presents: dict[str, str] = {}

    def begin_act(key: str, title: str, last: date, days: list[date]) -> tuple[Settings, float]:
        """The act's present (the morning after ``last``), its days landed and featurized."""
        settings = at_present(line.present_after(last))
        presents[key] = clock.now(settings).isoformat()
        started = _step(f"{title}; present {presents[key]}")
        land_simulated_days(config, settings, days)
        run("feature_pipeline", settings)
        return settings, started

    try:
        # Act 1 ------------------------------------------------------------------------
        t = _step(
            f"Act 1: reset {settings.storage.state_dir}; simulate {days} normal days, "
            f"{customers} customers"
        )
        reset_state(settings)
        settings = at_present(line.present_after(line.shift - timedelta(days=1)))
        presents["1_normal"] = clock.now(settings).isoformat()
        rows = land_simulated_days(config, settings, days_of(line.start, (0, days)))
        print(
            f"    landed {days} daily batches, {rows} order events; present {presents['1_normal']}"
        )
        print(f"    models: {', '.join(f'{s.name} ({s.registered_model})' for s in specs)}")
        airflow_runner.migrate_airflow_db(settings)
        airflow_db = True
        if quiet:
            ignore_library_warnings()
        run("feature_pipeline", settings)
        first = {}
        for spec in specs:
            first[spec.name] = run(spec.training_dag_id, settings)
            print(f"    gate: {first[spec.name].returns['gate']['reason']}")
        act = acts["1_normal"] = {
            "holdout": {spec.name: holdout_score(spec, settings, 1) for spec in specs}
        }
        timings["act1_features_and_v1"] = time.monotonic() - t

        t = _step("Act 1: BentoML server, live traffic to every model, monitoring")
        with BentoServer(settings) as url:
            timings["server_start"] = time.monotonic() - t
            act["traffic"] = traffic(url, settings, specs, requests, seed=1)
            # The window: the last drift_window_hours before the run, this traffic.
            act["monitoring"] = {spec.name: monitor(spec, settings) for spec in specs}
        for spec in specs:
            if act["monitoring"][spec.name]["drift"]["significant"]:
                raise RuntimeError(f"{spec.name}: normal traffic was judged drifted")
        timings["act1_traffic_and_monitoring"] = time.monotonic() - t

        # Act 2 ------------------------------------------------------------------------
        settings, t = begin_act(
            "2_concept_shift",
            f"Act 2: a concept shift from {line.shift}; {FIRST_BATCH_DAYS} days land",
            line.shift + timedelta(days=FIRST_BATCH_DAYS - 1),
            days_of(line.shift, (0, FIRST_BATCH_DAYS)),
        )
        degraded = days_of(line.shift, DEGRADED_DAYS)
        replayed = {
            s.name: replay(s, settings, line, degraded, replay_per_day) for s in labelled_specs
        }
        act = acts["2_concept_shift"] = {"replayed": replayed}
        with BentoServer(settings) as url:  # the deploy step smoke-tests what it promotes
            act["monitoring"] = {
                spec.name: monitor(spec, settings, window_conf(degraded)) for spec in specs
            }
            act["psi_of_replayed_days"] = act["monitoring"]["churn"]["drift"]["psi"]
            print(f"    churn PSI of the replayed days: {act['psi_of_replayed_days']}")
            act["live_quality"] = live_quality_by_day(churn, settings)
            act["retraining"] = run_requested_training(specs, act["monitoring"], settings)
        act["worse_challenger"] = train_worse_challenger(churn, settings)
        print(f"    churn v{act['worse_challenger']}: inverted labels, sent to a live A/B")
        timings["act2_concept_shift"] = time.monotonic() - t

        # Act 3 ------------------------------------------------------------------------
        settings, t = begin_act(
            "3_verdict_and_rollback",
            "Act 3: the live A/B verdict, then a bad promotion rolled back",
            line.shift + timedelta(days=SHIFT_DAYS - 1),
            days_of(line.shift, (FIRST_BATCH_DAYS, SHIFT_DAYS)),
        )
        split = days_of(line.shift, SPLIT_DAYS)
        act = acts["3_verdict_and_rollback"] = {
            "replayed_split": replay(
                churn, settings, line, split, replay_per_day, ab_mode="split",
                challenger_weight=0.5,
            ),
        }  # fmt: skip
        with BentoServer(settings) as url:
            act["verdict_run"] = monitor(churn, settings, window_conf(split))
            verdict = act["verdict_run"]["ab_verdict"]
            if verdict:
                print(f"    live verdict: {verdict['decision']} ({verdict['test']}, "
                      f"lift {verdict['lift']}, p {verdict['p_value']})")  # fmt: skip
            act["verdict_retraining"] = run_requested_training(
                [churn], {"churn": act["verdict_run"]}, settings
            )
            champion = alias_version(settings, churn.registered_model, CHAMPION)
            worse = acts["2_concept_shift"]["worse_challenger"]
            promote_by_hand(
                settings, churn.registered_model, worse, "demo: an operator overrides the verdict"
            )
            print(f"    operator promotes v{worse} by hand over v{champion}")
            act["promoted_by_hand"] = {"version": worse, "replaced": champion}
            bad_days = days_of(line.shift, BAD_PROMOTION_DAYS)
            act["replayed_bad_promotion"] = replay(churn, settings, line, bad_days, replay_per_day)
            customers_now = active_customers(settings)
            follow = settings.serving.model_refresh_seconds * 3
            # The live server answers with the promoted version before the rollback moves it.
            act["serving_took_promotion_in_seconds"] = wait_for_version(
                url, model_route(churn), int(customers_now[0]), worse, follow
            )
            stop = threading.Event()
            during: dict[str, Any] = {}
            sender = threading.Thread(
                target=lambda: during.update(
                    send_predictions(url, customers_now, 50, 3, model_route(churn), stop, 0.1)
                )
            )
            sender.start()
            try:
                act["rollback_run"] = monitor(churn, settings, window_conf(bad_days))
                rolled = act["rollback_run"]["rollback"]
                if rolled and rolled["rolled_back"]:
                    act["serving_followed_in_seconds"] = wait_for_version(
                        url, model_route(churn), int(customers_now[0]), champion, follow
                    )
                    print(f"    rolled back: {rolled['reason']}")
                    time.sleep(1.0)  # the traffic goes on a moment on the restored version
            finally:
                stop.set()
                sender.join()
            act["traffic_during_rollback"] = during
            print(f"    traffic during the rollback: {during}")
            # The alert on the version rolled back asks for a retrain: it runs now.
            act["retraining"] = run_requested_training(
                [churn], {"churn": act["rollback_run"]}, settings
            )
        act["live_quality"] = live_quality_by_day(churn, settings)
        timings["act3_verdict_and_rollback"] = time.monotonic() - t

        # Act 4 ------------------------------------------------------------------------
        settings, t = begin_act(
            "4_drift",
            f"Act 4: {drift_days} drifted days (spend x2, segment mix) and traffic",
            line.end,
            days_of(line.drift, (0, drift_days)),
        )
        with BentoServer(settings) as url:
            act = acts["4_drift"] = {"traffic": traffic(url, settings, specs, requests, seed=2)}
            act["monitoring"] = {spec.name: monitor(spec, settings) for spec in specs}
            act["retraining"] = run_requested_training(specs, act["monitoring"], settings)
            # The next run (the features asset would schedule one) finds the same drift:
            # the retraining policy debounces it.
            act["debounce"] = {spec.name: monitor(spec, settings) for spec in specs}
            act["debounce_retraining"] = run_requested_training(specs, act["debounce"], settings)
        timings["act4_drift"] = time.monotonic() - t
        left = {
            spec.name: airflow_runner.queued_runs(spec.training_dag_id, settings) for spec in specs
        }
        for name, queued in left.items():
            if queued:
                print(f"    {name}: {len(queued)} training run(s) left queued (removed below)")
    finally:
        if user_now is None:
            os.environ.pop("CHURN_NOW", None)
        else:
            os.environ["CHURN_NOW"] = user_now
        if airflow_db:
            # The demo stood in for the scheduler: nothing it queued may fire when one
            # starts (`make airflow`), such as a deploy of a promotion long deployed.
            try:
                dropped = airflow_runner.drop_scheduler_leftovers(settings)
            except Exception as error:  # never hide the demo's own error
                print(f"    could not clear the runs left for a scheduler: {error}")

    summary = {
        "timeline": {
            "start": line.start.isoformat(),
            "concept_shift": line.shift.isoformat(),
            "drift": line.drift.isoformat(),
            "end": line.end.isoformat(),
            "today": today.isoformat(),
            "presents": presents,
        },
        "acts": acts,
        "models": {spec.name: model_summary(settings, spec) for spec in specs},
        "left_queued": {name: len(q) for name, q in left.items()},
        "dropped_for_scheduler": dropped,
        "timings_seconds": {k: round(v, 1) for k, v in timings.items()},
        "total_seconds": round(time.monotonic() - started, 1),
        "summary_path": str(settings.storage.demo_summary_path),
        "how_to": {
            "mlflow_ui": "make mlflow-ui  # then open the links it prints (login printed)",
            "airflow_ui": "make airflow  # then open http://127.0.0.1:8080 (login printed)",
            "evidently_ui": "make evidently-ui  # then open http://127.0.0.1:8000",
            "serve": 'make serve  # then POST http://127.0.0.1:3000/predict {"customer_id": 42}',
            "other_models": 'POST http://127.0.0.1:3000/models/<name>/predict {"customer_id": 42}',
        },
    }
    settings.storage.demo_summary_path.parent.mkdir(parents=True, exist_ok=True)
    settings.storage.demo_summary_path.write_text(json.dumps(summary, indent=2, default=str))
    print_summary(summary)
    return summary


VERSION_TAGS = ("gate.decision", "gate.reason", "gate.live_reason", "live_ab.decision",
                "live_ab.lift", "rollback.role", "rollback.reason", "trigger.reason")  # fmt: skip


def holdout_score(spec: ModelSpec, settings: Settings, version: int) -> dict[str, float]:
    """The gate metric a version scored on its holdout (its training run's metric)."""
    from models.tracking import configure_mlflow

    client = configure_mlflow(settings)
    run_id = client.get_model_version(spec.registered_model, str(version)).run_id
    return {spec.gate_metric: round(client.get_run(run_id).data.metrics[spec.gate_metric], 4)}


def model_summary(settings: Settings, spec: ModelSpec) -> dict[str, Any]:
    """One model's registry at the end: each version's decisions, and the aliases."""
    from models.tracking import configure_mlflow

    client = configure_mlflow(settings)
    name = spec.registered_model
    versions = sorted(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))
    model = client.get_registered_model(name)
    return {
        "model_name": name,
        "task": spec.task,
        "gate_metric": spec.gate_metric,
        "aliases": {alias: int(v) for alias, v in (model.aliases or {}).items()},
        "versions": [
            {
                "version": int(v.version),
                f"holdout_{spec.gate_metric}": round(
                    client.get_run(v.run_id).data.metrics[spec.gate_metric], 4
                ),
                **{k: v.tags[k] for k in VERSION_TAGS if k in v.tags},
            }
            for v in versions
        ],
        "retraining_policy": retrain_decisions(spec, settings),
    }


def print_gates(indent: str, retraining: dict[str, list[dict[str, Any]]]) -> None:
    for name, gates in retraining.items():
        for gate in gates:
            print(f"{indent}{name} v{gate['version']} trained: {gate['reason']}")


def print_summary(summary: dict[str, Any]) -> None:
    acts = summary["acts"]
    line = summary["timeline"]
    print("\n" + "=" * 72)
    print(f"Demo finished in {summary['total_seconds']} s; timeline {line['start']} .. "
          f"{line['end']}, shift {line['concept_shift']}, drift {line['drift']}")  # fmt: skip
    first = acts["1_normal"]
    labels = first["monitoring"]["churn"]["labels"]
    print(f"  1. normal (present {line['presents']['1_normal']}): v1 holdout "
          f"{first['holdout']}; churn labels {labels} (they mature in 30 days)")  # fmt: skip
    shifted = acts["2_concept_shift"]
    psi = shifted["psi_of_replayed_days"]
    calm = sum(v < 0.25 for v in psi.values())
    print(f"  2. concept shift: PSI < 0.25 on {calm} of {len(psi)} churn features "
          f"(the monitoring run's window: the replayed days): {psi}")  # fmt: skip
    for day in shifted["live_quality"]:
        print(f"       {day['day']} v{day['version']} {day['variant']}: F1 {day['f1']} "
              f"({day['labelled']} labels)")  # fmt: skip
    churn = shifted["monitoring"]["churn"]
    for alert in churn["alerts"]:
        print(f"     alert: v{alert['model_version']} F1 < {alert['threshold']}: "
              f"{alert['periods']}")  # fmt: skip
    if churn["retrain"]:
        print(f"     retraining policy: {churn['retrain']['why']}")
    print_gates("     ", shifted["retraining"])
    print(f"     churn v{shifted['worse_challenger']}: trained on inverted labels, sent to a "
          "live A/B")  # fmt: skip
    third = acts["3_verdict_and_rollback"]
    verdict = third["verdict_run"]["ab_verdict"]
    if verdict:
        print(f"  3. live A/B: v{verdict['challenger_version']} vs v{verdict['champion_version']}: "
              f"{verdict['decision']}; {verdict['measure']} {verdict['challenger_value']:.3f} vs "
              f"{verdict['champion_value']:.3f}, lift {verdict['lift']:+.3f} "
              f"[{verdict['ci_low']:+.3f}, {verdict['ci_high']:+.3f}], "
              f"p={verdict['p_value']:.2g} ({verdict['test']}, "
              f"n={verdict['challenger_n']}/{verdict['champion_n']})")  # fmt: skip
    for day in third["live_quality"]:
        print(f"       {day['day']} v{day['version']} {day['variant']}: F1 {day['f1']} "
              f"({day['labelled']} labels)")  # fmt: skip
    rolled = third["rollback_run"]["rollback"]
    print(f"     promoted by hand: v{third['promoted_by_hand']['version']}; rollback: "
          f"{rolled['reason']}")  # fmt: skip
    print(f"     traffic during the rollback: {third['traffic_during_rollback']['status_codes']}, "
          f"versions {third['traffic_during_rollback']['versions_served']}; serving followed in "
          f"{third.get('serving_followed_in_seconds')} s")  # fmt: skip
    retrain = third["rollback_run"]["retrain"]
    print(f"     retraining policy: {retrain['why'] if retrain else 'not asked'}")
    print_gates("     ", third["retraining"])
    fourth = acts["4_drift"]
    for name, run in fourth["monitoring"].items():
        again = fourth["debounce"][name]["retrain"]
        print(f"  4. drift [{name}]: significant={run['drift']['significant']}, max PSI "
              f"{run['drift']['max_feature_psi']}; retraining policy: "
              f"{run['retrain']['why'] if run['retrain'] else 'not asked'}; the next run: "
              f"{again['why'] if again else 'not asked'}")  # fmt: skip
    print_gates("     ", fourth["retraining"])
    for name, count in summary["left_queued"].items():
        if count:
            print(f"  {name}: {count} training run(s) were left queued (removed)")
    dropped = summary["dropped_for_scheduler"]
    print(f"  Airflow: {dropped.get('asset_triggers', 0)} queued asset trigger(s) (of runs the "
          f"demo made itself) and {dropped.get('queued_runs', 0)} queued run(s) removed: none "
          "fires when `make airflow` starts")  # fmt: skip
    for name, model in summary["models"].items():
        print(f"  [{name}] aliases {model['aliases']}")
        for v in model["versions"]:
            metric = next(k for k in v if k.startswith("holdout_"))
            print(f"     v{v['version']} ({metric} {v[metric]}): {v.get('gate.decision')} - "
                  f"{v.get('gate.reason', '')}")  # fmt: skip
    print(f"  summary JSON: {summary['summary_path']}")
    for name, how in summary["how_to"].items():
        print(f"  {name}: {how}")
    print("=" * 72)
