"""Delta writes: partition replacement is idempotent and transactional."""

import pandas as pd
import pytest

from data import delta_tables


def frame(day: str, n: int, value: float) -> pd.DataFrame:
    return pd.DataFrame({"event_date": [day] * n, "id": range(n), "value": [value] * n})


def test_rerunning_a_day_replaces_it(tmp_path):
    path = tmp_path / "t"
    assert delta_tables.table_version(path) is None
    delta_tables.replace_partitions(
        path, pd.concat([frame("2026-01-01", 3, 1.0), frame("2026-01-02", 2, 1.0)]), "event_date"
    )
    version = delta_tables.replace_partitions(path, frame("2026-01-02", 4, 2.0), "event_date")
    again = delta_tables.replace_partitions(path, frame("2026-01-02", 4, 2.0), "event_date")
    assert again == version + 1
    table = delta_tables.read_table(path).sort_values(["event_date", "id"])
    assert len(table) == 7  # 3 + 4: no duplicates
    assert set(table.loc[table.event_date == "2026-01-02", "value"]) == {2.0}
    assert set(table.loc[table.event_date == "2026-01-01", "value"]) == {1.0}
    assert delta_tables.partition_values(path, "event_date") == ["2026-01-01", "2026-01-02"]


def test_replace_from_drops_later_partitions(tmp_path):
    path = tmp_path / "t"
    days = pd.concat([frame(f"2026-01-0{d}", 2, 1.0) for d in range(1, 6)])
    delta_tables.replace_from(path, days, "event_date", "2026-01-01")
    delta_tables.replace_from(path, frame("2026-01-03", 1, 9.0), "event_date", "2026-01-03")
    assert delta_tables.partition_values(path, "event_date") == [
        "2026-01-01",
        "2026-01-02",
        "2026-01-03",
    ]
    with pytest.raises(ValueError, match="before"):
        delta_tables.replace_from(path, frame("2026-01-01", 1, 0.0), "event_date", "2026-01-02")


def test_a_failed_write_leaves_the_previous_version(tmp_path):
    path = tmp_path / "t"
    delta_tables.replace_partitions(path, frame("2026-01-01", 3, 1.0), "event_date")
    before = delta_tables.table_version(path)
    bad = frame("2026-01-01", 3, 1.0).assign(value=["not", "a", "number"])  # schema clash
    with pytest.raises(Exception):  # noqa: B017 (deltalake raises its own schema errors)
        delta_tables.replace_partitions(path, bad, "event_date")
    assert delta_tables.table_version(path) == before
    assert delta_tables.read_table(path)["value"].tolist() == [1.0, 1.0, 1.0]


def test_a_write_killed_midway_leaves_the_previous_version_and_reruns(tmp_path):
    """SIGKILL during a large write: the table stays at its version; the re-run completes."""
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "t"
    delta_tables.replace_partitions(path, frame("2026-01-01", 3, 1.0), "event_date")
    before = delta_tables.table_version(path)
    files_before = set(path.rglob("*.parquet"))
    code = (
        "import sys, pandas as pd\n"
        "from pathlib import Path\n"
        "from data import delta_tables\n"
        # Many partitions: many files, so there is time between the first file and the commit.
        "days = pd.date_range('2026-01-01', periods=300).strftime('%Y-%m-%d')\n"
        "big = pd.DataFrame({'event_date': days.repeat(10_000), 'id': range(3_000_000)})\n"
        "big['value'] = 2.0\n"
        "print('writing', flush=True)\n"
        "delta_tables.replace_partitions(Path(sys.argv[1]), big, 'event_date')\n"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline().strip() == "writing"
    deadline = time.monotonic() + 60
    while not (set(path.rglob("*.parquet")) - files_before) and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert writer.returncode == -signal.SIGKILL, "the writer finished before it could be killed"
    assert delta_tables.table_version(path) == before
    assert delta_tables.read_table(path)["value"].tolist() == [1.0, 1.0, 1.0]
    # The re-run completes and replaces the day exactly once.
    delta_tables.replace_partitions(path, frame("2026-01-01", 5, 2.0), "event_date")
    assert delta_tables.read_table(path)["value"].tolist() == [2.0] * 5
