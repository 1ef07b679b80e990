"""``make demo``: the closed loop end to end, through the real DAGs, on one machine.

Four acts over one simulated timeline that ends today:

1. **Normal months.** Orders land -> ``feature_pipeline`` -> every model's training
   pipeline (v1) -> the BentoML server answers live HTTP traffic -> monitoring finds no
   drift (the labels of today's predictions are all pending: they mature in 30 days).
2. **A concept shift.** Customers' behaviour stops meaning what it meant (the simulator's
   ``ConceptShift``): the feature distributions barely move, so PSI stays calm, but the
   champion's live F1 falls once the labels of its predictions mature. The monitoring DAG
   raises the performance-drift alert and its retraining policy triggers the training
   pipeline (v2). A deliberately worse version (v3, trained on inverted labels) is sent
   to a live A/B against the champion.
3. **The live verdict and a bad promotion.** Split traffic is judged on matured labels: the
   live verdict rejects v3. An operator promotes v3 anyway; its live F1 falls short of
   the champion it replaced, and the monitoring run rolls ``champion`` back while HTTP
   traffic flows.
4. **Drift.** Spend doubles and the segment mix moves: PSI fires for both models. The
   retraining policy refuses churn (inside its cool-down after act 2's retrain) and
   accepts next_spend, whose training pipeline runs.

Past days' traffic is replayed (:mod:`serving.replay`: the service's routing, models and
log, with features as of each day from Feast's offline store), since a label takes 30
days to mature and the demo takes minutes. The summary is printed and written as JSON.
"""

from __future__ import annotations

import json
import shutil
import statistics
import threading
import time
import warnings
from dataclasses import asdict, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd

from cli import airflow_runner
from core.settings import Settings
from core.spec import ModelSpec
from data import delta_tables
from data.simulate import ConceptShift, Drift, SimulationConfig, land_simulated_days

STATE_PARTS = (
    "delta", "feast", "mlflow", "serving", "landing", "quarantine", "reports", "gx",
    "training_sets", "tmp", "airflow", "evidently", "platform.db",
)  # fmt: skip

# The concept-shift act, in days from the shift's start (its days land in two batches).
SHIFT_DAYS = 90
FIRST_BATCH_DAYS = 50  # landed before the retrain: labels of days 10-16 have matured
DEGRADED_DAYS = (10, 16)  # replayed with v1: the live F1 it reaches after the shift
SPLIT_DAYS = (50, 54)  # 50/50 A/B of the champion (v2) and the worse challenger (v3)
BAD_PROMOTION_DAYS = (54, 58)  # v3 promoted by hand serves alone


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


def monitor(spec: ModelSpec, settings: Settings) -> dict[str, Any]:
    """One run of the model's monitoring DAG; its drift, live quality and retrain request."""
    before = len(retrain_decisions(spec, settings))
    run = _check(airflow_runner.run_dag(spec.monitoring_dag_id, settings))
    drift, quality = run.returns["drift_report"], run.returns["live_quality"]
    conf = run.returns.get("retrain_decision") or {}
    decisions = retrain_decisions(spec, settings)
    decision = decisions[-1] if len(decisions) > before else None  # None: nothing asked
    outcome = {
        "drift": {
            "significant": drift["significant"],
            "reason": drift["reason"],
            "max_feature_psi": max((f["psi"] for f in drift.get("features", [])), default=None),
            "html_report": drift.get("html_path"),
        },
        "labels": {k: quality[k] for k in ("logged", "matured", "pending")},
        "alerts": [alert_figures(a) for a in quality["alerts"]],
        "ab_verdict": quality["ab_verdict"],
        "rollback": quality["rollback"],
        "deploy": deploy_if_promoted(spec, run, settings),
        "retrain": decision,
        "retrain_triggered": bool(conf),
        "mlflow_run_id": quality["mlflow_run_id"],
    }
    labels = outcome["labels"]
    print(f"    {spec.name}: drift {drift['significant']} ({drift['reason']})")
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
    specs: tuple[ModelSpec, ...], monitoring: dict[str, dict[str, Any]], settings: Settings
) -> dict[str, list[dict[str, Any]]]:
    """Run the training runs the monitoring runs queued, as the scheduler would; their gates."""
    gates = {}
    for spec in specs:
        if monitoring[spec.name]["retrain_triggered"]:
            ran = [_check(r) for r in airflow_runner.run_queued(spec.training_dag_id, settings)]
            gates[spec.name] = [
                {**r.returns["gate"], "deploy": deploy_if_promoted(spec, r, settings)} for r in ran
            ]
            print(f"    gate: {ran[-1].returns['gate']['reason']}")
    return gates


