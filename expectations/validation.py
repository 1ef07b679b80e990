"""Validate a raw order-events batch with Great Expectations before it enters the lake.

``validate_raw_orders(batch, settings, batch_name, batch_day=...)`` runs the committed suite
``expectations/suites/raw_orders.json`` through a GX Checkpoint on a file-mode context
rooted at ``settings.storage.gx_dir`` (validation results and Data Docs live there). A
passing batch returns a :class:`ValidationReport`; a failing one is written to
``<quarantine_dir>/<suite>/<batch_name>-<UTC time>/`` (``batch.parquet`` and
``report.json``) and :class:`BatchRejected` is raised, whose message names every failing
expectation and its column.

Design notes:

* "Not in the future" depends on the clock, so the committed suite bounds ``order_timestamp``
  with the suite parameter ``{"$PARAMETER": "validation_time_utc"}`` and each run passes the
  validation time through ``checkpoint.run(expectation_parameters=...)``. The stored suite
  never changes at run time (no per-run copy written to the store, no race between processes)
  and, unlike ``expect_column_max_to_be_between``, the failure counts and shows every
  offending row.
* Entity ids are bounded by :data:`core.schema.ENTITY_ID_MIN` / ``ENTITY_ID_MAX``, the
  bounds the API accepts: every suite gets them as the parameters ``entity_id_min`` and
  ``entity_id_max`` (:data:`ENTITY_ID_PARAMETERS`), so no suite repeats the numbers.
* An order is ingested once: the raw-orders suite refuses the ids passed as
  ``ingested_ids`` (found in the Delta table by ``data.pipeline``, which knows the run's
  other batches), with the same quarantine and report as any other failed expectation.
* A structurally broken batch (missing column, wrong dtype) does not crash: GX catches the
  error of each expectation it cannot evaluate, marks it failed, and the report says why.
* Great Expectations is imported lazily and the context is created on first use, then kept
  for the process (``get_context`` and the suite/checkpoint set-up are the slow part); the
  suite JSON is re-read on every call and re-registered when it changed.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import threading
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import pandas as pd

from core import clock
from core.schema import (
    CUSTOMER_FEATURES,
    ENTITY_ID_MAX,
    ENTITY_ID_MIN,
    Feature,
    feature_expectations,
)

if TYPE_CHECKING:
    from great_expectations.checkpoint import Checkpoint
    from great_expectations.core.expectation_validation_result import (
        ExpectationValidationResult,
    )
    from great_expectations.data_context import AbstractDataContext

    from core.settings import Settings

SUITES_DIR = Path(__file__).resolve().parent / "suites"
RAW_ORDERS_SUITE = "raw_orders"
TRAINING_SET_SUITE = "training_set"
VALIDATION_TIME_PARAMETER = "validation_time_utc"
INGESTED_IDS_PARAMETER = "ingested_ids"
# Every suite may bound an entity id column with these (the schema's one declaration).
ENTITY_ID_PARAMETERS = {"entity_id_min": ENTITY_ID_MIN, "entity_id_max": ENTITY_ID_MAX}
DATA_SOURCE_NAME = "churn_batches"
BATCH_DEFINITION_NAME = "whole_dataframe"
SHOWN_VALUES = 5  # unexpected values quoted per failed expectation
DATA_DOCS_INDEX_LIMIT = 30  # validation results listed on the Data Docs index (latest first)
_MAX_CACHED_CONTEXTS = 8


# --- reports -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FailedExpectation:
    """One expectation the batch did not meet (or that could not be evaluated on it)."""

    expectation: str
    column: str | None
    details: str

    def line(self) -> str:
        where = f"column {self.column!r}" if self.column is not None else "table"
        return f"{self.expectation} on {where}: {self.details}"


@dataclass(frozen=True)
class ValidationReport:
    """Outcome of validating one batch against one suite."""

    suite: str
    batch_name: str
    success: bool
    failures: tuple[FailedExpectation, ...]
    result_path: Path | None
    data_docs_path: Path | None = None
    evaluated: int = 0
    row_count: int | None = None
    validated_at: datetime | None = None

    def summary(self) -> str:
        rows = "?" if self.row_count is None else f"{self.row_count:,}"
        head = f"batch {self.batch_name!r} ({rows} rows) against suite {self.suite!r}"
        if self.success:
            lines = [f"PASSED {head}: all {self.evaluated} expectations met."]
        else:
            lines = [
                f"REJECTED {head}: {len(self.failures)} of {self.evaluated} expectations failed:"
            ]
            lines += [f"  - {failure.line()}" for failure in self.failures]
        if self.result_path is not None:
            lines.append(f"GX validation result: {self.result_path}")
        if self.data_docs_path is not None:
            lines.append(f"Data Docs: {self.data_docs_path}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "batch_name": self.batch_name,
            "success": self.success,
            "evaluated": self.evaluated,
            "row_count": self.row_count,
            "validated_at": self.validated_at.isoformat() if self.validated_at else None,
            "failures": [
                {"expectation": f.expectation, "column": f.column, "details": f.details}
                for f in self.failures
            ],
            "result_path": str(self.result_path) if self.result_path else None,
            "data_docs_path": str(self.data_docs_path) if self.data_docs_path else None,
        }


class BatchRejected(Exception):
    """The batch failed its suite; it was quarantined at :attr:`quarantine_path`."""

    def __init__(self, report: ValidationReport, quarantine_path: Path) -> None:
        super().__init__(f"{report.summary()}\nQuarantined in: {quarantine_path}")
        self.report = report
        self.quarantine_path = quarantine_path


# --- public entry point --------------------------------------------------------------------------
def validate_raw_orders(
    batch: pd.DataFrame,
    settings: Settings,
    batch_name: str,
    *,
    batch_day: date,
    usual_rows: float | None = None,
    build_docs: bool = True,
    ingested_ids: Collection[str] = (),
) -> ValidationReport:
    """Validate one raw order-events batch; return the report or raise :class:`BatchRejected`.

    The orders source's :func:`validate_batch` (suite ``raw_orders``).
    """
    return validate_batch(
        batch,
        settings,
        batch_name,
        suite_name=RAW_ORDERS_SUITE,
        batch_day=batch_day,
        usual_rows=usual_rows,
        build_docs=build_docs,
        ingested_ids=ingested_ids,
    )


def validate_batch(
    batch: pd.DataFrame,
    settings: Settings,
    batch_name: str,
    *,
    suite_name: str,
    batch_day: date,
    usual_rows: float | None = None,
    build_docs: bool = True,
    ingested_ids: Collection[str] = (),
) -> ValidationReport:
    """Validate one landed daily batch against its source's suite (or raise :class:`BatchRejected`).

    ``batch_name`` names the batch in results, Data Docs and the quarantine folder (characters
    other than letters, digits, ``.``, ``_`` and ``-`` become ``_`` in paths). ``usual_rows``
    (the median size of recent batches) bounds the row count: a batch 10x smaller or larger
    is refused. Without it, any non-empty batch passes that check. ``build_docs=False``
    skips rebuilding Data Docs when the batch passes (a refused batch always gets its page).
    ``batch_day`` is the UTC day the batch is named for. ``ingested_ids``: the batch's ids
    that are already ingested elsewhere (see ``data.pipeline.validate_landed_batches``).
    The suite gets the parameters ``validation_time_utc``, ``batch_day_start`` /
    ``batch_day_end``, ``min_rows``, ``max_rows``, ``ingested_ids`` and those of
    :data:`ENTITY_ID_PARAMETERS`, and uses the ones it needs.
    """
    validated_at = clock.now(settings)
    min_rows, max_rows = row_count_bounds(usual_rows)
    day_start, day_end = utc_day_bounds(batch_day)
    return validate_frame(
        batch,
        settings,
        suite_name=suite_name,
        batch_name=batch_name,
        validated_at=validated_at,
        expectation_parameters={
            VALIDATION_TIME_PARAMETER: validated_at.isoformat(),
            "min_rows": min_rows,
            "max_rows": max_rows,
            "batch_day_start": day_start,
            "batch_day_end": day_end,
            INGESTED_IDS_PARAMETER: sorted(ingested_ids),
        },
        build_docs=build_docs,
    )


def utc_day_bounds(day: date) -> tuple[str, str]:
    """``[midnight, next midnight)`` of a UTC day as ISO-8601 strings."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start.isoformat(), (start + timedelta(days=1)).isoformat()


