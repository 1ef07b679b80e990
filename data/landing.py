"""The landing area: raw daily batches wait here until they are validated and ingested.

A batch is one UTC day of one landing source (:mod:`core.sources`) in a file named
``<source>_YYYY-MM-DD.parquet`` or ``<source>_YYYY-MM-DD.csv``; the platform's own source
is ``orders`` (``orders_2026-12-02.parquet``), and a model spec may declare more. Every
other file in the landing area (apart from the ``archive/`` folder, hidden files and
``*.tmp`` files still being written) is refused by validation and quarantined: nothing
that lands is skipped in silence.

CSV is read with the source's dtypes (for orders: ``order_id`` and ``customer_segment`` as
text, ``amount`` as a float) and its event-time column parsed as ISO-8601; timestamps must
carry a UTC offset (``2026-12-02T09:30:00+00:00`` or ``...Z``), exactly as Parquet batches
must be timezone-aware. The frame then goes through the source's Great Expectations suite.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pandas as pd

from core.settings import Settings
from core.sources import FORMATS, ORDERS, LandingSource

# A time, then its UTC offset: "2026-12-02" alone ends in "-02", which is no offset.
_ZONE = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$")
ARCHIVE = "archive"


class BatchAlreadyWaiting(FileExistsError):
    """A batch for that day is already waiting in the landing area."""


class BadBatchName(ValueError):
    """A landed file whose name is not a batch the pipeline accepts."""

    def __init__(self, path: Path, reason: str, sources: Sequence[LandingSource] = (ORDERS,)):
        self.path = path
        expected = "; ".join(source.expected_name for source in sources)
        super().__init__(
            f"{path.name!r} is not a batch the pipeline accepts ({reason}); "
            f"expected {expected} (one UTC day, zero-padded)"
        )


def landed_path(settings: Settings, day: date, source: LandingSource = ORDERS) -> Path:
    """Where the simulator lands ``day``'s batch of ``source`` (Parquet)."""
    return settings.storage.landing_dir / source.file_name(day.isoformat())


def land_batch(
    batch: pd.DataFrame, day: date, settings: Settings, source: LandingSource = ORDERS
) -> Path:
    """Drop one day's raw events into the landing area (as an upstream system would)."""
    path = landed_path(settings, day, source)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")  # hidden: validation leaves it alone
    batch.to_parquet(tmp, index=False)
    tmp.replace(path)  # atomic: a reader never sees half a file
    return path


def land_file(
    file: Path,
    settings: Settings,
    day: date | None = None,
    source: LandingSource = ORDERS,
    sources: Sequence[LandingSource] = (ORDERS,),
) -> Path:
    """Copy a user's batch file (Parquet or CSV) into the landing area.

    ``day`` names the batch as one of ``source``; without it the file's own name must
    already be a batch name of one of ``sources``. The copy is atomic, so a concurrent
    pipeline run never reads half a file.
    """
    file = Path(file)
    if not file.is_file():
        raise FileNotFoundError(f"no such file: {file}")
    suffix = file.suffix.lower()
    if suffix not in FORMATS:
        raise BadBatchName(file, f"unsupported format {suffix or '(none)'!r}", sources)
    name = source.file_name(day.isoformat(), suffix) if day else file.name
    # Refuse a bad name before anything lands.
    landed_source, landed_day = batch_of(Path(name), (source,) if day else sources)
    stem = Path(landed_source.file_name(landed_day.isoformat())).stem
    waiting = [p for p in pending_batches(settings) if p.stem == stem]
    if waiting:
        # Replacing a waiting file could swap it between validation and ingestion.
        raise BatchAlreadyWaiting(
            f"{waiting[0].name} is already waiting for {landed_day}; run the feature pipeline "
            "first (or remove that file), then land this one"
        )
    target = settings.storage.landing_dir / name
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{name}.tmp")
    shutil.copyfile(file, tmp)
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


def batch_of(
    path: Path, sources: Sequence[LandingSource] = (ORDERS,)
) -> tuple[LandingSource, date]:
    """The source and day a landed file holds, from its name; :class:`BadBatchName` if none."""
    for source in sources:
        text = source.day_text(path.name)
        if text is None:
            continue
        try:
            return source, date.fromisoformat(text)
        except ValueError as error:
            raise BadBatchName(path, f"{text!r} is not a calendar day: {error}", sources) from None
    raise BadBatchName(path, "unexpected name", sources)


def batch_day(path: Path, sources: Sequence[LandingSource] = (ORDERS,)) -> date:
    """The day a landed file holds, from its name; :class:`BadBatchName` if it is not one."""
    return batch_of(path, sources)[1]


def read_batch(path: Path, source: LandingSource = ORDERS) -> pd.DataFrame:
    """Read a landed batch (Parquet or CSV) into the source's columns and dtypes."""
    if path.suffix == ".csv":
        return read_csv_batch(path, source)
    return pd.read_parquet(path)


def read_csv_batch(path: Path, source: LandingSource = ORDERS) -> pd.DataFrame:
    """A CSV batch as the frame a Parquet batch would give, for the same suite to judge.

    Columns the source declares get their dtypes; anything else is left as read, so the
    suite names it. Timestamps without an offset are parsed naive, and the suite refuses
    them with its timezone hint; a file that mixes zoned and naive timestamps is unreadable.
    """
    frame = pd.read_csv(  # utf-8-sig: spreadsheet exports start with a byte-order mark
        path, dtype=dict.fromkeys(source.text_columns, str), encoding="utf-8-sig"
    )
    for column in source.float_columns:
        if column in frame and pd.api.types.is_integer_dtype(frame[column]):
            frame[column] = frame[column].astype("float64")  # "12" is a valid amount
    time_column = source.time_column
    if time_column in frame:
        text = frame[time_column].astype("string").str.strip()
        # Empty cells are the suite's to refuse (not null), not a missing offset.
        present = text.dropna()
        zoned = present.str.contains(_ZONE).astype(bool)
        if zoned.all():
            frame[time_column] = pd.to_datetime(text, format="ISO8601", utc=True)
        elif not zoned.any():
            frame[time_column] = pd.to_datetime(text, format="ISO8601")
        else:
            example = present[~zoned].iloc[0]
            raise ValueError(
                f"{time_column}: {int((~zoned).sum())} of {len(present)} values have no "
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