def deploy_if_promoted(
    spec: ModelSpec, run: airflow_runner.DagRunResult, settings: Settings
) -> dict[str, Any] | None:
    """Run the model's deploy DAG when ``run`` moved its champion, as the asset would."""
    if run.task_states.get("announce_champion") != "success":
        return None
    deployed = _check(airflow_runner.run_dag(spec.deploy_dag_id, settings)).returns["deploy"]
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


def replay_drift(spec: ModelSpec, settings: Settings, days: list[date]) -> dict[str, float]:
    """PSI per feature of the predictions replayed on ``days`` against the champion's
    training reference: the same Evidently report the monitoring DAG builds, added to the
    model's Evidently UI project at the replayed days' date."""
    from monitoring.check import load_reference
    from monitoring.drift import build_drift_report
    from monitoring.evidently_ui import add_drift_snapshot
    from serving.prediction_log import read_predictions

    first = datetime.combine(days[0], datetime.min.time(), UTC)
    end = datetime.combine(days[-1] + timedelta(days=1), datetime.min.time(), UTC)
    log = read_predictions(settings, spec, first)
    _, reference = load_reference(settings, spec)
    window = log[log["logged_at"] < end]
    summary = build_drift_report(
        spec, reference, window, settings, name="concept_shift", as_of=end - timedelta(hours=12)
    )
    assert summary.snapshot_path is not None
    add_drift_snapshot(spec, settings, summary.snapshot_path)
    return {c.column: round(c.psi, 4) for c in summary.features}


