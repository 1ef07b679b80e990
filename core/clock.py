"""The platform's one clock: what time it is, for every decision.

Everything that asks "what day is it" (snapshot stamps, label maturity, drift and quality
windows, retraining cool-downs, the demo's timeline, a served prediction's time) asks
this module, never the wall clock:

- inside a DAG task, the run's own time (:func:`run_time`: its data interval's end, else
  its logical date, else when it was allowed to run), so a run judges what its interval
  says whatever day it executes;
- everywhere else, :func:`now`: the wall clock, or the present set by ``CHURN_NOW``.

``CHURN_NOW`` (an ISO-8601 instant, or a date meaning its midnight UTC) moves the whole
platform in time: the clock reads that instant the first time a process asks, then runs
at wall speed, so two readings in one process are never equal and keep their order. A
test, the demo or a backfill runs the platform as of any date this way.

:func:`wall_now` is for measuring durations only (time to production, timings): it
never decides anything.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.settings import Settings

# Per set present: the monotonic reading when this process first used it.
_ANCHORS: dict[datetime, float] = {}


def wall_now() -> datetime:
    """The machine's wall clock (UTC): for timings, never for decisions."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (a naive one is taken to be UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def now(settings: Settings) -> datetime:
    """The platform's present (UTC): ``CHURN_NOW`` plus the time since this process read it,
    or the wall clock when it is unset."""
    present = settings.now
    if present is None:
        return wall_now()
    anchor = _ANCHORS.setdefault(present, time.monotonic())
    return present + timedelta(seconds=time.monotonic() - anchor)


def today(settings: Settings) -> date:
    """The platform's present day (UTC)."""
    return now(settings).date()


RUN_TIME_FIELDS = ("data_interval_end", "logical_date", "run_after")


def run_time(dag_run: Any) -> datetime:
    """The time an Airflow DAG run is about: its data interval's end, else its logical
    date, else when it was allowed to run (an asset-triggered run has neither of the first
    two). ``dag_run`` is the task context's ``dag_run`` (read by attribute name only)."""
    for name in RUN_TIME_FIELDS:
        moment = getattr(dag_run, name, None)
        if moment is not None:
            return as_utc(datetime.fromisoformat(str(moment)))
    raise ValueError(f"DAG run {dag_run!r} has none of {RUN_TIME_FIELDS}")


def midnight(day: date) -> datetime:
    """The start of ``day`` (UTC)."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
