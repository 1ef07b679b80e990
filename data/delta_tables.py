"""Delta Lake I/O for the offline tables (raw orders, feature snapshots, churn labels).

Every write is one Delta transaction that replaces exactly the partitions it covers, so a
re-run replaces instead of duplicating, and a write that dies midway leaves the table at
its previous version.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError


def open_table(path: Path) -> DeltaTable | None:
    """The Delta table at ``path`` at its current version (None when there is no table)."""
    try:
        return DeltaTable(str(path))
    except TableNotFoundError:
        return None


def table_version(path: Path) -> int | None:
    """The current version of the Delta table at ``path`` (None when there is no table)."""
    table = open_table(path)
    return None if table is None else table.version()


def _quote(values: Iterable[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def replace_partitions(
    path: Path,
    frame: pd.DataFrame,
    partition_column: str,
    partition_by: list[str] | None = None,
) -> int:
    """Write ``frame``, replacing every ``partition_column`` value it holds (whatever the
    rows below it), in one transaction. ``partition_by``: the table's partition columns
    when there are more than ``partition_column``."""
    values = sorted(frame[partition_column].astype(str).unique())
    if not values:
        raise ValueError("nothing to write: the frame is empty")
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    exists = table_version(path) is not None
    write_deltalake(
        str(path),
        table,
        mode="overwrite",
        partition_by=partition_by or [partition_column],
        predicate=f"{partition_column} IN ({_quote(values)})" if exists else None,
    )
    return DeltaTable(str(path)).version()


def replace_from(path: Path, frame: pd.DataFrame, partition_column: str, first: str) -> int:
    """Replace every partition ``>= first`` with ``frame`` (which must hold only those)."""
    if (frame[partition_column].astype(str) < first).any():
        raise ValueError(f"frame holds {partition_column} values before {first}")
    path.parent.mkdir(parents=True, exist_ok=True)
    exists = table_version(path) is not None
    if frame.empty and not exists:
        raise ValueError("nothing to write: the frame is empty and there is no table yet")
    write_deltalake(
        str(path),
        pa.Table.from_pandas(frame, preserve_index=False),
        mode="overwrite",
        partition_by=[partition_column],
        predicate=f"{partition_column} >= '{first}'" if exists else None,
    )
    return DeltaTable(str(path)).version()


def read_table(path: Path, columns: list[str] | None = None, filters=None) -> pd.DataFrame:
    """The current version of a Delta table as a DataFrame (empty when there is no table)."""
    table = open_table(path)
    if table is None:
        return pd.DataFrame(columns=columns or [])
    return table.to_pandas(columns=columns, filters=filters)


def partition_values(path: Path, partition_column: str) -> list[str]:
    """Distinct values of a partition column, read from the Delta log (no data scan)."""
    table = open_table(path)
    if table is None:
        return []
    return sorted({p[partition_column] for p in table.partitions()})


def partition_dates(path: Path, partition_column: str) -> list[date]:
    return [date.fromisoformat(v) for v in partition_values(path, partition_column)]


def median_partition_rows(path: Path, partition_column: str, last: int) -> float | None:
    """Median row count of the latest ``last`` partitions, from the Delta log (no data scan)."""
    table = open_table(path)
    if table is None:
        return None
    actions = pa.table(table.get_add_actions(flatten=True)).to_pandas()
    if actions.empty:
        return None
    counts = actions.groupby(f"partition.{partition_column}")["num_records"].sum().sort_index()
    return float(counts.tail(last).median())
