"""The monitoring run's result keeps one shape, verdict or not."""

from dataclasses import fields

from core.steps import to_xcom
from models.churn.spec import SPEC as CHURN
from monitoring.check import DriftCheck, current_window_start, run_drift_check


def test_an_empty_log_gives_no_verdict_in_the_same_shape(state):
    check = run_drift_check(CHURN, state)
    assert isinstance(check, DriftCheck)
    assert not check.significant and check.current_rows == 0
    assert "no verdict, window kept open" in check.reason
    assert check.features == [] and check.html_path is None
    assert set(to_xcom(check)) == {f.name for f in fields(DriftCheck)}
    # No report was written, so the next run's window starts where this one started.
    assert current_window_start(state, CHURN, check.window.end) < check.window.end
    assert not (state.storage.reports_dir / "drift" / "churn" / "last_check.json").exists()