def replay(spec: ModelSpec, settings: Settings, days: list[date], per_day: int, **routing):
    """Replay ``days`` of the model's traffic (see :mod:`serving.replay`)."""
    from serving.replay import replay_days

    done = replay_days(spec, settings, days, per_day, seed=len(days) + days[0].toordinal(),
                       **routing)  # fmt: skip
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
        trigger={"reason": reason, "kind": "manual", "requested_at": datetime.now(UTC).isoformat()},
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
    from serving.server import BentoServer

    specs = load_specs()
    churn = get_spec("churn")
    labelled_specs = [s for s in specs if s.outcomes is not None]
    started = time.monotonic()
    customers = customers or settings.simulation.customers
    days = days or settings.simulation.days
    today = datetime.now(UTC).date()
    start = today - timedelta(days=days + SHIFT_DAYS + drift_days)
    shift = start + timedelta(days=days)
    drift_start = shift + timedelta(days=SHIFT_DAYS)
    config = SimulationConfig(
        customers=customers,
        start_date=start,
        days=days + SHIFT_DAYS + drift_days,
        seed=settings.random_seed,
        concept_shift=ConceptShift(start=shift),
        drift=Drift(start=drift_start),
    )
    timings: dict[str, float] = {}
    acts: dict[str, dict[str, Any]] = {}

    t = _step(
        f"Act 1: reset {settings.storage.state_dir}; simulate {days} normal days, "
        f"{customers} customers"
    )
    reset_state(settings)
    rows = land_simulated_days(config, settings, days_of(start, (0, days)))
    print(f"    landed {days} daily batches, {rows} order events")
    print(f"    models: {', '.join(f'{s.name} ({s.registered_model})' for s in specs)}")
    airflow_runner.migrate_airflow_db(settings)
    if quiet:
        ignore_library_warnings()
    _check(airflow_runner.run_dag("feature_pipeline", settings))
    first = {}
    for spec in specs:
        first[spec.name] = _check(airflow_runner.run_dag(spec.training_dag_id, settings))
        print(f"    gate: {first[spec.name].returns['gate']['reason']}")
    timings["act1_features_and_v1"] = time.monotonic() - t

    t = _step("Act 1: BentoML server, live traffic to every model, monitoring")
    with BentoServer(settings) as url:
        timings["server_start"] = time.monotonic() - t
        act = acts["1_normal"] = {"traffic": traffic(url, settings, specs, requests, seed=1)}
        act["monitoring"] = {spec.name: monitor(spec, settings) for spec in specs}
        for spec in specs:
            if act["monitoring"][spec.name]["drift"]["significant"]:
                raise RuntimeError(f"{spec.name}: normal traffic was judged drifted")
        timings["act1_traffic_and_monitoring"] = time.monotonic() - t

        t = _step(f"Act 2: a concept shift from {shift}; {FIRST_BATCH_DAYS} days land")
        land_simulated_days(config, settings, days_of(shift, (0, FIRST_BATCH_DAYS)))
        _check(airflow_runner.run_dag("feature_pipeline", settings))
        degraded = days_of(shift, DEGRADED_DAYS)
        replayed = {s.name: replay(s, settings, degraded, replay_per_day) for s in labelled_specs}
        act = acts["2_concept_shift"] = {
            "replayed": replayed,
            "psi_of_replayed_days": replay_drift(churn, settings, degraded),
        }
        print(f"    churn PSI of the replayed days: {act['psi_of_replayed_days']}")
        act["monitoring"] = {spec.name: monitor(spec, settings) for spec in specs}
        act["live_quality"] = live_quality_by_day(churn, settings)
        act["retraining"] = run_requested_training(specs, act["monitoring"], settings)
        act["worse_challenger"] = train_worse_challenger(churn, settings)
        print(f"    churn v{act['worse_challenger']}: inverted labels, sent to a live A/B")
        timings["act2_concept_shift"] = time.monotonic() - t

        t = _step("Act 3: the live A/B verdict, then a bad promotion rolled back")
        land_simulated_days(config, settings, days_of(shift, (FIRST_BATCH_DAYS, SHIFT_DAYS)))
        _check(airflow_runner.run_dag("feature_pipeline", settings))
        act = acts["3_verdict_and_rollback"] = {
            "replayed_split": replay(
                churn, settings, days_of(shift, SPLIT_DAYS), replay_per_day,
                ab_mode="split", challenger_weight=0.5,
            ),
        }  # fmt: skip
        act["verdict_run"] = monitor(churn, settings)
        verdict = act["verdict_run"]["ab_verdict"]
        if verdict:
            print(f"    live verdict: {verdict['decision']} ({verdict['test']}, "
                  f"lift {verdict['lift']}, p {verdict['p_value']})")  # fmt: skip
        champion = alias_version(settings, churn.registered_model, CHAMPION)
        worse = acts["2_concept_shift"]["worse_challenger"]
        promote_by_hand(
            settings, churn.registered_model, worse, "demo: an operator overrides the verdict"
        )
        print(f"    operator promotes v{worse} by hand over v{champion}")
        act["promoted_by_hand"] = {"version": worse, "replaced": champion}
        act["replayed_bad_promotion"] = replay(
            churn, settings, days_of(shift, BAD_PROMOTION_DAYS), replay_per_day
        )
        customers_now = active_customers(settings)
        follow = settings.serving.model_refresh_seconds * 3
        # The live server answers with the promoted version before the rollback moves it.
        act["serving_took_promotion_in_seconds"] = wait_for_version(
            url, model_route(churn), int(customers_now[0]), worse, follow
        )
        stop = threading.Event()
        during: dict[str, Any] = {}
        # Paced (about 9 a second): act 4's drift window starts with these calm requests.
        sender = threading.Thread(
            target=lambda: during.update(
                send_predictions(url, customers_now, 50, 3, model_route(churn), stop, 0.1)
            )
        )
        sender.start()
        try:
            act["rollback_run"] = monitor(churn, settings)
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
        act["live_quality"] = live_quality_by_day(churn, settings)
        timings["act3_verdict_and_rollback"] = time.monotonic() - t

        t = _step(f"Act 4: {drift_days} drifted days (spend x2, segment mix) and traffic")
        land_simulated_days(config, settings, days_of(drift_start, (0, drift_days)))
        _check(airflow_runner.run_dag("feature_pipeline", settings))
        act = acts["4_drift"] = {"traffic": traffic(url, settings, specs, requests, seed=2)}
        act["monitoring"] = {spec.name: monitor(spec, settings) for spec in specs}
        act["retraining"] = run_requested_training(specs, act["monitoring"], settings)
        timings["act4_drift"] = time.monotonic() - t

    summary = {
        "timeline": {
            "start": start.isoformat(),
            "concept_shift": shift.isoformat(),
            "drift": drift_start.isoformat(),
            "today": today.isoformat(),
        },
        "acts": acts,
        "models": {spec.name: model_summary(settings, spec) for spec in specs},
        "timings_seconds": {k: round(v, 1) for k, v in timings.items()},
        "total_seconds": round(time.monotonic() - started, 1),
        "summary_path": str(settings.storage.demo_summary_path),
        "how_to": {
            "mlflow_ui": "make mlflow-ui  # then open http://127.0.0.1:5000",
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
            {"version": int(v.version), **{k: v.tags[k] for k in VERSION_TAGS if k in v.tags}}
            for v in versions
        ],
        "retraining_policy": retrain_decisions(spec, settings),
    }


