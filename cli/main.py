"""``churn``: the command line behind the make targets.

``land``, ``features``, ``train`` and ``monitor`` run the pipelines on your own data
without Airflow: they call the same functions as the DAGs' tasks, in this process.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from datetime import date

from core import clock
from core.settings import get_settings

MODEL_HELP = "a model spec's name (models/<name>/spec.py); default: the /predict model"


def _demo(args: argparse.Namespace) -> None:
    # The libraries' deprecation chatter would bury the demo's own report.
    warnings.simplefilter("ignore")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # The DAGs run in this process: their INFO lines (task logs of `make airflow`) would
    # bury the demo's own report on the console.
    os.environ.setdefault("CHURN_AIRFLOW_LOG_LEVEL", "WARNING")
    from cli.demo import run_demo
    from serving.server import PortBusy

    try:
        run_demo(
            get_settings(),
            customers=args.customers,
            days=args.days,
            requests=args.requests,
            replay_per_day=args.replay_per_day,
            quiet=True,
        )
    except PortBusy as busy:
        sys.exit(f"churn demo: {busy}")


def _feast_config(_: argparse.Namespace) -> None:
    import shlex

    from core.settings import FEATURE_REPO_DIR
    from data.store import ensure_duckdb_delta_extension, write_feature_store_yaml

    path = write_feature_store_yaml(get_settings())
    ensure_duckdb_delta_extension()
    # The Feast CLI looks in the repo; a file written elsewhere (CHURN_FEATURE_STORE_YAML)
    # has to be named on its command line.
    command = ["feast", "plan"]
    if path != FEATURE_REPO_DIR / "feature_store.yaml":
        command[1:1] = ["--feature-store-yaml", str(path)]
    print(f"wrote {path}; the Feast CLI works on feature_repo/ now, e.g.:")
    print(f"  cd feature_repo && {shlex.join(command)}")


def _airflow(args: argparse.Namespace) -> None:
    from cli import airflow_runner

    settings = get_settings()
    if args.action == "stop":
        stopped = airflow_runner.stop_airflow(settings)
        print(f"airflow stop: {stopped.summary()}")
        if stopped.report.survivors:
            sys.exit("airflow stop: some processes could not be stopped (see above)")
        return
    url = airflow_runner.start_airflow(settings)
    password = airflow_runner.airflow_password(settings)
    print(f"Airflow UI: {url}  (user: admin, password: {password})")
    print(f"Logs: {settings.airflow_home / 'logs'}; stop with `make airflow-stop`.")
    print(
        "The <model>_deploy DAGs smoke-test a running server: start `make serve` beside "
        "(else they end skipped, 'nothing serving', and champion stays)."
    )


def _serve(_: argparse.Namespace) -> None:
    from serving.lifeline import SUPERVISOR_VARIABLE
    from serving.server import PortBusy, ensure_port_free, serve_command, server_env

    settings = get_settings()
    try:
        ensure_port_free(settings.serving.host, settings.serving.port)
    except PortBusy as busy:
        sys.exit(f"churn serve: {busy}")
    command = serve_command(settings)
    # This process becomes `bentoml serve` (execve keeps the pid): its workers' supervisor.
    env = {**os.environ, **server_env(settings), SUPERVISOR_VARIABLE: str(os.getpid())}
    os.execve(command[0], command, env)


def _mlflow_ui(_: argparse.Namespace) -> None:
    from cli.operator_uis import MLFLOW_ADMIN, mlflow_admin_password, mlflow_ui
    from models.catalog import load_specs
    from models.tracking import configure_mlflow, experiment_links

    settings = get_settings()
    configure_mlflow(settings)
    server = mlflow_ui(settings)
    print(
        f"MLflow UI: {server.url}  (user: {MLFLOW_ADMIN}, password: "
        f"{mlflow_admin_password(settings)}; MLflow's basic-auth app: every request needs a "
        "login, users the admin adds can read)"
    )
    # MLflow's UI opens a new browser in its GenAI mode: these links open on the runs.
    for what, link in experiment_links(settings, load_specs(), server.url):
        print(f"{what}: {link}")
    sys.stdout.flush()
    os.execve(server.command[0], server.command, {**os.environ, **server.env})


def _evidently_ui(args: argparse.Namespace) -> None:
    from cli.operator_uis import evidently_ui

    server = evidently_ui(get_settings(), args.port)
    print(
        f"Evidently UI: {server.url}  (read-only without the write secret in "
        "$CHURN_STATE_DIR/credentials/evidently-ui-secret, sent as header evidently-secret)",
        flush=True,
    )
    os.execve(server.command[0], server.command, {**os.environ, **server.env})


def _parity(args: argparse.Namespace) -> None:
    from data.parity import check_parity
    from models.catalog import get_spec, load_specs

    specs = [get_spec(args.model)] if args.model else load_specs()
    failed = False
    for spec in specs:
        report = check_parity(get_settings(), spec.feature_service, sample=args.sample)
        print(f"{spec.name} ({spec.feature_service}): {report.summary()}")
        failed |= not report.ok
    if failed:
        sys.exit(1)


def _land(args: argparse.Namespace) -> None:
    from data.landing import land_files
    from models.catalog import landing_sources

    sources = landing_sources()
    source = next((s for s in sources if s.name == args.source), None)
    report = land_files(args.files, get_settings(), day=args.day, source=source, sources=sources)
    for landed in report.landed:
        print(landed.line())
    if report.refused:
        lines = [refused.line() for refused in report.refused]
        sys.exit("\n".join([*lines, f"not all landed: {report.summary()}"]))
    print(f"{report.summary()}; validate and ingest with `churn features` (or `make features`)")


def _features(_: argparse.Namespace) -> None:
    from core.sources import ORDERS
    from data.pipeline import BatchesRefused
    from data.store import FeastApplyFailed, MaterializationFailed
    from models.catalog import landing_sources
    from models.feature_pipeline import run_feature_pipeline

    try:
        result = run_feature_pipeline(get_settings())
    except BatchesRefused as refused:
        sys.exit(str(refused))
    except (FeastApplyFailed, MaterializationFailed) as failed:
        sys.exit(f"features written to Delta, but the online store was not updated: {failed}")
    ingested, built = result.ingested, result.built
    if not ingested.days:
        print("no batch in the landing area: nothing ingested, features unchanged")
        return
    days = ingested.days
    sources = {source.name: source for source in landing_sources()}
    counts = " and ".join(
        sources[name].counted(rows) for name, rows in ingested.rows_by_source.items()
    )
    print(f"ingested {counts} for {len(days)} day(s), {days[0]} .. {days[-1]}")
    other_tables = "".join(
        f", {sources[name].table} v{version}"
        for name, version in ingested.source_versions.items()
        if name != ORDERS.name  # its table is named above
    )
    print(
        f"Delta versions: raw_orders v{ingested.raw_orders_version}{other_tables}, "
        f"customer_features v{built.features_version} ({built.snapshot_rows:,} "
        "snapshots)"
        + "".join(f", {name} v{version}" for name, version in built.table_versions.items())
    )
    for table, reason in built.skipped_tables.items():
        print(f"feature table {table} skipped: {reason}")
    if built.window is not None:
        print(f"materialized to the online store up to {built.window.end.isoformat()}")


def _train(args: argparse.Namespace) -> None:
    from expectations.validation import BatchRejected
    from models.catalog import get_spec
    from models.onnx_model import OnnxVerificationError
    from models.promotion import run_training_pipeline
    from models.training import TrainingDataNotReady

    spec = get_spec(args.model)
    settings = get_settings()
    run_name = args.run_name or f"cli-{clock.now(settings):%Y%m%dT%H%M%S}"
    if getattr(args, "trials", None) is not None:  # `churn tune`: the search first
        budget = {"tune_trials": args.trials, "tune_timeout_seconds": args.timeout}
        settings = settings.model_copy(update=budget)
    try:
        done = run_training_pipeline(spec, settings, run_name=run_name)
    except (TrainingDataNotReady, BatchRejected) as error:
        sys.exit(f"not trained: {error}")
    except OnnxVerificationError as error:
        sys.exit(f"trained but not registered: {error}")
    gate = done.gate
    print(f"{spec.registered_model}: registered version {gate.version} (run {done.trained.run_id})")
    print(f"gate: {'promoted to champion' if gate.promoted else 'not promoted'}: {gate.reason}")


def _monitor(args: argparse.Namespace) -> None:
    from models.catalog import get_spec
    from monitoring.check import monitoring_window, run_drift_check

    settings = get_settings()
    window = monitoring_window(settings, clock.now(settings))
    report = run_drift_check(get_spec(args.model), settings, window)
    window = f"{report.window.start:%Y-%m-%d %H:%M} .. {report.window.end:%Y-%m-%d %H:%M} UTC"
    print(f"drift check {window}: {report.reason}")
    if report.html_path:
        print(f"Evidently report: {report.html_path}")
    if report.significant:
        if args.retrain:
            _train(argparse.Namespace(run_name=None, model=args.model))
        else:
            print("drift is significant: retrain with `churn train` (or `churn monitor --retrain`)")


def _rollback(args: argparse.Namespace) -> None:
    from models.catalog import get_spec
    from models.registry import NoRollbackTarget, rollback_champion

    name = get_spec(args.model).registered_model
    try:
        done = rollback_champion(get_settings(), name, args.reason)
    except NoRollbackTarget as error:
        sys.exit(f"not rolled back: {error}")
    print(f"champion is now v{done.champion} (rolled back from v{done.rolled_back_from})")


def _deploy(args: argparse.Namespace) -> None:
    import json
    from dataclasses import asdict

    from models.catalog import get_spec
    from serving.deploy import DeployFailed, deploy_champion

    try:
        result = deploy_champion(get_spec(args.model), get_settings())
    except DeployFailed as failed:
        print(json.dumps(asdict(failed.result), indent=2))
        raise SystemExit(f"deploy failed: {failed.result.reason}") from failed
    print(json.dumps(asdict(result), indent=2))
    if not result.deployed:  # nothing serving, or no champion: nothing was moved back
        raise SystemExit(f"not deployed: {result.reason}")


def _reproduce(args: argparse.Namespace) -> None:
    import json
    from dataclasses import asdict

    from models.catalog import get_spec
    from models.reproduce import reproduce_version

    done = reproduce_version(get_spec(args.model), args.version, get_settings())
    print(json.dumps(asdict(done), indent=2, default=str))
    word = "MATCH" if done.matched else "MISMATCH"
    print(f"{word}: {done.model} v{done.version} rebuilt from its lineage ({done.code})")
    for difference in done.differences:
        print(f"  - {difference}")
    if not done.matched:
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> None:
    from models.catalog import default_model, landing_sources, load_specs

    names = [spec.name for spec in load_specs()]
    one_model = {"default": default_model(), "choices": names, "help": MODEL_HELP}
    parser = argparse.ArgumentParser(prog="churn", description=__doc__)
    commands = parser.add_subparsers(required=True)
    demo = commands.add_parser("demo", help="run the whole loop and print a summary")
    demo.add_argument("--customers", type=int, default=None)
    demo.add_argument("--days", type=int, default=None)
    demo.add_argument("--requests", type=int, default=400)
    demo.add_argument(
        "--replay-per-day", type=int, default=800, help="predictions replayed per past day"
    )
    demo.set_defaults(func=_demo)
    commands.add_parser("feast-config", help="render feature_store.yaml").set_defaults(
        func=_feast_config
    )
    airflow = commands.add_parser("airflow", help="start or stop Airflow (UI on :8080)")
    airflow.add_argument("action", choices=["start", "stop"])
    airflow.set_defaults(func=_airflow)
    commands.add_parser("serve", help="serve the champion with BentoML").set_defaults(func=_serve)
    commands.add_parser("mlflow-ui", help="MLflow UI on :5000").set_defaults(func=_mlflow_ui)
    evidently_ui = commands.add_parser(
        "evidently-ui", help="Evidently UI on :8000 (monitoring dashboards per model)"
    )
    evidently_ui.add_argument("--port", type=int, default=8000)
    evidently_ui.set_defaults(func=_evidently_ui)
    parity = commands.add_parser("parity", help="compare online and offline feature vectors")
    parity.add_argument("--sample", type=int, default=200)
    parity.add_argument(
        "--model", default=None, choices=names, help="one model's feature service (default: all)"
    )
    parity.set_defaults(func=_parity)
    rollback = commands.add_parser("rollback", help="move champion back to the previous one")
    rollback.add_argument("--model", **one_model)
    rollback.add_argument(
        "--reason",
        default="rolled back by hand (churn rollback)",
        help="why, written on both versions (rollback.reason)",
    )
    rollback.set_defaults(func=_rollback)
    deploy = commands.add_parser(
        "deploy", help="roll the champion out to serving and smoke-test it (as the deploy DAG)"
    )
    deploy.add_argument("--model", **one_model)
    deploy.set_defaults(func=_deploy)
    land = commands.add_parser(
        "land",
        help="copy your own batches (Parquet or CSV files, folders of them, glob patterns) into "
        "the landing area; each file lands whole or is refused with its reason",
    )
    land.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="a file of one UTC day of one landing source, a folder (its files) or a quoted "
        "glob pattern such as 'exports/*.csv'",
    )
    land.add_argument(
        "--day",
        type=date.fromisoformat,
        default=None,
        help="the UTC day the files hold, YYYY-MM-DD (default: from names like "
        "orders_YYYY-MM-DD.csv)",
    )
    sources = landing_sources()
    land.add_argument(
        "--source",
        choices=[source.name for source in sources],
        default=None,
        help="the landing source the files are batches of (default: the source whose prefix a "
        "file's name starts with, e.g. orders_...; or the only declared one"
        + (f", {sources[0].name}" if len(sources) == 1 else "")
        + "); a file named as another source's batch is refused, never renamed",
    )
    land.set_defaults(func=_land)
    commands.add_parser(
        "features", help="feature pipeline: validate -> ingest -> features -> materialize"
    ).set_defaults(func=_features)
    train = commands.add_parser(
        "train", help="training pipeline: training set -> train -> register -> gate"
    )
    train.add_argument("--run-name", default=None, help="names the run's folder and MLflow run")
    train.add_argument("--model", **one_model)
    train.set_defaults(func=_train)
    tune = commands.add_parser(
        "tune",
        help="hyperparameter search (Optuna, one MLflow child run per trial), then the best "
        "is trained, registered and gated as `train` does",
    )
    tune.add_argument("--model", **one_model)
    tune.add_argument("--trials", type=int, default=20, help="most trials (default 20)")
    tune.add_argument(
        "--timeout", type=float, default=600.0, help="most seconds of search (default 600)"
    )
    tune.add_argument("--run-name", default=None, help="names the run's folder and MLflow runs")
    tune.set_defaults(func=_train)
    reproduce = commands.add_parser(
        "reproduce",
        help="rebuild a version from its lineage (Delta time travel, feature service, commit) "
        "and compare data, metrics and predictions; registers nothing",
    )
    reproduce.add_argument("model", choices=names, help="a model spec's name")
    reproduce.add_argument("version", type=int, help="the registered version")
    reproduce.set_defaults(func=_reproduce)
    monitor = commands.add_parser("monitor", help="drift check of the logged predictions")
    monitor.add_argument(
        "--retrain", action="store_true", help="run the training pipeline if drift is significant"
    )
    monitor.add_argument("--model", **one_model)
    monitor.set_defaults(func=_monitor)
    args = parser.parse_args(argv)
    from core.locks import LockBusy

    # State written by a command (and by the servers it starts) is its owner's only: files
    # 600, folders 700.
    previous_umask = os.umask(0o077)
    try:
        args.func(args)
    except LockBusy as busy:  # another run of the same pipeline: a message, not a traceback
        sys.exit(f"not run: {busy}")
    finally:
        os.umask(previous_umask)


if __name__ == "__main__":
    main()