def row_count_bounds(usual_rows: float | None, factor: float = 10.0) -> tuple[int, int | None]:
    """Row counts strictly within ``factor`` of the usual size (at least one row)."""
    if usual_rows is None or usual_rows <= 0:
        return 1, None
    return max(1, math.floor(usual_rows / factor) + 1), math.ceil(usual_rows * factor) - 1


def validate_training_set(
    frame: pd.DataFrame,
    settings: Settings,
    name: str,
    suite_name: str = TRAINING_SET_SUITE,
    features: Sequence[Feature] = CUSTOMER_FEATURES,
) -> ValidationReport:
    """Validate a training set before a model is fitted on it (raises :class:`BatchRejected`).

    ``features`` (the model's) bring their column expectations to a suite that asks for them.
    """
    return validate_frame(
        frame,
        settings,
        suite_name=suite_name,
        batch_name=name,
        validated_at=clock.now(settings),
        expectation_parameters={},
        features=features,
    )


def reject_file(
    path: Path, settings: Settings, check: str, details: str, suite: str = RAW_ORDERS_SUITE
) -> BatchRejected:
    """Quarantine a landed file that is not a batch the suite can judge; return the rejection.

    ``check`` names what the file failed (e.g. "file is readable as Parquet") and
    ``details`` says why, in words a user can act on; ``suite`` is the suite of the source
    the file claims to be (its quarantine folder).
    """
    validated_at = clock.now(settings)
    report = ValidationReport(
        suite=suite,
        batch_name=path.stem,
        success=False,
        failures=(FailedExpectation(expectation=check, column=None, details=details),),
        result_path=None,
        validated_at=validated_at,
    )
    folder = _quarantine_folder(settings, report)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.move(path, folder / path.name)
    _write_report(folder, report, batch={"file": path.name, "note": check})
    return BatchRejected(report, folder)


