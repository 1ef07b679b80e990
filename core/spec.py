"""What a model is, declared: the :class:`ModelSpec` every model of the platform is one of.

A model lives in its own package under ``models/`` (``models/<name>/spec.py`` holds
``SPEC``); :mod:`models.catalog` finds them. Training, the gate, the registry, serving,
monitoring and the DAG factories read everything model-specific from the spec, so adding
a model adds files and edits none. A spec is pure declaration: the callables it names
import their heavy libraries (scikit-learn, the Delta readers) when called, so reading a
spec (Airflow parsing a DAG file, serving building its routes) stays cheap.

:class:`FeatureTable` declares a Delta table a model brings with it, of features or of
labels: the feature pipeline computes it from the raw landed data next to the shared
customer snapshots; the model's Feast definition file reads a feature table, its
``build_labels`` a label table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from core.schema import CUSTOMER, EVENT_TIMESTAMP, EntityKey, EntityKeyDtype, Feature
from core.sources import LandingSource

if TYPE_CHECKING:
    from datetime import datetime

    import pandas as pd

    from core.settings import Settings

Task = Literal["classification", "regression"]
# One entity's key: an int or a string, as its spec's ``entity_key_dtype`` says.
EntityId = int | str

# Metrics each task's evaluation reports (scikit-learn's definitions), and their direction.
METRICS: dict[Task, tuple[str, ...]] = {
    "classification": ("accuracy", "precision", "recall", "f1", "roc_auc"),
    "regression": ("mae", "rmse", "r2"),
}
LOWER_IS_BETTER = frozenset({"mae", "rmse"})


@dataclass(frozen=True)
class FeatureTable:
    """A Delta table computed from raw landed data, one row per entity and day: a model's
    features, or its labels (``features`` empty).

    ``compute(*raw, days, created_at)`` gets one frame per name in ``sources`` (landing
    sources, :mod:`core.sources`; by default the raw orders alone, so
    ``compute(orders, days, created_at)``) and returns the rows of ``days`` (entity key,
    event timestamp, ``partition`` and its values: for features, the created timestamp
    too), stamping a day not over yet with ``created_at``
    (``data.transforms.snapshot_timestamp``); it is pure (no I/O). ``days`` runs to the
    last day of orders. The table lives at ``<state>/delta/<name>``; the feature pipeline
    rewrites it from ``lookback_days`` before the first changed day on (a new table: from
    the first ingested day). A row of day ``d`` that reads days after ``d`` (a label's
    future) changes when any of them does: ``lookback_days`` is how far that future runs.
    """

    name: str
    features: tuple[Feature, ...]
    compute: Callable[..., pd.DataFrame]
    partition: str = "snapshot_date"
    sources: tuple[str, ...] = ("orders",)
    lookback_days: int = 0

    def __post_init__(self) -> None:
        if self.lookback_days < 0:
            raise ValueError(f"{self.name}: lookback_days must be >= 0")


@dataclass(frozen=True)
class Range:
    """A numeric hyperparameter to search: ``int`` or ``float`` in ``[low, high]``."""

    low: float
    high: float
    kind: Literal["int", "float"] = "float"
    log: bool = False  # search on a log scale (learning rates)


@dataclass(frozen=True)
class Choice:
    """A hyperparameter to search among ``values``."""

    values: tuple[Any, ...]


@dataclass(frozen=True)
class ModelSpec:
    """One model of the platform: its data, its estimator, its gate and its monitoring.

    - ``name``: short name; routes (``/models/<name>/predict``), DAG ids
      (``<name>_training_pipeline``, ``<name>_monitoring``) and state folders use it.
    - ``registered_model`` / ``experiment``: its MLflow registered model and the experiment
      of its training runs; its monitoring runs go to ``<experiment>_monitoring``.
    - ``feature_service``: the Feast feature service it is trained and served on;
      ``features`` are that service's features, in the model's input order.
    - ``label`` and ``build_labels(settings)``: the target column and the frame of
      ``entity_key``, ``event_timestamp`` (the observation time), ``label``; plus
      ``label_versions(settings)``, the Delta versions the labels were read from (lineage).
    - ``task`` and ``make_estimator(spec, seed)``: the scikit-learn estimator to fit.
    - ``gate_metric`` and ``min_score``: the first version must reach ``min_score`` on
      ``gate_metric`` (at most, for a lower-is-better metric such as RMSE); later versions
      must beat the champion on it, on the same holdout.
    - ``training_suite``: the Great Expectations suite the training set must pass; its
      feature expectations are derived from ``features``.
    - ``psi_moderate`` / ``psi_significant``: the drift grades of its features.
    - ``feature_tables`` / ``label_tables``: Delta tables of features and of labels this
      model brings (computed by the feature pipeline for every spec); ``build_labels``
      reads a label table.
    - ``outcomes(keys, settings, as_of)``: the live labels of logged predictions. ``keys``
      holds ``customer_id`` and ``predicted_at``; the result adds ``label`` for the
      predictions whose outcome is known at ``as_of`` (the monitoring run's time: the
      horizon has passed and its data has landed),
      and leaves the others out: a label not due yet is absent, never a negative.
    - ``live_threshold``, ``alert_periods``, ``min_period_labels``: performance drift. When
      ``gate_metric`` on matured live labels is worse than ``live_threshold`` for
      ``alert_periods`` consecutive periods, the alert fires; a period with fewer than
      ``min_period_labels`` labels neither counts nor breaks the streak. No threshold: no
      performance alert.
    - ``rollback_margin`` / ``rollback_periods``: automatic rollback. When the champion's
      live gate metric is worse than the previous champion's measured live metric by
      more than the margin in each of its last ``rollback_periods`` scored periods,
      ``champion`` moves back (None: never automatically).
    - ``retrain_cooldown_hours`` / ``retrain_cadence_days``: the retraining policy. No
      second retrain is accepted within the cool-down of an accepted one; the cadence
      (None: no schedule) asks for a retrain that often, through the same policy.
    - ``gate_min_absolute_change`` / ``gate_min_relative_change``: how much better than the
      champion a version must be on the gate metric, checked by MLflow's
      ``validate_evaluation_results`` (``MetricThreshold``); ``min_score`` is its
      ``threshold`` for a first version.
    - ``search_space``: the estimator's parameters (``set_params`` names) and the
      :class:`Range` or :class:`Choice` an opt-in search (``churn tune``) explores.
    - ``segment_by``: a categorical feature whose values split the holdout evaluation
      (``segment.<value>.<metric>`` on the training run); None: no per-segment view.
    - ``entity``: the entity the model predicts for (:class:`core.schema.EntityKey`, default
      the shop's customer), from which its Feast entity is derived; ``entity_key``,
      ``entity_key_dtype`` and ``entity_key_pattern`` read its join key, ``int64`` or
      ``string`` type and pattern. Where its entities are listed is not declared again:
      they are the keys of the tables behind its feature service's views
      (``data.entities``), checked against the declaration. The API's request and answer
      name the key ``entity_key`` (its batch request ``<entity_key>s``) and type it by
      ``entity_key_dtype``: an integer within ``core.schema``'s ENTITY_ID bounds, or a
      non-empty string of at most ENTITY_STRING_MAX_LENGTH characters that, when
      ``entity_key_pattern`` is set, matches that regular expression.
    - ``sources``: landing sources this model brings (:class:`core.sources.LandingSource`:
      a file prefix, a suite and a Delta table each), next to the platform's orders.
    """

    name: str
    description: str
    registered_model: str
    experiment: str
    feature_service: str
    features: tuple[Feature, ...]
    task: Task
    label: str
    build_labels: Callable[[Settings], pd.DataFrame]
    label_versions: Callable[[Settings], dict[str, int]]
    make_estimator: Callable[[ModelSpec, int], Any]
    gate_metric: str
    min_score: float
    output: str  # the served answer's field name, e.g. "churn" or "spend_next_30d"
    training_suite: str  # expectations/suites/<training_suite>.json, checked before fitting
    psi_moderate: float = 0.1
    psi_significant: float = 0.25
    holdout_days: int = 28
    entity: EntityKey = CUSTOMER
    feature_tables: tuple[FeatureTable, ...] = field(default=())
    label_tables: tuple[FeatureTable, ...] = field(default=())
    sources: tuple[LandingSource, ...] = field(default=())
    outcomes: Callable[[pd.DataFrame, Settings, datetime], pd.DataFrame] | None = None
    live_threshold: float | None = None
    alert_periods: int = 3
    min_period_labels: int = 30
    rollback_margin: float | None = None
    rollback_periods: int = 3
    retrain_cooldown_hours: float = 24.0
    retrain_cadence_days: int | None = None
    tags: tuple[str, ...] = ()
    serves_default_routes: bool = False  # /predict and /predict/batch answer with this model
    segment_by: str | None = None  # a categorical feature: holdout metrics per value
    # The gate's MLflow MetricThreshold against the champion: at least this much better
    # (absolute; a tie is no improvement), and, when set, this share of the champion's score.
    gate_min_absolute_change: float = 1e-9
    gate_min_relative_change: float | None = None
    # Opt-in hyperparameter search: estimator parameter (``set_params`` name) -> its range.
    search_space: dict[str, Range | Choice] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.segment_by is not None and self.segment_by not in self.categorical_features:
            raise ValueError(
                f"{self.name}: segment_by {self.segment_by!r} is not one of its categorical "
                f"features {list(self.categorical_features)}"
            )
        if self.gate_metric not in METRICS[self.task]:
            raise ValueError(
                f"{self.name}: gate_metric {self.gate_metric!r} is not one of the "
                f"{self.task} metrics {METRICS[self.task]}"
            )
        if not 0 < self.psi_moderate < self.psi_significant:
            raise ValueError(f"{self.name}: need 0 < psi_moderate < psi_significant")
        if self.alert_periods < 1 or self.min_period_labels < 1:
            raise ValueError(f"{self.name}: alert_periods and min_period_labels must be >= 1")
        if not self.name.isidentifier():
            raise ValueError(f"{self.name!r}: a model name must be a Python identifier")

    @property
    def entity_key(self) -> str:
        """The join key of the model's entity: the name of its id everywhere."""
        return self.entity.join_key

    @property
    def entity_key_dtype(self) -> EntityKeyDtype:
        return self.entity.dtype

    @property
    def entity_key_pattern(self) -> str | None:
        return self.entity.pattern

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def numeric_features(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.kind == "numeric")

    @property
    def categorical_features(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.kind == "categorical")

    @property
    def monitoring_experiment(self) -> str:
        """The MLflow experiment of its live-quality runs, apart from the training runs."""
        return f"{self.experiment}_monitoring"

    @property
    def training_dag_id(self) -> str:
        """The id of this model's training DAG (dags/training_pipeline_dag.py)."""
        return f"{self.name}_training_pipeline"

    @property
    def monitoring_dag_id(self) -> str:
        """The id of this model's monitoring DAG (dags/monitoring_dag.py)."""
        return f"{self.name}_monitoring"

    @property
    def deploy_dag_id(self) -> str:
        """The id of this model's deploy DAG (dags/deploy_dag.py)."""
        return f"{self.name}_deploy"

    @property
    def batch_scoring_dag_id(self) -> str:
        """The id of this model's batch scoring DAG (dags/batch_scoring_dag.py)."""
        return f"{self.name}_batch_scoring"

    @property
    def greater_is_better(self) -> bool:
        """Whether a higher ``gate_metric`` is a better model."""
        return self.gate_metric not in LOWER_IS_BETTER

    @property
    def output_columns(self) -> tuple[str, ...]:
        """The model outputs logged with each prediction and compared by monitoring."""
        return ("probability", "prediction") if self.task == "classification" else ("prediction",)

    @property
    def label_columns(self) -> tuple[str, str, str]:
        """The columns ``build_labels`` returns."""
        return (self.entity_key, EVENT_TIMESTAMP, self.label)

    def beats(self, score: float, other: float) -> bool:
        """Whether ``score`` is strictly better than ``other`` on the gate metric."""
        return score > other if self.greater_is_better else score < other

    def minimum(self, settings: Settings) -> float:
        """``min_score``, or the deployment's replacement (``CHURN_GATE_MIN_SCORES``)."""
        return settings.gate_min_scores.get(self.name, self.min_score)

    def worse_than(self, score: float, threshold: float) -> bool:
        """Whether ``score`` is strictly worse than ``threshold`` on the gate metric."""
        return score < threshold if self.greater_is_better else score > threshold

    def reaches(self, score: float, minimum: float) -> bool:
        """Whether a first version's ``score`` reaches ``minimum``."""
        return score >= minimum if self.greater_is_better else score <= minimum
