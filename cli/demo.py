"""``make demo``: the closed loop end to end, through the real DAGs, on one machine.

simulate months of orders -> feature_pipeline -> every model's training pipeline (v1) ->
BentoML server -> live predictions for every model -> every model's monitoring (no drift)
-> drifted days and traffic -> feature_pipeline -> monitoring (significant drift, triggers
training) -> the triggered training pipelines (v2, gated) -> summary (printed and written
as JSON), one section per model spec.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np

from cli import airflow_runner
from core.settings import Settings
from core.spec import ModelSpec
from data import delta_tables
from data.simulate import Drift, SimulationConfig, land_simulated_days

STATE_PARTS = (
    "delta", "feast", "mlflow", "serving", "landing", "quarantine", "reports", "gx",
    "training_sets", "tmp", "airflow",
)  # fmt: skip


def reset_state(settings: Settings) -> None:
    """Remove the state the demo writes, so every demo starts from nothing."""
    for part in STATE_PARTS:
        shutil.rmtree(settings.storage.state_dir / part, ignore_errors=True)


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
    url: str, customers: np.ndarray, requests: int, seed: int, route: str = "/predict"
) -> dict[str, Any]:
    """Real HTTP traffic to ``route``: mostly single predictions, every 50th a batch of 20."""
    rng = np.random.default_rng(seed)
    latencies, statuses = [], {}
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(requests):
            if i % 50 == 49:
                ids = [int(c) for c in rng.choice(customers, size=20, replace=False)]
                body, path = {"customer_ids": ids}, f"{route}/batch"
            else:
                body, path = {"customer_id": int(rng.choice(customers))}, route
            started = time.perf_counter()
            response = client.post(path, json=body)
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    return {
        "route": route,
        "requests": requests,
        "status_codes": statuses,
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
    return {
        spec.name: send_predictions(url, customers, requests, seed, model_route(spec))
        for spec in specs
    }


def run_demo(
    settings: Settings,
    customers: int | None = None,
    days: int | None = None,
    drift_days: int = 28,
    requests: int = 400,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run the loop; return (and write) the summary. ``quiet`` hides library warnings."""
    from models.catalog import load_specs
    from serving.server import BentoServer

    specs = load_specs()
    started = time.monotonic()
    customers = customers or settings.simulation.customers
    days = days or settings.simulation.days
    today = datetime.now(UTC).date()
    start = today - timedelta(days=days + drift_days)
    config = SimulationConfig(
        customers=customers,
        start_date=start,
        days=days + drift_days,
        seed=settings.random_seed,
        drift=Drift(start=start + timedelta(days=days)),
    )
    history = [start + timedelta(days=i) for i in range(days)]
    drifted = [start + timedelta(days=days + i) for i in range(drift_days)]
    timings: dict[str, float] = {}

    t = _step(
        f"Reset state in {settings.storage.state_dir}; simulate {days} days, {customers} customers"
    )
    reset_state(settings)
    rows = land_simulated_days(config, settings, history)
    print(f"    landed {len(history)} daily batches, {rows} order events")
    print(f"    models: {', '.join(f'{s.name} ({s.registered_model})' for s in specs)}")
    airflow_runner.migrate_airflow_db(settings)
    if quiet:
        ignore_library_warnings()
    timings["simulate"] = time.monotonic() - t

    t = _step("feature_pipeline: validate -> ingest -> features -> materialize")
    _check(airflow_runner.run_dag("feature_pipeline", settings))
    timings["feature_pipeline"] = time.monotonic() - t

    first: dict[str, airflow_runner.DagRunResult] = {}
    for spec in specs:
        t = _step(f"{spec.training_dag_id}: training set -> train -> register -> gate")
        first[spec.name] = _check(airflow_runner.run_dag(spec.training_dag_id, settings))
        print(f"    gate: {first[spec.name].returns['gate']['reason']}")
        timings[f"training_{spec.name}"] = time.monotonic() - t

    t = _step("Start the BentoML server and send live predictions to every model")
    calm: dict[str, dict] = {}
    drift: dict[str, dict] = {}
    with BentoServer(settings) as url:
        timings["server_start"] = time.monotonic() - t
        baseline_traffic = traffic(url, settings, specs, requests, seed=1)
        for name, sent in baseline_traffic.items():
            print(f"    {name}: {sent}")

        t = _step("monitoring on normal traffic")
        for spec in specs:
            report = _check(airflow_runner.run_dag(spec.monitoring_dag_id, settings))
            calm[spec.name] = report.returns["drift_report"]
            print(f"    {spec.name}: significant drift: {calm[spec.name]['significant']} "
                  f"({calm[spec.name]['reason']})")  # fmt: skip
            queued = airflow_runner.queued_runs(spec.training_dag_id, settings)
            if calm[spec.name]["significant"] or queued:
                raise RuntimeError(
                    f"{spec.name}: normal traffic was judged drifted: the demo's premise is broken"
                )
        timings["monitoring_calm"] = time.monotonic() - t

        t = _step(f"Simulate {drift_days} drifted days (spend x2, segment mix) and traffic")
        land_simulated_days(config, settings, drifted)
        _check(airflow_runner.run_dag("feature_pipeline", settings))
        drift_traffic = traffic(url, settings, specs, requests, seed=2)
        for name, sent in drift_traffic.items():
            print(f"    {name}: {sent}")
        timings["drift_days"] = time.monotonic() - t

        t = _step("monitoring on drifted traffic")
        for spec in specs:
            report = _check(airflow_runner.run_dag(spec.monitoring_dag_id, settings))
            drift[spec.name] = report.returns["drift_report"]
            print(f"    {spec.name}: significant drift: {drift[spec.name]['significant']} "
                  f"({drift[spec.name]['reason']})")  # fmt: skip
        timings["monitoring_drift"] = time.monotonic() - t

    models: dict[str, dict[str, Any]] = {}
    for spec in specs:
        t = _step(f"{spec.training_dag_id}, triggered by monitoring")
        triggered = airflow_runner.queued_runs(spec.training_dag_id, settings)
        runs = [first[spec.name]]
        if triggered:
            runs += [_check(r) for r in airflow_runner.run_queued(spec.training_dag_id, settings)]
            print(f"    gate: {runs[-1].returns['gate']['reason']}")
        else:
            print(f"    {spec.name}: no drift, no retraining")
        timings[f"retraining_{spec.name}"] = time.monotonic() - t
        models[spec.name] = model_summary(
            settings,
            spec,
            gates=[r.returns["gate"] for r in runs],
            metrics=[r.returns["train"]["metrics"] for r in runs],
            calm=calm[spec.name],
            drift=drift[spec.name],
            triggered_run=triggered[0]["run_id"] if triggered else None,
            traffic={
                "baseline": baseline_traffic[spec.name],
                "drifted": drift_traffic[spec.name],
            },
        )

    summary = {
        "models": models,
        "timings_seconds": {k: round(v, 1) for k, v in timings.items()},
        "total_seconds": round(time.monotonic() - started, 1),
        "summary_path": str(settings.storage.demo_summary_path),
        "how_to": {
            "mlflow_ui": "make mlflow-ui  # then open http://127.0.0.1:5000",
            "airflow_ui": "make airflow  # then open http://127.0.0.1:8080 (login printed)",
            "serve": 'make serve  # then POST http://127.0.0.1:3000/predict {"customer_id": 42}',
            "other_models": 'POST http://127.0.0.1:3000/models/<name>/predict {"customer_id": 42}',
        },
    }
    settings.storage.demo_summary_path.parent.mkdir(parents=True, exist_ok=True)
    settings.storage.demo_summary_path.write_text(json.dumps(summary, indent=2, default=str))
    print_summary(summary)
    return summary