def reject_unreadable(
    path: Path, error: Exception, settings: Settings, suite: str = RAW_ORDERS_SUITE
) -> BatchRejected:
    """Quarantine a landed file that cannot be parsed; return the rejection to raise."""
    kind = "CSV" if path.suffix.lower() == ".csv" else "Parquet"
    return reject_file(
        path,
        settings,
        check=f"file is readable as {kind}",
        details=f"{type(error).__name__}: {_clip(str(error), 300)}",
        suite=suite,
    )


# --- validation ----------------------------------------------------------------------------------
def validate_frame(
    batch: pd.DataFrame,
    settings: Settings,
    *,
    suite_name: str,
    batch_name: str,
    expectation_parameters: dict[str, Any] | None = None,
    validated_at: datetime | None = None,
    build_docs: bool = True,
    features: Sequence[Feature] = CUSTOMER_FEATURES,
) -> ValidationReport:
    """Validate a frame against the committed suite ``suites/<suite_name>.json``.

    Returns the report when every expectation holds; otherwise the frame is quarantined
    with its report and :class:`BatchRejected` is raised. ``expectation_parameters`` fill
    the suite's ``$PARAMETER`` references, next to :data:`ENTITY_ID_PARAMETERS`, which
    every suite gets; ``features`` are the declared features a suite with
    ``meta.feature_expectations`` derives its column expectations from.
    """
    from great_expectations.core.run_identifier import RunIdentifier

    validated_at = validated_at or clock.now(settings)
    expectation_parameters = {**ENTITY_ID_PARAMETERS, **(expectation_parameters or {})}

    if not isinstance(batch, pd.DataFrame):
        raise TypeError(f"batch must be a pandas DataFrame, not {type(batch).__name__}")
    safe_name = _safe_name(batch_name)

    runtime = _runtime(settings.storage.gx_dir)
    with runtime.lock:
        checkpoint = runtime.checkpoint(suite_name, features)
        result = checkpoint.run(
            batch_parameters={"dataframe": batch},
            expectation_parameters=expectation_parameters,
            run_id=RunIdentifier(run_name=safe_name, run_time=validated_at),
        )
        ((result_id, validation_result),) = result.run_results.items()
        # Rebuilding Data Docs costs as much as validating; a passing batch may skip it
        # (a failing one always gets its page: its refusal points there).
        sites = (
            runtime.context.build_data_docs(resource_identifiers=[result_id])
            if build_docs or not validation_result.success
            else {}
        )
        result_path = _result_file(runtime.context, result_id)

    failures = tuple(
        sorted(
            (_describe_failure(res, batch) for res in validation_result.results if not res.success),
            key=lambda f: (f.column is not None, str(f.column), f.expectation),
        )
    )
    report = ValidationReport(
        suite=suite_name,
        batch_name=batch_name,
        success=bool(validation_result.success) and not failures,
        failures=failures,
        result_path=result_path,
        data_docs_path=_docs_index(sites),
        evaluated=len(validation_result.results),
        row_count=len(batch),
        validated_at=validated_at,
    )
    if report.success:
        return report
    folder = _quarantine_folder(settings, report)
    _quarantine(batch, report, validation_result.to_json_dict(), folder)
    raise BatchRejected(report, folder)


