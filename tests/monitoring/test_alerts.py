"""Performance alerts: recorded once, sent as JSON with retries, never failing the run."""

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.settings import Settings
from models.churn.spec import SPEC as CHURN
from monitoring.alerts import raise_alerts, recorded_alerts
from monitoring.performance import PerformanceAlert, PeriodQuality

AS_OF = datetime(2026, 6, 1, 6, tzinfo=UTC)  # the monitoring run's time

DAY0 = datetime(2026, 6, 1, tzinfo=UTC)
SPEC = replace(CHURN, live_threshold=0.5, alert_periods=2)


def alert(last_day: int = 2, version: int = 3) -> PerformanceAlert:
    periods = tuple(
        PeriodQuality("churn", version, "champion", DAY0 + timedelta(days=d),
                      DAY0 + timedelta(days=d + 1), 60, 0.4, {"f1": 0.2, "accuracy": 0.6})
        for d in (last_day - 1, last_day)
    )  # fmt: skip
    return PerformanceAlert("churn", version, "champion", "f1", 0.5, periods)


class Hook:
    """A real HTTP server that fails the first ``failures`` posts with 500, or hangs."""

    def __init__(self, failures: int = 0, hang: bool = False):
        self.bodies: list[dict] = []
        self.calls = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                hook.calls += 1
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if hang:
                    threading.Event().wait(2)
                status = 500 if hook.calls <= failures else 200
                if status == 200:
                    hook.bodies.append(body)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def settings_with(tmp_path, url: str | None, **monitoring) -> Settings:
    return Settings(
        storage={"state_dir": tmp_path / "state"},
        monitoring={"alert_webhook_url": url, "alert_webhook_timeout_seconds": 0.5, **monitoring},
    )


def test_an_alert_is_recorded_once_and_sent_after_a_retry(tmp_path):
    hook = Hook(failures=1)
    try:
        settings = settings_with(tmp_path, hook.url, alert_webhook_attempts=3)
        assert raise_alerts([alert()], settings, AS_OF) == [alert()]
        # The same streak next run: not a new alert, nothing sent again.
        assert raise_alerts([alert()], settings, AS_OF) == []
    finally:
        hook.close()
    assert hook.calls == 2 and len(hook.bodies) == 1
    body = hook.bodies[0]
    assert body["kind"] == "performance_drift" and body["model_version"] == 3
    assert [p["value"] for p in body["periods"]] == [0.2, 0.2]
    (record,) = recorded_alerts(settings, "churn")
    assert record["delivered"] is True and record["delivery_error"] is None
    assert "f1 worse than 0.5 for 2 periods" in record["reason"]


def test_a_failing_webhook_never_fails_and_the_alert_stays_recorded(tmp_path):
    hook = Hook(hang=True)
    try:
        settings = settings_with(tmp_path, hook.url, alert_webhook_attempts=2)
        assert raise_alerts([alert(last_day=5)], settings, AS_OF) == [alert(last_day=5)]
    finally:
        hook.close()
    assert hook.calls == 2  # both tries timed out
    (record,) = recorded_alerts(settings, "churn")
    assert record["delivered"] is False and "Timeout" in record["delivery_error"]


def test_without_a_webhook_alerts_are_still_recorded(tmp_path):
    settings = settings_with(tmp_path, None)
    raise_alerts([alert(last_day=2), alert(last_day=3)], settings, AS_OF)  # a longer streak: new
    records = recorded_alerts(settings, "churn")
    assert [r["last_period"].day for r in records] == [3, 4]
    assert all(r["delivered"] is None for r in records)


@pytest.mark.parametrize("attempts", [0])
def test_webhook_attempts_must_be_positive(tmp_path, attempts):
    with pytest.raises(ValueError, match="alert_webhook_attempts"):
        settings_with(tmp_path, "http://x", alert_webhook_attempts=attempts)
