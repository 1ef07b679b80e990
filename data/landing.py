"""The landing area: raw daily batches wait here until they are validated and ingested.

A batch is one UTC day of order events in a file named ``orders_YYYY-MM-DD.parquet`` or
``orders_YYYY-MM-DD.csv``. Every other file in the landing area (apart from the
``archive/`` folder, hidden files and ``*.tmp`` files still being written) is refused by
validation and quarantined: nothing that lands is skipped in silence.

CSV is read with the batch schema's dtypes (``order_id`` and ``customer_segment`` as
text, ``amount`` as a float) and ``order_timestamp`` parsed as ISO-8601; timestamps must
carry a UTC offset (``2026-12-02T09:30:00+00:00`` or ``...Z``), exactly as Parquet batches
must be timezone-aware. The frame then goes through the same Great Expectations suite.
"""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path

import pandas as pd

from core.settings import Settings

PREFIX = "orders_"
FORMATS = (".parquet", ".csv")
EXPECTED_NAME = "orders_YYYY-MM-DD.parquet or orders_YYYY-MM-DD.csv (one UTC day, zero-padded)"
_NAME = re.compile(r"orders_(\d{4}-\d{2}-\d{2})\.(parquet|csv)")
# A time, then its UTC offset: "2026-12-02" alone ends in "-02", which is no offset.
_ZONE = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$")
ARCHIVE = "archive"


class BatchAlreadyWaiting(FileExistsError):
    """A batch for that day is already waiting in the landing area."""


class BadBatchName(ValueError):
    """A landed file whose name is not a batch the pipeline accepts."""

    def __init__(self, path: Path, reason: str):
        self.path = path
        super().__init__(
            f"{path.name!r} is not a batch the pipeline accepts ({reason}); "
            f"expected {EXPECTED_NAME}"
        )


def landed_path(settings: Settings, day: date) -> Path:
    """Where the simulator lands ``day``'s batch (Parquet)."""
    return settings.storage.landing_dir / f"{PREFIX}{day.isoformat()}.parquet"


def land_batch(batch: pd.DataFrame, day: date, settings: Settings) -> Path:
    """Drop one day's raw events into the landing area (as an upstream system would)."""
    path = landed_path(settings, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")  # hidden: validation leaves it alone
    batch.to_parquet(tmp, index=False)
    tmp.replace(path)  # atomic: a reader never sees half a file
    return path


def land_file(source: Path, settings: Settings, day: date | None = None) -> Path:
    """Copy a user's batch file (Parquet or CSV) into the landing area.

    ``day`` names the batch; without it the file's own name must already be a batch name.
    The copy is atomic, so a concurrent pipeline run never reads half a file.
    """
    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"no such file: {source}")
    suffix = source.suffix.lower()
    if suffix not in FORMATS:
        raise BadBatchName(source, f"unsupported format {suffix or '(none)'!r}")
    name = f"{PREFIX}{day.isoformat()}{suffix}" if day else source.name
    landed_day = batch_day(Path(name))  # refuse a bad name before anything lands
    waiting = [p for p in pending_batches(settings) if p.stem == f"{PREFIX}{landed_day}"]
    if waiting:
        # Replacing a waiting file could swap it between validation and ingestion.
        raise BatchAlreadyWaiting(
            f"{waiting[0].name} is already waiting for {landed_day}; run the feature pipeline "
            "first (or remove that file), then land this one"
        )
    target = settings.storage.landing_dir / name
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{name}.tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(target)
    return target


def pending_batches(settings: Settings) -> list[Path]:
    """Every file waiting in the landing area, batch or not, in name order (oldest day first).

    Files that are not batches are listed too, so that validation refuses them by name.
    """
    if not settings.storage.landing_dir.exists():
        return []
    return sorted(
        path
        for path in settings.storage.landing_dir.iterdir()
        if not (path.is_dir() and path.name == ARCHIVE)
        and not path.name.startswith(".")
        and path.suffix != ".tmp"
    )


def batch_day(path: Path) -> date:
    """The day a landed file holds, from its name; :class:`BadBatchName` if it is not one."""
    match = _NAME.fullmatch(path.name)
    if match is None:
        raise BadBatchName(path, "unexpected name")
    try:
        return date.fromisoformat(match.group(1))
    except ValueError as error:
        raise BadBatchName(path, f"{match.group(1)!r} is not a calendar day: {error}") from None


def read_batch(path: Path) -> pd.DataFrame:
    """Read a landed batch (Parquet or CSV) into the raw batch's columns and dtypes."""
    if path.suffix == ".csv":
        return read_csv_batch(path)
    return pd.read_parquet(path)


def read_csv_batch(path: Path) -> pd.DataFrame:
    """A CSV batch as the frame a Parquet batch would give, for the same suite to judge.

    Columns the suite knows get their dtypes; anything else is left as read, so the suite
    names it. Timestamps without an offset are parsed naive, and the suite refuses them
    with its timezone hint; a file that mixes zoned and naive timestamps is unreadable.
    """
    frame = pd.read_csv(  # utf-8-sig: spreadsheet exports start with a byte-order mark
        path, dtype={"order_id": str, "customer_segment": str}, encoding="utf-8-sig"
    )
    if "amount" in frame and pd.api.types.is_integer_dtype(frame["amount"]):
        frame["amount"] = frame["amount"].astype("float64")  # "12" is a valid amount
    if "order_timestamp" in frame:
        text = frame["order_timestamp"].astype("string").str.strip()
        # Empty cells are the suite's to refuse (not null), not a missing offset.
        present = text.dropna()
        zoned = present.str.contains(_ZONE).astype(bool)
        if zoned.all():
            frame["order_timestamp"] = pd.to_datetime(text, format="ISO8601", utc=True)
        elif not zoned.any():
            frame["order_timestamp"] = pd.to_datetime(text, format="ISO8601")
        else:
            example = present[~zoned].iloc[0]
            raise ValueError(
                f"order_timestamp: {int((~zoned).sum())} of {len(present)} values have no "
                f"timezone offset (e.g. {example!r}); write every timestamp in ISO-8601 "
                "with its offset, e.g. 2026-12-02T09:30:00+00:00"
            )
    return frame


def archive_batch(path: Path, settings: Settings) -> Path:
    """Move an ingested batch out of the landing area."""
    target = settings.storage.landing_dir / ARCHIVE / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, target)
    return target
