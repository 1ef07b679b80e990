"""One clock: no code reads the wall clock for a decision except through ``core.clock``.

Timings (durations, benchmark figures) may read clocks that only measure:
``time.monotonic``/``perf_counter``, and ``core.clock.wall_now``, whose callers are listed.
"""

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from core import clock
from core.settings import PROJECT_ROOT, Settings

WALL_CLOCK = re.compile(
    r"datetime\.now\(|datetime\.utcnow\(|date\.today\(|time\.time\(|Timestamp\.now\(|"
    r"Timestamp\.utcnow\(|Timestamp\(\s*[\"']now[\"']|Timestamp\.today\(|\.today\(\)"
)
# Packages of the product (bench/ measures and tests/ set up their own worlds).
PACKAGES = ("core", "data", "expectations", "feature_repo", "models", "monitoring", "serving",
            "dags", "cli")  # fmt: skip
# The only callers of wall_now: what they time, never what they decide.
TIMINGS = {
    "data/store.py": "the check of what Feast's engine wrote, which filters on its own clock",
    "models/registry.py": "champion.since, the start of time to production",
    "serving/deploy.py": "deployed_at and failed_at, the end of time to production",
}


def sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (PROJECT_ROOT / package).rglob("*.py"))


def test_no_module_but_the_clock_reads_the_wall_clock():
    readers = {
        str(path.relative_to(PROJECT_ROOT)): line.strip()
        for path in sources()
        for line in path.read_text().splitlines()
        if WALL_CLOCK.search(line) and path != PROJECT_ROOT / "core" / "clock.py"
    }
    assert readers == {}


def test_wall_now_is_called_only_to_time_things():
    callers = {
        str(path.relative_to(PROJECT_ROOT))
        for path in sources()
        if "wall_now(" in path.read_text() and path != PROJECT_ROOT / "core" / "clock.py"
    }
    assert callers == set(TIMINGS)


def test_the_clock_runs_from_the_set_present_and_keeps_its_order():
    settings = Settings(now="2024-02-29")
    first, second = clock.now(settings), clock.now(settings)
    assert datetime(2024, 2, 29, tzinfo=UTC) <= first < second
    assert (second - datetime(2024, 2, 29, tzinfo=UTC)).total_seconds() < 60
    assert clock.today(settings) == date(2024, 2, 29)
    assert Settings(now="2025-12-31T23:30:00Z").now == datetime(2025, 12, 31, 23, 30, tzinfo=UTC)
    unset = clock.now(Settings(now=None))
    assert abs((unset - clock.wall_now()).total_seconds()) < 5


class Run:
    def __init__(self, **moments):
        self.__dict__.update(moments)


def test_a_dag_run_is_about_its_interval_else_its_logical_date_else_its_run_after():
    end, logical, after = (datetime(2024, 1, d, tzinfo=UTC) for d in (3, 2, 1))
    assert clock.run_time(Run(data_interval_end=end, logical_date=logical)) == end
    assert clock.run_time(Run(data_interval_end=None, logical_date=logical)) == logical
    assert clock.run_time(Run(logical_date=None, run_after=after)) == after
    with pytest.raises(ValueError):
        clock.run_time(Run())