def print_summary(summary: dict[str, Any]) -> None:
    acts = summary["acts"]
    print("\n" + "=" * 72)
    print(f"Demo finished in {summary['total_seconds']} s  (timeline {summary['timeline']})")
    normal = acts["1_normal"]["monitoring"]["churn"]
    print(f"  1. normal: churn labels {normal['labels']} (today's predictions mature in 30 days)")
    shifted = acts["2_concept_shift"]
    psi = shifted["psi_of_replayed_days"]
    calm = sum(v < 0.25 for v in psi.values())
    print(f"  2. concept shift: PSI < 0.25 on {calm} of {len(psi)} churn features: {psi}")
    for day in shifted["live_quality"]:
        print(f"       {day['day']} v{day['version']} {day['variant']}: F1 {day['f1']} "
              f"({day['labelled']} labels)")  # fmt: skip
    churn = shifted["monitoring"]["churn"]
    for alert in churn["alerts"]:
        print(f"     alert: v{alert['model_version']} F1 < {alert['threshold']}: "
              f"{alert['periods']}")  # fmt: skip
    if churn["retrain"]:
        print(f"     retraining: {churn['retrain']['why']} ({churn['retrain']['kind']})")
    for name, gates in shifted["retraining"].items():
        for gate in gates:
            print(f"     {name} v{gate['version']}: {gate['reason']}")
    third = acts["3_verdict_and_rollback"]
    verdict = third["verdict_run"]["ab_verdict"]
    if verdict:
        print(f"  3. live A/B: v{verdict['challenger_version']} vs v{verdict['champion_version']}: "
              f"{verdict['decision']}; {verdict['measure']} {verdict['challenger_value']:.3f} vs "
              f"{verdict['champion_value']:.3f}, lift {verdict['lift']:+.3f} "
              f"[{verdict['ci_low']:+.3f}, {verdict['ci_high']:+.3f}], "
              f"p={verdict['p_value']:.2g} ({verdict['test']}, "
              f"n={verdict['challenger_n']}/{verdict['champion_n']})")  # fmt: skip
    rolled = third["rollback_run"]["rollback"]
    print(f"     promoted by hand: v{third['promoted_by_hand']['version']}; rollback: "
          f"{rolled['reason']}")  # fmt: skip
    print(f"     traffic during the rollback: {third['traffic_during_rollback']['status_codes']}, "
          f"versions {third['traffic_during_rollback']['versions_served']}; serving followed in "
          f"{third.get('serving_followed_in_seconds')} s")  # fmt: skip
    fourth = acts["4_drift"]
    for name, run in fourth["monitoring"].items():
        print(f"  4. drift [{name}]: significant={run['drift']['significant']}, max PSI "
              f"{run['drift']['max_feature_psi']}; retraining: "
              f"{run['retrain']['why'] if run['retrain'] else 'not asked'}")  # fmt: skip
    for name, model in summary["models"].items():
        print(f"  [{name}] aliases {model['aliases']}")
        for v in model["versions"]:
            print(f"     v{v['version']}: {v.get('gate.decision')} - {v.get('gate.reason', '')}")
    print(f"  summary JSON: {summary['summary_path']}")
    for name, how in summary["how_to"].items():
        print(f"  {name}: {how}")
    print("=" * 72)
