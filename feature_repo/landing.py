"""The landing area: raw daily batches wait here until they are validated and ingested."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pandas as pd

from feature_repo.settings import Settings

PREFIX = "orders_"


def landed_path(settings: Settings, day: date) -> Path:
    return settings.landing_dir / f"{PREFIX}{day.isoformat()}.parquet"


def land_batch(batch: pd.DataFrame, day: date, settings: Settings) -> Path:
    """Drop one day's raw events into the landing area (as an upstream system would)."""
    path = landed_path(settings, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    batch.to_parquet(tmp, index=False)
    tmp.replace(path)  # atomic: a reader never sees half a file
    return path


def pending_batches(settings: Settings) -> list[Path]:
    """Landed batches not yet ingested, oldest day first."""
    if not settings.landing_dir.exists():
        return []
    return sorted(settings.landing_dir.glob(f"{PREFIX}*.parquet"))


def batch_day(path: Path) -> date:
    """The day a landed file holds, from its name (``orders_YYYY-MM-DD.parquet``)."""
    return date.fromisoformat(path.stem.removeprefix(PREFIX))


def read_batch(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


def archive_batch(path: Path, settings: Settings) -> Path:
    """Move an ingested batch out of the landing area."""
    target = settings.landing_dir / "archive" / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(path, target)
    return target
