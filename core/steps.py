"""Typed results that the pipeline steps hand each other.

Every step function takes and returns these (one shape per result, whatever the branch);
only the Airflow tasks convert them to and from XCom's JSON, with :func:`to_xcom` and
:func:`from_xcom` (pydantic's ``TypeAdapter``, which knows dataclasses and datetimes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import TypeAdapter

T = TypeVar("T")


def to_xcom(result: Any) -> dict[str, Any]:
    """A step result as the JSON-able dict an Airflow task returns."""
    return TypeAdapter(type(result)).dump_python(result, mode="json")


def from_xcom(kind: type[T], data: dict[str, Any]) -> T:
    """A step result back from the dict an upstream Airflow task returned."""
    return TypeAdapter(kind).validate_python(data)


# --- feature pipeline --------------------------------------------------------------------------
@dataclass(frozen=True)
class IngestedBatches:
    """What ``ingest`` wrote: the days (ISO dates) of any source, their rows, the versions.

    ``raw_orders_version`` is the orders table's; ``source_versions`` has the table of
    every landing source written in this run (orders included), by source name, and
    ``rows_by_source`` the rows each received (``rows`` is their sum).
    """

    days: list[str]
    rows: int
    raw_orders_version: int | None
    source_versions: dict[str, int] = field(default_factory=dict)
    rows_by_source: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TimeWindow:
    """A closed interval of event times."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class BuiltFeatures:
    """What ``build_features`` wrote; ``window`` is None when no day changed."""

    features_version: int | None
    snapshot_rows: int
    window: TimeWindow | None
    # The models' own tables, features and labels (core.spec.FeatureTable): name -> Delta
    # version (None: not written yet).
    table_versions: dict[str, int | None] = field(default_factory=dict)
    # Tables not computed because a source they read has no data yet: name -> reason.
    skipped_tables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Materialized:
    """What ``materialize`` did: the objects applied and the window written online."""

    applied: list[str]
    window: TimeWindow | None  # None: nothing new, nothing materialized
    views: list[str] = field(default_factory=list)  # the feature views materialized


@dataclass(frozen=True)
class FeaturePipelineRun:
    """The whole feature pipeline run in one process (CLI, tests, benchmarks)."""

    ingested: IngestedBatches
    built: BuiltFeatures
    materialized: Materialized


# --- training pipeline -------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingSet:
    """A point-in-time training set written as train/holdout Parquet, with its lineage."""

    train_path: str
    holdout_path: str
    data_versions: dict[str, int]  # Delta table -> the version read (features and labels)
    train_rows: int
    holdout_rows: int
    label_mean: float  # the churn rate of a classifier, the mean target of a regression
    holdout_start: str
    # Its Great Expectations check: the suite's result file and the Data Docs site, where
    # every landed batch's validation is listed too.
    validation_result_path: str | None = None
    data_docs_path: str | None = None
    validation_summary: str | None = None


@dataclass(frozen=True)
class TrainedModel:
    """A fitted model logged to MLflow: its run, its model URI, its holdout metrics."""

    run_id: str
    model_uri: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class RegisteredVersion:
    """A registered model version (alias ``challenger``)."""

    version: int
    run_id: str


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict on a version, with the figures it compared."""

    version: int
    promoted: bool
    reason: str
    metric: str  # the spec's gate metric
    score: float
    champion_version: int | None
    champion_score: float | None
    awaiting_live_verdict: bool = False  # beat the champion offline; the live verdict decides


@dataclass(frozen=True)
class TrainingRun:
    """The whole training pipeline run in one process (CLI, tests, benchmarks)."""

    training_set: TrainingSet
    trained: TrainedModel
    registered: RegisteredVersion
    gate: GateDecision


@dataclass(frozen=True)
class Rollback:
    """``champion`` moved back: the version it points at now, and the one it left."""

    champion: int
    rolled_back_from: int | None


class DeployOutcome(StrEnum):
    """How one deploy ended. Only ``FAILED`` moves ``champion`` back: the new version was
    tried (a server answered, and served it or had the whole wait to load it) and failed."""

    DEPLOYED = "deployed"  # the new champion serves and passed the smoke test
    FAILED = "failed"  # tried and failed: rolled back, champion moved back
    NOTHING_SERVING = "nothing_serving"  # no server to try it on: champion left as it is
    NO_CHAMPION = "no_champion"  # the model has no champion to deploy


@dataclass(frozen=True)
class DeployResult:
    """One rollout of a model's champion to serving, and how it ended.

    ``time_to_production_seconds`` runs from the promotion (the version's
    ``champion.since`` tag) to the first smoke-tested answer of the new version.
    """

    model: str
    version: int | None  # the champion this deploy rolled out (None: there is none)
    target: str  # "local" or "kubernetes"
    deployed: bool
    outcome: DeployOutcome
    reason: str
    serving_url: str
    promoted_at: str | None = None
    served_at: str | None = None
    time_to_production_seconds: float | None = None
    restored_version: int | None = None  # champion moved back to it after a failure
    helm_revision: int | None = None
    # The entity key the smoke test predicted for (an int or a string, as the spec's key).
    smoke_entity: int | str | None = None
