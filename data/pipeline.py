"""The feature pipeline's steps: validate -> ingest -> compute features -> materialize.

Each function is one Airflow task of ``feature_pipeline`` and is also called by the CLI
and the tests. They pass plain values (paths, dates, versions), never DataFrames. Each
holds the feature store's lock (:func:`core.locks.feature_store_lock`), and
:func:`run_feature_pipeline` holds it across all four, so two runs never work on the same
landed batches at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd

from core.locks import feature_store_lock
from core.settings import Settings
from core.sources import ORDERS, LandingSource
from core.spec import FeatureTable
from core.steps import (
    BuiltFeatures,
    FeaturePipelineRun,
    IngestedBatches,
    Materialized,
    TimeWindow,
)
from data import delta_tables, landing
from data.store import apply_feature_definitions, get_feature_store, materialize, tables_of
from data.transforms import compute_customer_snapshots
from expectations.validation import (
    BatchRejected,
    reject_file,
    reject_unreadable,
    validate_batch,
)

log = logging.getLogger(__name__)
# The row-count check compares a batch with the median size of this many recent days.
RECENT_BATCHES = 14


class BatchesRefused(RuntimeError):
    """One or more landed batches failed validation; nothing was ingested."""

    def __init__(self, rejections: list[BatchRejected]):
        self.rejections = rejections
        text = "\n\n".join(str(r) for r in rejections)
        super().__init__(f"{len(rejections)} batch(es) refused; nothing ingested.\n{text}")


def validate_landed_batches(
    settings: Settings, sources: Sequence[LandingSource] = (ORDERS,)
) -> list[str]:
    """Validate every file in the landing area with Great Expectations.

    Each file is judged by the suite of the source its name claims (``sources``: the
    platform's orders and the sources the model specs bring). A refused batch is moved to
    quarantine with its report (by the validator); so is a file that is not a batch of any
    source (wrong name or format, unreadable). If anything is refused the step fails, so
    ingestion and everything after it do not run.

    An event is ingested once: a batch holding a source's ``id_column`` value that is
    already in its table under another day, or in a batch of that source accepted earlier
    in this run, is refused (the suite's ``ingested_ids``). A day landed again replaces its
    own partition, so the ids under the days this run lands do not count.
    """
    with feature_store_lock(settings):
        return _validate_landed_batches(settings, sources)


def _validate_landed_batches(settings: Settings, sources: Sequence[LandingSource]) -> list[str]:
    accepted: list[str] = []
    rejections: list[BatchRejected] = []
    docs: Path | None = None
    usual_rows = {
        source.name: delta_tables.median_partition_rows(
            settings.storage.delta_table_path(source.table), "event_date", last=RECENT_BATCHES
        )
        for source in sources
    }
    pending = landing.pending_batches(settings)
    readable: list[tuple[Path, LandingSource, date, pd.DataFrame]] = []
    seen: dict[tuple[str, date], Path] = {}
    for path in pending:
        try:
            source, day = landing.batch_of(path, sources)
        except landing.BadBatchName as bad_name:
            rejections.append(
                reject_file(
                    path, settings, check="file name is a batch name", details=str(bad_name)
                )
            )
            continue
        if (source.name, day) in seen:
            rejections.append(
                reject_file(
                    path,
                    settings,
                    check="one file per source and day",
                    details=f"{path.name!r} is a second {source.name} batch for {day}, after "
                    f"{seen[source.name, day].name!r}; merge them into one file",
                    suite=source.suite,
                )
            )
            continue
        seen[source.name, day] = path
        try:
            readable.append((path, source, day, landing.read_batch(path, source)))
        except Exception as unreadable:  # untrusted input: any parse error quarantines it
            rejections.append(reject_unreadable(path, unreadable, settings, source.suite))
    in_tables = _ids_in_tables(settings, sources, readable)
    run_ids: dict[str, set[str]] = {source.name: set() for source in sources}
    for path, source, day, batch in readable:
        ids = _ids(batch, source)
        try:
            report = validate_batch(
                batch,
                settings,
                batch_name=path.stem,
                suite_name=source.suite,
                usual_rows=usual_rows[source.name],
                batch_day=day,
                # Data Docs are rebuilt once per run (with its last batch), not once per
                # batch; a refused batch always gets its page.
                build_docs=path == pending[-1],
                ingested_ids=ids & (in_tables[source.name] | run_ids[source.name]),
            )
            run_ids[source.name] |= ids
            accepted.append(str(path))
            docs = report.data_docs_path or docs
        except BatchRejected as rejection:
            path.unlink(missing_ok=True)  # the quarantine holds the copy and its report
            rejections.append(rejection)
    if rejections:
        raise BatchesRefused(rejections)
    log.info("validated %d landed batch(es); Data Docs: %s", len(accepted), docs)
    return accepted


def _ids(batch: pd.DataFrame, source: LandingSource) -> set[str]:
    """The batch's event ids. Only text ids: anything else fails the suite's type check, and
    could not be compared with the table's text column."""
    if source.id_column is None or source.id_column not in batch.columns:
        return set()
    values = batch[source.id_column]
    if not isinstance(values, pd.Series):  # a duplicated label: the suite refuses it
        return set()
    return {value for value in values.dropna() if isinstance(value, str)}


def _ids_in_tables(
    settings: Settings,
    sources: Sequence[LandingSource],
    batches: Sequence[tuple[Path, LandingSource, date, pd.DataFrame]],
) -> dict[str, set[str]]:
    """Per source, the ids of this run's batches already in its table under a day the run
    does not land again (a day landed again replaces its own partition).

    One filtered read of the id column per source and run (days pruned by partition, ids
    matched by pyarrow), never the whole table, and never one read per batch.
    """
    found: dict[str, set[str]] = {source.name: set() for source in sources}
    for source in sources:
        mine = [(day, batch) for _, s, day, batch in batches if s.name == source.name]
        ids = set().union(*(_ids(batch, source) for _, batch in mine))
        if not ids:
            continue
        filters = [
            (source.id_column, "in", sorted(ids)),
            ("event_date", "not in", sorted({day.isoformat() for day, _ in mine})),
        ]
        table = delta_tables.read_table(
            settings.storage.delta_table_path(source.table),
            columns=[source.id_column],
            filters=filters,
        )
        found[source.name] = set(table[source.id_column]) if not table.empty else set()
    return found


def ingest_batches(
    paths: list[str], settings: Settings, sources: Sequence[LandingSource] = (ORDERS,)
) -> IngestedBatches:
    """Write validated batches into their sources' Delta tables, one transaction per table.

    Each day replaces its own ``event_date`` partition, so re-running a day never
    duplicates it. Ingested files are archived.
    """
    with feature_store_lock(settings):
        by_source: dict[str, list[pd.DataFrame]] = {}
        files = [Path(p) for p in paths]
        # Between the DAG's validate and ingest tasks another run (`churn features`) may
        # have ingested and archived a batch: it is in Delta already, not lost.
        gone = [file for file in files if not file.exists()]
        if gone:
            log.warning("%d validated batch(es) ingested by another run meanwhile", len(gone))
        files = [file for file in files if file.exists()]
        for file in files:
            source, day = landing.batch_of(file, sources)
            batch = landing.read_batch(file, source)
            # One zone and unit in the lake, whatever zone the batch was written in.
            batch[source.time_column] = (
                batch[source.time_column].dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
            )
            batch["event_date"] = day.isoformat()
            by_source.setdefault(source.name, []).append(batch)
        versions: dict[str, int] = {}
        rows: dict[str, int] = {}
        days: set[str] = set()
        for source in sources:
            if source.name not in by_source:
                continue
            raw = pd.concat(by_source[source.name], ignore_index=True)
            path = settings.storage.delta_table_path(source.table)
            versions[source.name] = delta_tables.replace_partitions(path, raw, "event_date")
            days.update(raw["event_date"].unique())
            rows[source.name] = len(raw)
        for file in files:
            landing.archive_batch(file, settings)
        orders_version = versions.get(
            ORDERS.name, delta_tables.table_version(settings.storage.raw_orders_path)
        )
        counted = [source.counted(rows[source.name]) for source in sources if source.name in rows]
        log.info(
            "ingested %d batch(es), %s, %d day(s)%s; Delta versions %s",
            len(files), " and ".join(counted) or "nothing", len(days),
            f" ({min(days)}..{max(days)})" if days else "", versions or "unchanged",
        )  # fmt: skip
        return IngestedBatches(
            sorted(days), sum(rows.values()), orders_version, versions, rows_by_source=rows
        )


def _raw_frame(
    name: str,
    sources: Sequence[LandingSource],
    cache: dict[str, pd.DataFrame | None],
    settings: Settings,
) -> pd.DataFrame | None:
    """The Delta table of landing source ``name``, read once per run; None while nothing of
    that source has landed yet."""
    if name not in cache:
        by_name = {source.name: source for source in sources}
        if name not in by_name:
            raise ValueError(f"a feature table reads source {name!r}, which is not declared")
        path = settings.storage.delta_table_path(by_name[name].table)
        has_data = delta_tables.table_version(path) is not None
        cache[name] = delta_tables.read_table(path) if has_data else None
    return cache[name]


def build_features(
    changed_days: list[str],
    settings: Settings,
    tables: Sequence[FeatureTable] = (),
    sources: Sequence[LandingSource] = (ORDERS,),
    *,
    as_of: datetime,
) -> BuiltFeatures:
    """Recompute the snapshots and the models' tables the changed raw days affect.

    Snapshots from the first changed day on change (windows and lifetime sums include
    it). A day not over at ``as_of`` (the run's time, ``core.clock``) is stamped with it.
    Each of ``tables`` (the models' own feature and label tables, from their specs) is
    recomputed from its ``lookback_days`` before the first changed day on (a label's
    future includes that day); a table that does not exist yet (a model just added) from
    the first ingested day, so its history is there for training. A table gets the frames
    of the landing ``sources`` it names, read from their Delta tables.
    """
    with feature_store_lock(settings):
        if not changed_days:
            log.info("no day changed: features and the models' tables left as they are")
            return BuiltFeatures(
                features_version=delta_tables.table_version(
                    settings.storage.customer_features_path
                ),
                snapshot_rows=0,
                window=None,
                table_versions={
                    t.name: delta_tables.table_version(settings.storage.delta_table_path(t.name))
                    for t in tables
                },
            )
        orders = delta_tables.read_table(settings.storage.raw_orders_path)
        raw_days = delta_tables.partition_dates(settings.storage.raw_orders_path, "event_date")
        # A day of another source past the last orders day still recomputes the last one.
        first = min(min(date.fromisoformat(d) for d in changed_days), max(raw_days))
        data_end = max(raw_days)
        snapshot_days = [first + timedelta(days=i) for i in range((data_end - first).days + 1)]
        # One computation time for every table: a day not over yet is stamped with it, so the
        # models' tables and the snapshots carry the same event times (one window online).
        created_at = as_of
        snapshots = compute_customer_snapshots(orders, snapshot_days, created_at)
        features_version = delta_tables.replace_from(
            settings.storage.customer_features_path, snapshots, "snapshot_date", first.isoformat()
        )
        table_versions: dict[str, int | None] = {}
        skipped_tables: dict[str, str] = {}
        raw_frames: dict[str, pd.DataFrame | None] = {ORDERS.name: orders}
        for table in tables:
            path = settings.storage.delta_table_path(table.name)
            inputs = [_raw_frame(name, sources, raw_frames, settings) for name in table.sources]
            missing = [
                name for name, frame in zip(table.sources, inputs, strict=True) if frame is None
            ]
            if missing:
                # A model whose own source has not landed yet waits; the others go on.
                skipped_tables[table.name] = (
                    f"source {missing[0]!r} has no data yet: land a {missing[0]}_* batch first"
                )
                log.info("feature table %s skipped: %s", table.name, skipped_tables[table.name])
                continue
            # A table a model brought since the last run is computed over the whole history.
            exists = delta_tables.table_version(path) is not None
            reach = timedelta(days=table.lookback_days)
            start = max(first - reach, min(raw_days)) if exists else min(raw_days)
            days = [start + timedelta(days=i) for i in range((data_end - start).days + 1)]
            rows = table.compute(*inputs, days, created_at)
            if rows.empty and not exists:
                # Nothing to write yet (no label's future has landed in full): a later run.
                table_versions[table.name] = None
                continue
            table_versions[table.name] = delta_tables.replace_from(
                path, rows, table.partition, start.isoformat()
            )
        log.info(
            "built %d customer snapshots from %s to %s (Delta v%s); the models' tables %s",
            len(snapshots), first, data_end, features_version, table_versions or "none",
        )  # fmt: skip
        return BuiltFeatures(
            features_version=features_version,
            snapshot_rows=len(snapshots),
            # The event times the new snapshots carry (none in the future, see snapshot_timestamp).
            window=TimeWindow(
                snapshots["event_timestamp"].min().to_pydatetime(),
                snapshots["event_timestamp"].max().to_pydatetime(),
            ),
            table_versions=table_versions,
            skipped_tables=skipped_tables,
        )


def run_feature_pipeline(
    settings: Settings,
    feature_services: Sequence[str],
    tables: Sequence[FeatureTable] = (),
    sources: Sequence[LandingSource] = (ORDERS,),
    *,
    as_of: datetime,
) -> FeaturePipelineRun:
    """The four steps of ``feature_pipeline`` in this process, without Airflow.

    For the CLI, tests and benchmarks; the DAG runs the same functions as separate tasks.
    ``feature_services``, ``tables`` and ``sources`` come from the model specs (see
    ``models.catalog``).
    """
    with feature_store_lock(settings):
        ingested = ingest_batches(validate_landed_batches(settings, sources), settings, sources)
        built = build_features(ingested.days, settings, tables, sources, as_of=as_of)
        materialized = materialize_features(built, settings, feature_services)
        return FeaturePipelineRun(ingested, built, materialized)


def materialize_features(
    built: BuiltFeatures, settings: Settings, feature_services: Sequence[str]
) -> Materialized:
    """Apply the feature definitions, then materialize the window ``build_features`` wrote.

    Only the views of ``feature_services`` are loaded: a view another model declared but
    whose table is not written yet does not stop these, and a service reading a table
    ``build_features`` skipped (its source has no data yet) waits for a later run.
    """
    with feature_store_lock(settings):
        if built.window is None:
            log.info("nothing new to materialize")
            return Materialized(applied=[], window=None)
        # A second either side, so rows stamped exactly at the bounds are surely included.
        window = TimeWindow(
            built.window.start - timedelta(seconds=1), built.window.end + timedelta(seconds=1)
        )
        applied = apply_feature_definitions(settings)
        store = get_feature_store(settings)
        skipped = set(built.skipped_tables)
        waiting = [s for s in feature_services if skipped and skipped & set(tables_of(store, s))]
        for service in waiting:
            log.info("feature service %s not materialized: a table it reads was skipped", service)
        ready = [service for service in feature_services if service not in waiting]
        views = materialize(store, window.start, window.end, ready)
        log.info(
            "applied %d Feast object(s); materialized %s from %s to %s into the online store",
            len(applied), ", ".join(views) or "no view", window.start, window.end,
        )  # fmt: skip
        return Materialized(applied=applied, window=window, views=views)