def _safe_name(batch_name: str) -> str:
    if not isinstance(batch_name, str) or not batch_name.strip():
        raise ValueError("batch_name must be a non-empty string")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", batch_name.strip()).strip("._") or "batch"


def _result_file(context: AbstractDataContext, result_id: Any) -> Path | None:
    backend = context.validation_results_store.store_backend
    try:
        url = backend.get_url_for_key(result_id.to_tuple())
    except Exception:  # a store without files (e.g. in memory) has no path to show
        return None
    path = Path(unquote(urlsplit(url).path))
    return path if path.exists() else None


def _docs_index(sites: dict[str, str]) -> Path | None:
    url = sites.get("local_site") or next(iter(sites.values()), None)
    if not url:
        return None
    path = Path(unquote(urlsplit(url).path))
    return path if path.exists() else None


# --- readable failures ---------------------------------------------------------------------------
def _describe_failure(res: ExpectationValidationResult, batch: pd.DataFrame) -> FailedExpectation:
    config = res.expectation_config
    kwargs = dict(config.kwargs) if config is not None else {}
    name = config.type if config is not None else "unknown expectation"
    column = kwargs.get("column")
    naive = column in batch.columns and _is_naive_datetime(batch[column])
    errors = _exception_messages(res.exception_info)
    if errors:
        if column is not None and column not in batch.columns:
            observed = f"not evaluated: column {column!r} is not in the batch"
        elif naive:  # pandas' own words ("Invalid comparison ...") don't say what is wrong
            observed = "not evaluated: its timestamps have no timezone"
        else:
            observed = f"not evaluated: {errors[0]}"
    elif naive and name == "expect_column_values_to_be_of_type":
        observed = f"its timestamps have no timezone (dtype {batch[column].dtype})"
    else:
        observed = _observed(name, res.result or {})
    expected = _expected(name, kwargs)
    details = f"{expected}; {observed}" if expected else observed
    # A suite may say how to fix a failure in the expectation's meta (``hint``).
    hint = (config.meta or {}).get("hint") if config is not None else None
    if hint:
        details += f". How to fix: {hint}"
    return FailedExpectation(expectation=name, column=column, details=details)


def _is_naive_datetime(values: pd.Series | pd.DataFrame) -> bool:
    # A duplicated column label selects a DataFrame: that is a different failure.
    return (
        isinstance(values, pd.Series)
        and pd.api.types.is_datetime64_dtype(values)
        and not isinstance(values.dtype, pd.DatetimeTZDtype)
    )


def _exception_messages(info: Any) -> list[str]:
    """GX reports errors either flat or keyed by the metric that raised them."""
    if not isinstance(info, dict) or not info:
        return []
    items = [info] if "exception_message" in info or "raised_exception" in info else info.values()
    messages = []
    for item in items:
        if not isinstance(item, dict):
            continue
        message = item.get("exception_message")
        if message or item.get("raised_exception"):
            text = str(message or "unknown error").strip().splitlines()
            messages.append(_clip(text[-1] if text else "unknown error", 200))
    return messages


def _expected(name: str, kwargs: dict[str, Any]) -> str:
    """What the expectation asks, in words. With ``mostly`` below 1 it holds when that share
    of rows meets it, and the words say so: a refusal never reads stricter than its rule."""
    expected = _expected_of_every_row(name, kwargs)
    mostly = kwargs.get("mostly")
    if expected and isinstance(mostly, int | float) and mostly < 1:
        expected += f" in at least {_percent(mostly)} of rows"
    return expected


def _percent(share: float) -> str:
    # 0.99 * 100 is 98.99999999999999: rounded, it prints as the suite wrote it.
    return f"{round(share * 100, 6):g}%"