def model_summary(settings: Settings, spec: ModelSpec, **parts: Any) -> dict[str, Any]:
    """One model's part of the summary: versions, gate reasons, champion, drift, traffic."""
    from models.registry import CHAMPION, alias_version

    gates, metrics, drift = parts["gates"], parts["metrics"], parts["drift"]
    champion = alias_version(settings, spec.registered_model, CHAMPION)
    champion_gate = next((g for g in reversed(gates) if g["version"] == champion), None)
    by_column = {f["column"]: f for f in drift.get("features", [])}
    return {
        "model_name": spec.registered_model,
        "task": spec.task,
        "gate_metric": spec.gate_metric,
        "versions": [
            {
                "version": g["version"],
                "promoted": g["promoted"],
                "gate_reason": g["reason"],
                # Each version's score on its own holdout (the newest days of its training
                # data): two versions' figures come from different holdouts.
                "own_holdout_score": round(g["score"], 4),
                "metrics": {k: round(v, 4) for k, v in m.items()},
            }
            for g, m in zip(gates, metrics, strict=True)
        ],
        "champion": {
            "version": champion,
            "reason": champion_gate["reason"] if champion_gate else None,
        },
        "same_holdout": same_holdout(gates[-1]),
        "drift": {
            "significant": drift["significant"],
            "reason": drift["reason"],
            "psi_binning": drift.get("psi_binning"),
            "features": drift.get("features"),
            "prediction": drift.get("prediction"),
            "top_drifted": [by_column[c] for c in drift.get("top_drifted", [])],
            "html_report": drift.get("html_path"),
            "json_report": drift.get("json_path"),
            "triggered_training_run": parts["triggered_run"],
        },
        "calm_check": {
            "significant": parts["calm"]["significant"],
            "max_feature_psi": max(
                (f["psi"] for f in parts["calm"].get("features", [])), default=None
            ),
        },
        "traffic": parts["traffic"],
    }


