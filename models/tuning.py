"""Opt-in hyperparameter search: Optuna over the spec's ``search_space``, tracked in MLflow.

One parent run (``tune-<model>-<run>``) holds one child run per trial: its parameters and
its score on a validation slice, the last ``VALIDATION_SHARE`` of the training rows in time
(the holdout stays untouched: it judges the gate). Optuna's TPE sampler, seeded, proposes
the trials; the budget is a number of trials and a number of seconds, whichever ends
first. The best trial's parameters are then trained on the whole training set by
:func:`models.training.train_and_log`, which logs the model run the registry and the
gate take as they take any other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import mlflow
import optuna
import pandas as pd

from core.locks import training_lock
from core.schema import EVENT_TIMESTAMP, model_input
from core.settings import Settings
from core.spec import Choice, ModelSpec, Range
from core.steps import TrainedModel, TrainingSet
from models.tracking import configure_mlflow
from models.training import evaluate, train_and_log

log = logging.getLogger(__name__)
VALIDATION_SHARE = 0.2


@dataclass(frozen=True)
class TuningResult:
    """The search's parent run, its trials and the model trained with the best parameters."""

    parent_run_id: str
    trials: int
    best_params: dict[str, Any]
    best_score: float
    metric: str
    trained: TrainedModel
    trial_scores: list[float] = field(default_factory=list)


def suggest(trial: optuna.Trial, name: str, space: Range | Choice) -> Any:
    """Optuna's suggestion for one parameter of the spec's search space."""
    if isinstance(space, Choice):
        return trial.suggest_categorical(name, list(space.values))
    if space.kind == "int":
        return trial.suggest_int(name, int(space.low), int(space.high), log=space.log)
    return trial.suggest_float(name, space.low, space.high, log=space.log)


def split_validation(train: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The earlier rows to fit on, and the last ``VALIDATION_SHARE`` in time to score."""
    ordered = train.sort_values(EVENT_TIMESTAMP, kind="stable")
    cut = int(len(ordered) * (1 - VALIDATION_SHARE))
    return ordered.iloc[:cut], ordered.iloc[cut:]


def tune_and_train(
    spec: ModelSpec,
    training_set: TrainingSet,
    settings: Settings,
    trials: int,
    timeout_seconds: float,
    dag_run_id: str = "manual",
    trigger: dict[str, str] | None = None,
) -> TuningResult:
    """Search the spec's space (module docstring), then train and log the best."""
    if not spec.search_space:
        raise ValueError(f"{spec.name} declares no search_space to tune")
    if trials < 1:
        raise ValueError("tuning needs at least one trial")
    configure_mlflow(settings, spec.experiment)
    fit_rows, valid_rows = split_validation(pd.read_parquet(training_set.train_path))
    direction = "maximize" if spec.greater_is_better else "minimize"
    metric = spec.gate_metric
    study = optuna.create_study(
        direction=direction, sampler=optuna.samplers.TPESampler(seed=settings.random_seed)
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with mlflow.start_run(run_name=f"tune-{spec.name}-{dag_run_id}") as parent:
        mlflow.set_tags(
            {
                "tuning.model": spec.name,
                "tuning.metric": metric,
                "tuning.direction": direction,
                "tuning.sampler": "optuna.TPESampler",
            }
        )
        mlflow.log_params(
            {
                "tuning.trials_budget": trials,
                "tuning.timeout_seconds": timeout_seconds,
                "tuning.fit_rows": len(fit_rows),
                "tuning.validation_rows": len(valid_rows),
            }
        )

        def objective(trial: optuna.Trial) -> float:
            params = {
                name: suggest(trial, name, space) for name, space in spec.search_space.items()
            }
            with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
                model = spec.make_estimator(spec, settings.random_seed).set_params(**params)
                model.fit(model_input(fit_rows, spec.features), fit_rows[spec.label])
                score = evaluate(spec, model, valid_rows)[metric]
                mlflow.log_params({**params, "tuning.trial": trial.number})
                mlflow.log_metric(f"validation_{metric}", score)
            return score

        study.optimize(objective, n_trials=trials, timeout=timeout_seconds)
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        best = study.best_trial
        mlflow.log_metric(f"best_validation_{metric}", best.value)
        mlflow.log_params({f"best.{k}": v for k, v in best.params.items()})
        log.info(
            "%s: best of %d trials: %s %.4f %s",
            spec.name,
            len(done),
            metric,
            best.value,
            best.params,
        )
    trained = train_and_log(
        spec, training_set, settings, dag_run_id=dag_run_id, trigger=trigger,
        params=best.params,
        tags={"tuning.parent_run_id": parent.info.run_id, "tuning.best_trial": str(best.number)},
    )  # fmt: skip
    configure_mlflow(settings).set_tag(parent.info.run_id, "tuning.trained_run_id", trained.run_id)
    return TuningResult(
        parent_run_id=parent.info.run_id,
        trials=len(done),
        best_params=dict(best.params),
        best_score=float(best.value),
        metric=metric,
        trained=trained,
        trial_scores=[float(t.value) for t in done],
    )


def train_model(
    spec: ModelSpec,
    training_set: TrainingSet,
    settings: Settings,
    dag_run_id: str = "manual",
    trigger: dict[str, str] | None = None,
) -> TrainedModel:
    """The training step: the spec's estimator as declared, or, with
    ``CHURN_TUNE_TRIALS`` > 0 and a search space, the best of a search first. Under the
    model's training lock, like every step of its pipeline."""
    with training_lock(settings, spec.name):
        if settings.tune_trials > 0 and spec.search_space:
            return tune_and_train(
                spec, training_set, settings, settings.tune_trials, settings.tune_timeout_seconds,
                dag_run_id=dag_run_id, trigger=trigger,
            ).trained  # fmt: skip
        return train_and_log(spec, training_set, settings, dag_run_id=dag_run_id, trigger=trigger)