def _expected_of_every_row(name: str, kwargs: dict[str, Any]) -> str:
    if name == "expect_table_columns_to_match_set":
        exact = "exactly " if kwargs.get("exact_match", True) else "at least "
        return f"expected {exact}the columns {sorted(kwargs.get('column_set') or [])}"
    if name == "expect_table_column_count_to_equal":
        return f"expected {kwargs.get('value')} columns"
    if name.endswith("_to_be_between"):
        bounds = []
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        if low is not None:
            bounds.append(f"{'>' if kwargs.get('strict_min') else '>='} {_bound(low)}")
        if high is not None:
            bounds.append(f"{'<' if kwargs.get('strict_max') else '<='} {_bound(high)}")
        what = name.removeprefix("expect_").split("_to_be_between")[0].replace("_", " ")
        return f"expected {what} {' and '.join(bounds)}"
    if name == "expect_column_values_to_be_of_type":
        return f"expected type {kwargs.get('type_')!r}"
    if name == "expect_column_values_to_be_in_type_list":
        return f"expected one of the types {kwargs.get('type_list')}"
    if name == "expect_column_values_to_be_in_set":
        return f"expected values in {sorted(kwargs.get('value_set') or [], key=str)}"
    if name == "expect_column_values_to_not_be_in_set":
        # The set may be a whole batch of ids: the offending rows are quoted instead.
        return f"expected none of {len(kwargs.get('value_set') or []):,} listed values"
    if name == "expect_column_values_to_not_be_null":
        return "expected no nulls"
    if name == "expect_column_values_to_be_unique":
        return "expected unique values"
    shown = {k: v for k, v in kwargs.items() if k not in {"column", "batch_id", "mostly"}}
    return f"expected {shown}" if shown else ""


def _bound(value: Any) -> Any:
    # GX hands numeric suite parameters back as floats: an id bound reads better as an int.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _observed(name: str, result: dict[str, Any]) -> str:
    mismatched = (result.get("details") or {}).get("mismatched")
    if isinstance(mismatched, dict) and mismatched:
        parts = [f"{key} {sorted(map(str, value))}" for key, value in mismatched.items() if value]
        return "; ".join(parts)
    if "unexpected_count" in result:
        count, total = result.get("unexpected_count") or 0, result.get("element_count")
        pct = result.get("unexpected_percent")
        text = f"{count:,} of {total:,} rows unexpected" if total is not None else f"{count:,}"
        if pct is not None:
            text += f" ({pct:.3g}%)"
        if name == "expect_column_values_to_not_be_null":
            rows = (result.get("partial_unexpected_index_list") or [])[:SHOWN_VALUES]
            return text + (f", e.g. rows {rows}" if rows else "")
        values = (result.get("partial_unexpected_list") or [])[:SHOWN_VALUES]
        return text + (f", e.g. {_clip(_values(values), 300)}" if values else "")
    if "observed_value" in result:
        return f"observed {_clip(repr(result['observed_value']), 300)}"
    return "failed"


def _values(values: list[Any]) -> str:
    return "[" + ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values) + "]"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- quarantine ----------------------------------------------------------------------------------
def _quarantine_folder(settings: Settings, report: ValidationReport) -> Path:
    stamp = f"{report.validated_at:%Y%m%dT%H%M%S.%fZ}"
    return (
        settings.storage.quarantine_dir / report.suite / f"{_safe_name(report.batch_name)}-{stamp}"
    )


def _write_report(folder: Path, report: ValidationReport, **extra: Any) -> None:
    """``report.json`` of a quarantined batch, written atomically."""
    payload = {
        "summary": report.summary(),
        "report": report.to_dict(),
        "quarantine_path": str(folder),
        **extra,
    }
    tmp = folder / "report.json.tmp"
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, folder / "report.json")