def same_holdout(last_gate: dict[str, Any]) -> dict[str, Any] | None:
    """The last gate's comparison: both versions scored on the newest version's holdout."""
    if last_gate.get("champion_score") is None:
        return None
    return {
        "holdout_of_version": last_gate["version"],
        "metric": last_gate["metric"],
        "scores": {
            str(last_gate["version"]): round(last_gate["score"], 4),
            str(last_gate["champion_version"]): round(last_gate["champion_score"], 4),
        },
    }


def print_summary(summary: dict[str, Any]) -> None:
    print("\n" + "=" * 72)
    print(f"Demo finished in {summary['total_seconds']} s")
    for name, model in summary["models"].items():
        metric = model["gate_metric"]
        print(f"  [{name}] {model['model_name']} ({model['task']}, gate on {metric})")
        for v in model["versions"]:
            verdict = "promoted" if v["promoted"] else "not promoted"
            print(
                f"    v{v['version']}: {metric} {v['own_holdout_score']} on its own holdout, "
                f"{verdict}"
            )
            print(f"        gate: {v['gate_reason']}")
        compared = model["same_holdout"]
        if compared:
            scores = ", ".join(f"v{k} {metric} {x}" for k, x in compared["scores"].items())
            print(
                f"    on one holdout (v{compared['holdout_of_version']}'s, the newest days): "
                f"{scores}"
            )
        champion = model["champion"]
        print(f"    champion: v{champion['version']} ({champion['reason']})")
        drift = model["drift"]
        print(f"    drift: significant={drift['significant']}; top drifted features (PSI):")
        for f in drift["top_drifted"]:
            print(f"        {f['column']:<24} {f['psi']:.3f}  {f['level']}")
        print(f"    drift report: {drift['html_report']}")
    print(f"  summary JSON: {summary['summary_path']}")
    for name, how in summary["how_to"].items():
        print(f"  {name}: {how}")
    print("=" * 72)
