"""Rebuild a registered version from its lineage and say whether it is the same model.

``churn reproduce <model> <version>`` (``make reproduce``) reads the version's training run:

1. **Data**: every Delta table the run read (``lineage.delta.<table>_version``) is copied
   as of that version (Delta time travel) into a scratch state folder, whatever has landed
   since.
2. **Code**: the recorded commit (``lineage.git_commit``): this checkout when it is that
   commit, else a ``git worktree`` of it. That code applies the feature definitions to a
   scratch Feast registry and builds the training set through the feature service the run
   used (``lineage.feature_service``), then fits the spec's estimator with the run's
   parameters (a tuned run's ``estimator.*``) and seed, in a process of its own.
3. **Compare** with what was recorded: the training set's hash (``lineage.training_set_hash``)
   and row counts, the holdout metrics within :data:`METRIC_TOLERANCE`, and the
   predictions of the rebuilt model against the registered version's on the rebuilt
   holdout within :data:`PREDICTION_TOLERANCE`.

Nothing is registered or logged; the report names each difference.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from deltalake import DeltaTable, write_deltalake

from core.schema import model_input
from core.settings import PROJECT_ROOT, Settings
from core.spec import METRICS, ModelSpec
from models.registry import load_version
from models.tracking import configure_mlflow

# Same data, code, parameters and seed give the same floating-point model here; the
# tolerances leave room only for a different BLAS or CPU rounding the last bits.
METRIC_TOLERANCE = 1e-6
PREDICTION_TOLERANCE = 1e-6
# Settings that would point the rebuild at shared servers: it works on scratch state only.
SERVER_SETTINGS = ("CHURN_POSTGRES_URL", "CHURN_REDIS_URL", "CHURN_MLFLOW_SERVER_URI")


class RebuildFailed(RuntimeError):
    """The recorded code could not rebuild the training set from the recorded data."""


@dataclass(frozen=True)
class Rebuilt:
    """What the recorded code rebuilt: the training set, the refitted model's figures."""

    train_rows: int
    holdout_rows: int
    training_set_hash: str
    metrics: dict[str, float]
    holdout_path: str
    predictions_path: str


@dataclass(frozen=True)
class Reproduction:
    """Match or mismatch of a rebuilt version, and what differs."""

    model: str
    version: int
    run_id: str
    matched: bool
    differences: list[str]
    code: str  # "this checkout" or "worktree of <commit>"
    commit: str
    data_versions: dict[str, int]
    recorded: dict[str, Any] = field(default_factory=dict)
    rebuilt: dict[str, Any] = field(default_factory=dict)
    max_prediction_diff: float | None = None
    metric_tolerance: float = METRIC_TOLERANCE
    prediction_tolerance: float = PREDICTION_TOLERANCE


def copy_as_of(source: Path, target: Path, version: int) -> None:
    """The Delta table at ``source`` as of ``version`` (time travel), written to ``target``."""
    table = DeltaTable(str(source), version=version)
    partitions = table.metadata().partition_columns
    write_deltalake(str(target), table.to_pyarrow_table(), partition_by=partitions or None)


