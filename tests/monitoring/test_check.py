"""The monitoring run's window and its result, which keeps one shape, verdict or not."""

from dataclasses import fields
from datetime import UTC, datetime, timedelta

import pytest

from core.steps import TimeWindow, to_xcom
from models.churn.spec import SPEC as CHURN
from monitoring.check import DriftCheck, monitoring_window, run_drift_check

AS_OF = datetime(2024, 2, 29, 6, tzinfo=UTC)


def test_an_empty_window_gives_no_verdict_in_the_same_shape(state):
    window = monitoring_window(state, AS_OF)
    check = run_drift_check(CHURN, state, window)
    assert isinstance(check, DriftCheck)
    assert not check.significant and check.current_rows == 0
    assert "only 0 predictions made in 2024-02-28 06:00 .. 2024-02-29 06:00 UTC" in check.reason
    assert "no verdict for this interval" in check.reason
    assert check.features == [] and check.html_path is None
    assert set(to_xcom(check)) == {f.name for f in fields(DriftCheck)}
    # No watermark: the window is the run's, whatever ran before.
    assert not (state.storage.reports_dir / "drift" / "churn").exists()


def test_the_window_is_the_conf_then_the_data_interval_then_the_hours_before_the_run(state):
    day = datetime(2024, 1, 10, tzinfo=UTC)
    conf = {"window_start": "2024-01-10T00:00:00+00:00", "window_end": "2024-01-12T00:00:00Z"}
    assert monitoring_window(state, AS_OF, (day, AS_OF), conf) == TimeWindow(
        day, day + timedelta(days=2)
    )
    assert monitoring_window(state, AS_OF, (day, AS_OF)) == TimeWindow(day, AS_OF)
    hours = state.monitoring.drift_window_hours
    # A trigger timetable's interval has no length: the hours before the run's time.
    assert monitoring_window(state, AS_OF, (AS_OF, AS_OF)) == TimeWindow(
        AS_OF - timedelta(hours=hours), AS_OF
    )
    with pytest.raises(ValueError, match="is not after"):
        monitoring_window(
            state, AS_OF, conf={"window_start": "2024-01-12", "window_end": "2024-01-10"}
        )
