"""The landing area: raw daily batches wait here until they are validated and ingested.

A batch is one UTC day of one landing source (:mod:`core.sources`) in a file named
``<source>_YYYY-MM-DD.parquet`` or ``<source>_YYYY-MM-DD.csv``; the platform's own source
is ``orders`` (``orders_2026-12-02.parquet``), and a model spec may declare more. Every
other file in the landing area (apart from the ``archive/`` folder, hidden files and
``*.tmp`` files still being written) is refused by validation and quarantined: nothing
that lands is skipped in silence. A user's own files come in through :func:`land_files`
(``churn land``): each file whole or refused with its reason, and never renamed to another
source (:func:`batch_name`).

CSV is read with the source's dtypes (for orders: ``order_id`` and ``customer_segment`` as
text, ``amount`` as a float) and its event-time column parsed as ISO-8601; timestamps must
carry a UTC offset (``2026-12-02T09:30:00+00:00`` or ``...Z``), exactly as Parquet batches
must be timezone-aware. The frame then goes through the source's Great Expectations suite.
"""

from __future__ import annotations

import glob
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from core.settings import Settings
from core.sources import FORMATS, ORDERS, LandingSource

# A time, then its UTC offset: "2026-12-02" alone ends in "-02", which is no offset.
_ZONE = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$")
ARCHIVE = "archive"
# Any name of a batch: "<source>_YYYY-MM-DD.<format>", declared source or not.
_ANY_BATCH_NAME = re.compile(
    r"(?P<source>[a-z][a-z0-9_]*)_(?P<day>\d{4}-\d{2}-\d{2})\.(?:parquet|csv)", re.IGNORECASE
)


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


class SourceUnclear(ValueError):
    """A file that cannot be landed as a batch of one declared source: which source it is
    cannot be known, or its name says another source (or an undeclared one) than the one
    asked for. A file is never renamed to another source."""


@dataclass(frozen=True)
class BatchName:
    """What a user's file lands as: a batch of ``source`` for ``day``, named ``name``."""

    source: LandingSource
    day: date
    name: str


@dataclass(frozen=True)
class LandedFile:
    """One file of a landing request and what became of it: landed whole, or refused and why
    (then nothing of it was written)."""

    file: Path
    batch: BatchName | None = None  # what it is (or would have landed as), once known
    landed: Path | None = None  # where it waits in the landing area; None: refused
    refused: str | None = None

    def line(self) -> str:
        if self.landed is not None and self.batch is not None:
            batch = self.batch
            return f"landed {self.file} as {batch.name}: {batch.source.noun} of {batch.day}"
        return f"refused {self.file}: {self.refused}"


@dataclass(frozen=True)
class LandingReport:
    """Every file of one landing request, in the order they were named."""

    files: tuple[LandedFile, ...]

    @property
    def landed(self) -> tuple[LandedFile, ...]:
        return tuple(file for file in self.files if file.landed is not None)

    @property
    def refused(self) -> tuple[LandedFile, ...]:
        return tuple(file for file in self.files if file.landed is None)

    def summary(self) -> str:
        return (
            f"{len(self.landed)} of {len(self.files)} file(s) landed, {len(self.refused)} refused"
        )


def _declared(sources: Sequence[LandingSource]) -> str:
    return ", ".join(source.name for source in sources)


def batch_name(
    file: Path,
    sources: Sequence[LandingSource] = (ORDERS,),
    *,
    source: LandingSource | None = None,
    day: date | None = None,
) -> BatchName:
    """The batch a user's file lands as; :class:`BadBatchName` or :class:`SourceUnclear` if none.

    The source is ``source`` when given, else the declared source whose prefix the file's
    name starts with (``tickets_2026-12-02.csv``, ``tickets_export.csv``), else the only
    declared source when there is just one (the platform's ``orders`` unless a model brings
    more). A name that says another source than ``source``, or a source that is not
    declared (``returns_2026-12-02.csv``), is refused rather than renamed. The day is
    ``day`` when given, else the one in the file's name; both given, they must agree.
    """
    suffix = file.suffix.lower()
    if suffix not in FORMATS:
        raise BadBatchName(file, f"unsupported format {suffix or '(none)'!r}", sources)
    claimed = _ANY_BATCH_NAME.fullmatch(file.name)
    by_name = {known.name: known for known in sources}
    if claimed and claimed["source"].lower() not in by_name:
        raise SourceUnclear(
            f"its name makes it a batch of source {claimed['source']!r}, which is not "
            f"declared (declared: {_declared(sources)}); a file is never landed as another "
            "source's batch"
        )
    lower = file.name.lower()
    named = max(
        (known for known in sources if lower.startswith(known.prefix)),
        key=lambda known: len(known.prefix),
        default=None,
    )
    if source is not None and named is not None and named != source:
        raise SourceUnclear(
            f"its name makes it a {named.name} batch, not {source.name}; a file is never "
            f"landed as another source's batch (rename it, or land it as {named.name})"
        )
    chosen = source or named or (sources[0] if len(sources) == 1 else None)
    if chosen is None:
        raise SourceUnclear(
            "cannot tell which landing source it is a batch of: name it "
            f"<source>_YYYY-MM-DD{suffix} or give the source with churn land --source or make "
            f"land SOURCE=; declared sources: {_declared(sources)}"
        )
    named_day = None
    if claimed:
        try:
            named_day = date.fromisoformat(claimed["day"])
        except ValueError as error:
            reason = f"{claimed['day']!r} is not a calendar day: {error}"
            raise BadBatchName(file, reason, (chosen,)) from None
    if day is not None and named_day is not None and day != named_day:
        raise BadBatchName(file, f"its name says {named_day}, the day given is {day}", (chosen,))
    batch_day = day or named_day
    if batch_day is None:
        reason = "no day in its name: give it with churn land --day or make land DAY="
        raise BadBatchName(file, reason, (chosen,))
    return BatchName(chosen, batch_day, chosen.file_name(batch_day.isoformat(), suffix))