def recorded_lineage(settings: Settings, spec: ModelSpec, version: int) -> dict[str, Any]:
    """The lineage, parameters and metrics of ``version``'s training run."""
    client = configure_mlflow(settings)
    run_id = client.get_model_version(spec.registered_model, str(version)).run_id
    run = client.get_run(run_id)
    tags, params = run.data.tags, run.data.params
    prefix, suffix = "lineage.delta.", "_version"
    tables = {
        key[len(prefix) : -len(suffix)]: int(value)
        for key, value in tags.items()
        if key.startswith(prefix) and key.endswith(suffix)
    }
    return {
        "run_id": run_id,
        "tables": tables,
        "feature_service": tags.get("lineage.feature_service", spec.feature_service),
        "commit": tags.get("lineage.git_commit", "unknown"),
        "hash": tags.get("lineage.training_set_hash"),
        "train_rows": int(params["train_rows"]),
        "holdout_rows": int(params["holdout_rows"]),
        "seed": int(params.get("random_seed", settings.random_seed)),
        "params": {
            k.removeprefix("estimator."): json.loads(v) if _is_json(v) else v
            for k, v in params.items()
            if k.startswith("estimator.")
        },
        "metrics": {m: run.data.metrics[m] for m in METRICS[spec.task] if m in run.data.metrics},
    }


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def code_tree(commit: str, scratch: Path) -> tuple[Path, str]:
    """The source tree of ``commit``: this checkout when it is at that commit, else a
    detached worktree of it (under ``scratch``)."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True
    ).stdout.strip()
    if commit in ("unknown", head):
        return PROJECT_ROOT, "this checkout"
    tree = scratch / "code"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(tree), commit],
        cwd=PROJECT_ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return tree, f"worktree of {commit[:12]}"


def reproduce_version(spec: ModelSpec, version: int, settings: Settings) -> Reproduction:
    """Rebuild ``version`` of ``spec`` from its lineage and compare (module docstring)."""
    recorded = recorded_lineage(settings, spec, version)
    scratch = Path(tempfile.mkdtemp(prefix=f"reproduce-{spec.name}-v{version}-"))
    tree: Path | None = None
    try:
        state = scratch / "state"
        for table, table_version in recorded["tables"].items():
            copy_as_of(
                settings.storage.delta_table_path(table),
                state / "delta" / table,
                table_version,
            )
        tree, code = code_tree(recorded["commit"], scratch)
        try:
            rebuilt: Rebuilt | None = run_rebuild(spec, recorded, state, tree)
        except RebuildFailed as failed:  # the recorded data no longer builds: say why
            rebuilt, differences, max_diff = None, [str(failed)], None
        else:
            differences, max_diff = compare(spec, version, settings, recorded, rebuilt)
    finally:
        if tree is not None and tree != PROJECT_ROOT:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)],
                cwd=PROJECT_ROOT, capture_output=True,
            )  # fmt: skip
        shutil.rmtree(scratch, ignore_errors=True)
    return Reproduction(
        model=spec.name,
        version=version,
        run_id=recorded["run_id"],
        matched=not differences,
        differences=differences,
        code=code,
        commit=recorded["commit"],
        data_versions=recorded["tables"],
        recorded={k: recorded[k] for k in ("hash", "train_rows", "holdout_rows", "metrics")},
        rebuilt={}
        if rebuilt is None
        else {
            "hash": rebuilt.training_set_hash,
            "train_rows": rebuilt.train_rows,
            "holdout_rows": rebuilt.holdout_rows,
            "metrics": rebuilt.metrics,
        },
        max_prediction_diff=max_diff,
    )


def run_rebuild(spec: ModelSpec, recorded: dict[str, Any], state: Path, tree: Path) -> Rebuilt:
    """Run :func:`rebuild_main` with the recorded code on the scratch state, in a process of
    its own (Feast's definition files read the state folder from the environment)."""
    env = {k: v for k, v in os.environ.items() if k not in SERVER_SETTINGS}
    env |= {
        "CHURN_STATE_DIR": str(state),
        "CHURN_FEATURE_STORE_YAML": str(state / "feature_store.yaml"),
        "PYTHONPATH": str(tree),
    }
    request = {"model": spec.name, "seed": recorded["seed"], "params": recorded["params"]}
    done = subprocess.run(
        [sys.executable, "-c", "from models.reproduce import rebuild_main; rebuild_main()"],
        input=json.dumps(request), cwd=tree, env=env, capture_output=True, text=True,
        timeout=1800,
    )  # fmt: skip
    if done.returncode != 0:
        raise RebuildFailed(f"the rebuild failed: {(done.stdout + done.stderr)[-2000:]}")
    return Rebuilt(**json.loads(done.stdout.strip().splitlines()[-1]))


def rebuild_main() -> None:
    """In the rebuild's process: apply, build the training set, refit, score the holdout.
    Reads the request (model, seed, params) on stdin, prints a :class:`Rebuilt` as JSON."""
    import warnings

    warnings.simplefilter("ignore")
    from core.settings import get_settings
    from data.store import apply_feature_definitions
    from models.catalog import get_spec
    from models.training import build_training_set, evaluate, training_set_hash

    request = json.loads(sys.stdin.read())
    settings = get_settings()
    spec = get_spec(request["model"])
    apply_feature_definitions(settings)
    built = build_training_set(spec, settings, run_name="reproduce")
    train, holdout = pd.read_parquet(built.train_path), pd.read_parquet(built.holdout_path)
    model = spec.make_estimator(spec, request["seed"])
    if request["params"]:
        model.set_params(**request["params"])
    model.fit(model_input(train, spec.features), train[spec.label])
    scores = _scores(spec, model, holdout)
    predictions = Path(built.holdout_path).with_name("rebuilt_predictions.parquet")
    pd.DataFrame({"score": scores}).to_parquet(predictions, index=False)
    rebuilt = Rebuilt(
        train_rows=len(train),
        holdout_rows=len(holdout),
        training_set_hash=training_set_hash(train, holdout),
        metrics=evaluate(spec, model, holdout),
        holdout_path=built.holdout_path,
        predictions_path=str(predictions),
    )
    print(json.dumps(asdict(rebuilt)))


def _scores(spec: ModelSpec, model: Any, frame: pd.DataFrame) -> np.ndarray:
    """Probabilities (a classifier) or values (a regression) for ``frame``."""
    inputs = model_input(frame, spec.features)[list(spec.feature_names)]
    if spec.task == "classification":
        return model.predict_proba(inputs)[:, 1]
    return model.predict(inputs).astype("float64")


def compare(
    spec: ModelSpec,
    version: int,
    settings: Settings,
    recorded: dict[str, Any],
    rebuilt: Rebuilt,
) -> tuple[list[str], float | None]:
    """The differences between the recorded and the rebuilt version, each named."""
    differences = []
    if recorded["hash"] is None:
        differences.append("the run recorded no training-set hash: cannot compare the data")
    elif recorded["hash"] != rebuilt.training_set_hash:
        differences.append(
            f"training-set hash: recorded {recorded['hash'][:16]}…, rebuilt "
            f"{rebuilt.training_set_hash[:16]}…"
        )
    for rows in ("train_rows", "holdout_rows"):
        if recorded[rows] != getattr(rebuilt, rows):
            differences.append(
                f"{rows}: recorded {recorded[rows]}, rebuilt {getattr(rebuilt, rows)}"
            )
    for metric, value in recorded["metrics"].items():
        again = rebuilt.metrics.get(metric)
        if again is None or not np.isclose(
            value, again, atol=METRIC_TOLERANCE, rtol=0, equal_nan=True
        ):
            differences.append(
                f"metric {metric}: recorded {value:.6f}, rebuilt {again} "
                f"(tolerance {METRIC_TOLERANCE:g})"
            )
    configure_mlflow(settings)
    holdout = pd.read_parquet(rebuilt.holdout_path)
    registered = _scores(spec, load_version(spec.registered_model, version), holdout)
    refit = pd.read_parquet(rebuilt.predictions_path)["score"].to_numpy()
    diff = np.abs(registered - refit)
    max_diff = float(diff.max()) if len(diff) else 0.0
    off = int((diff > PREDICTION_TOLERANCE).sum())
    if off:
        differences.append(
            f"holdout predictions: {off} of {len(diff)} differ from the registered v{version} "
            f"(largest {max_diff:.3g}, tolerance {PREDICTION_TOLERANCE:g})"
        )
    return differences, max_diff