def _quarantine(
    batch: pd.DataFrame, report: ValidationReport, gx_result: dict[str, Any], folder: Path
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    batch_file = folder / "batch.parquet"
    note = None
    try:
        batch.to_parquet(batch_file)
    except Exception as exc:  # e.g. mixed types in a column or non-string labels
        note = (
            f"the batch could not be written as is ({type(exc).__name__}: {_clip(str(exc), 200)}); "
            "batch.parquet holds every column as strings, labels made unique strings"
        )
        _stringified(batch).to_parquet(batch_file)
    _write_report(
        folder,
        report,
        batch={
            "file": batch_file.name,
            "rows": len(batch),
            "dtypes": {str(col): str(dtype) for col, dtype in batch.dtypes.items()},
            "note": note,
        },
        gx_validation_result=gx_result,
    )


def _stringified(batch: pd.DataFrame) -> pd.DataFrame:
    labels: list[str] = []
    for label in map(str, batch.columns):
        unique, n = label, 1
        while unique in labels:
            n += 1
            unique = f"{label}__{n}"
        labels.append(unique)
    return pd.DataFrame(
        {label: batch.iloc[:, i].astype("string") for i, label in enumerate(labels)},
        index=batch.index,
    )


# --- the Great Expectations context, one per gx_dir per process ---------------------------------
@dataclass
class _Runtime:
    context: AbstractDataContext
    lock: threading.Lock = field(default_factory=threading.Lock)
    _checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    _suite_texts: dict[str, str] = field(default_factory=dict)

    def checkpoint(
        self, suite_name: str, features: Sequence[Feature] = CUSTOMER_FEATURES
    ) -> Checkpoint:
        """The suite's checkpoint, (re-)registered when the committed JSON changed."""
        suite = load_suite(suite_name, features)
        text = json.dumps(suite, sort_keys=True)
        if self._suite_texts.get(suite_name) != text:
            self._checkpoints[suite_name] = _register(self.context, suite_name, suite)
            self._suite_texts[suite_name] = text
        return self._checkpoints[suite_name]


def load_suite(suite_name: str, features: Sequence[Feature] = CUSTOMER_FEATURES) -> dict[str, Any]:
    """The committed suite, with the feature expectations derived from the schema if it asks.

    A suite whose ``meta.feature_expectations`` is ``"core.schema"`` lists no feature
    column itself: every one of ``features`` (declared with :class:`core.schema.Feature`)
    joins its column set and brings its own not-null, value-set and lower-bound expectations.
    """
    suite = json.loads((SUITES_DIR / f"{suite_name}.json").read_text())
    if suite.get("meta", {}).get("feature_expectations") != "core.schema":
        return suite
    for expectation in suite["expectations"]:
        if expectation["type"] == "expect_table_columns_to_match_set":
            expectation["kwargs"]["column_set"] += [f.name for f in features]
    suite["expectations"] += [{**e, "meta": {}} for e in feature_expectations(features)]
    return suite


_CACHE: OrderedDict[Path, _Runtime] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _runtime(gx_dir: Path) -> _Runtime:
    with _CACHE_LOCK:
        runtime = _CACHE.get(gx_dir)
        if runtime is None or not (gx_dir / "great_expectations.yml").is_file():
            runtime = _Runtime(context=_open_context(gx_dir))
            _CACHE[gx_dir] = runtime
        _CACHE.move_to_end(gx_dir)
        while len(_CACHE) > _MAX_CACHED_CONTEXTS:
            _CACHE.popitem(last=False)
        return runtime


def _open_context(gx_dir: Path) -> AbstractDataContext:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", context_root_dir=gx_dir)
    variables = context.variables
    variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    variables.analytics_enabled = False
    # The index page reads every stored result: cap it so validation does not slow down as
    # results pile up (older result pages stay on disk, they just leave the index).
    sites = dict(variables.data_docs_sites or {})
    for site in sites.values():
        index = site.setdefault("site_index_builder", {"class_name": "DefaultSiteIndexBuilder"})
        index["validation_results_limit"] = DATA_DOCS_INDEX_LIMIT
    variables.data_docs_sites = sites
    variables.save()
    return context


def _register(context: AbstractDataContext, suite_name: str, suite_dict: dict) -> Checkpoint:
    """Add or update the suite, its dataframe asset, validation definition and checkpoint."""
    import great_expectations as gx

    suite = context.suites.add_or_update(gx.ExpectationSuite(**suite_dict))
    if DATA_SOURCE_NAME in context.data_sources.all():
        source = context.data_sources.get(DATA_SOURCE_NAME)
    else:  # not add_or_update_pandas: it would drop the assets of other suites
        source = context.data_sources.add_pandas(DATA_SOURCE_NAME)
    if suite_name in source.get_asset_names():
        asset = source.get_asset(suite_name)
    else:
        asset = source.add_dataframe_asset(suite_name)
    if BATCH_DEFINITION_NAME in {bd.name for bd in asset.batch_definitions}:
        batch_definition = asset.get_batch_definition(BATCH_DEFINITION_NAME)
    else:
        batch_definition = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION_NAME)
    validation = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=suite_name, data=batch_definition, suite=suite)
    )
    return context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=suite_name,
            validation_definitions=[validation],
            actions=[],  # Data Docs are built by validate_frame, for this result only
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": SHOWN_VALUES},
        )
    )