def land_file(
    file: Path,
    settings: Settings,
    *,
    day: date | None = None,
    source: LandingSource | None = None,
    sources: Sequence[LandingSource] = (ORDERS,),
) -> Path:
    """Copy a user's batch file (Parquet or CSV) into the landing area, as :func:`batch_name`
    names it; return where it waits.

    The copy is atomic, so a concurrent pipeline run never reads half a file, and a failed
    copy leaves nothing behind.
    """
    file = Path(file)
    if not file.is_file():
        raise FileNotFoundError(f"no such file: {file}")
    # Refuse a bad name before anything lands.
    return copy_batch(file, batch_name(file, sources, source=source, day=day), settings)


def copy_batch(file: Path, batch: BatchName, settings: Settings) -> Path:
    """Copy ``file`` into the landing area as ``batch``, unless that batch already waits."""
    stem = Path(batch.name).stem
    waiting = [p for p in pending_batches(settings) if p.stem == stem]
    if waiting:
        # Replacing a waiting file could swap it between validation and ingestion.
        raise BatchAlreadyWaiting(
            f"{waiting[0].name} is already waiting for {batch.day}; run the feature pipeline "
            "first (or remove that file), then land this one"
        )
    target = settings.storage.landing_dir / batch.name
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{batch.name}.tmp")  # hidden: validation leaves it alone
    try:
        shutil.copyfile(file, tmp)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def files_to_land(arguments: Sequence[str | Path]) -> list[Path | LandedFile]:
    """The files a landing request names, in order, each once.

    An argument is a file, a folder (its files in name order; not its sub-folders or hidden
    files) or a glob pattern (``exports/*.csv``; ``**`` reaches into sub-folders). One
    that names nothing comes back refused, so that no argument is dropped in silence.
    """
    found: list[Path | LandedFile] = []
    seen: set[Path] = set()
    for argument in arguments:
        path = Path(argument).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            missing = "a folder that holds no file"
        elif not path.exists() and any(char in str(argument) for char in "*?["):
            matches = glob.glob(str(path), recursive=True)
            files = sorted(Path(match) for match in matches if Path(match).is_file())
            missing = "no file matches this pattern"
        else:
            files, missing = [path], ""
        if not files:
            found.append(LandedFile(file=path, refused=missing))
        for file in files:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                found.append(file)
    return found


def land_files(
    arguments: Sequence[str | Path],
    settings: Settings,
    *,
    day: date | None = None,
    source: LandingSource | None = None,
    sources: Sequence[LandingSource] = (ORDERS,),
) -> LandingReport:
    """Land every file ``arguments`` name (:func:`files_to_land`), each whole or not at all.

    A refused file (no such file, a name or source that does not fit, a batch of that
    source and day already waiting or landed earlier in this request, a failed copy) is
    reported with its reason; it writes nothing and the other files land all the same.
    """
    outcomes: list[LandedFile] = []
    # A batch's name without its format -> the file of this request that landed as it.
    landed_by: dict[str, Path] = {}
    for file in files_to_land(arguments):
        if isinstance(file, LandedFile):
            outcomes.append(file)
            continue
        if not file.is_file():
            outcomes.append(LandedFile(file=file, refused="no such file"))
            continue
        batch: BatchName | None = None
        try:
            batch = batch_name(file, sources, source=source, day=day)
            first = landed_by.get(Path(batch.name).stem)
            if first is not None:
                raise BatchAlreadyWaiting(
                    f"{first} landed as the {batch.source.name} batch of {batch.day} earlier "
                    "in this request: one file per source and day"
                )
            target = copy_batch(file, batch, settings)
        except (ValueError, OSError) as error:  # OSError: also a file that cannot be read
            outcomes.append(LandedFile(file=file, batch=batch, refused=str(error)))
            continue
        landed_by[target.stem] = file
        outcomes.append(LandedFile(file=file, batch=batch, landed=target))
    return LandingReport(tuple(outcomes))


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
