"""Performance alerts: recorded once on the platform database, then sent to a webhook.

A streak that stays bad is the same alert run after run; it is recorded once, keyed by
model, version, variant and the streak's last period, and only a newly recorded alert
is sent. The webhook (``CHURN_MONITORING_ALERT_WEBHOOK_URL``, optional) gets the alert as
JSON, with ``alert_webhook_attempts`` tries and ``alert_webhook_timeout_seconds`` each.
A failed delivery never fails the monitoring run: it is logged and written on the
record (``delivered``, ``delivery_error``); the alert itself stays recorded.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.settings import Settings
from monitoring.performance import PerformanceAlert
from monitoring.platform_db import create_tables, platform_engine, platform_table, rows_of

log = logging.getLogger(__name__)
TABLE = "performance_alerts"


@dataclass(frozen=True)
class Delivery:
    """What became of one webhook delivery."""

    delivered: bool
    attempts: int
    error: str | None = None


def _table():
    import sqlalchemy as sa

    return platform_table(
        TABLE,
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("variant", sa.String(20), nullable=False),
        sa.Column("last_period", sa.DateTime(timezone=True), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("delivered", sa.Boolean, nullable=True),
        sa.Column("delivery_error", sa.Text, nullable=True),
        sa.UniqueConstraint("model", "model_version", "variant", "last_period"),
    )


def alert_payload(alert: PerformanceAlert) -> dict[str, Any]:
    """The JSON an alert is sent as."""
    return {
        "kind": "performance_drift",
        "model": alert.model,
        "model_version": alert.model_version,
        "variant": alert.variant,
        "metric": alert.metric,
        "threshold": alert.threshold,
        "periods": [
            {
                "start": p.period_start.isoformat(),
                "labelled": p.labelled,
                "value": p.metrics[alert.metric],
            }
            for p in alert.periods
        ],
        "reason": alert.reason(),
    }


def send_webhook(url: str, payload: dict[str, Any], attempts: int, timeout: float) -> Delivery:
    """POST ``payload`` as JSON; retry on an error or a non-2xx answer. Never raises."""
    import httpx

    error = None
    for attempt in range(1, attempts + 1):
        try:
            response = httpx.post(url, json=payload, timeout=timeout)
            if response.is_success:
                return Delivery(True, attempt)
            error = f"HTTP {response.status_code}"
        except httpx.HTTPError as failure:
            error = f"{type(failure).__name__}: {failure}"
        if attempt < attempts:
            time.sleep(min(2 ** (attempt - 1) * 0.5, 5.0))
    return Delivery(False, attempts, error)


def raise_alerts(
    alerts: list[PerformanceAlert], settings: Settings, as_of: datetime
) -> list[PerformanceAlert]:
    """Record every alert not recorded yet, and send those; returns the new ones."""
    if not alerts:
        return []
    import sqlalchemy as sa

    table = _table()
    engine = platform_engine(settings)
    new = []
    try:
        create_tables(engine, table.metadata)
        for alert in alerts:
            key = {
                "model": alert.model,
                "model_version": alert.model_version,
                "variant": alert.variant,
                "last_period": alert.periods[-1].period_start,
            }
            with engine.begin() as conn:
                known = conn.execute(
                    sa.select(table.c.id).where(*(table.c[k] == v for k, v in key.items()))
                ).first()
                if known is not None:
                    continue
                row = conn.execute(
                    table.insert().values(**key, raised_at=as_of, reason=alert.reason())
                ).inserted_primary_key[0]
            new.append(alert)
            log.warning("ALERT %s", alert.reason())
            url = settings.monitoring.alert_webhook_url
            if url:
                delivery = send_webhook(
                    url,
                    alert_payload(alert),
                    settings.monitoring.alert_webhook_attempts,
                    settings.monitoring.alert_webhook_timeout_seconds,
                )
                if not delivery.delivered:
                    log.error("alert webhook failed after %d tries: %s", delivery.attempts,
                              delivery.error)  # fmt: skip
                with engine.begin() as conn:
                    conn.execute(
                        table.update()
                        .where(table.c.id == row)
                        .values(delivered=delivery.delivered, delivery_error=delivery.error)
                    )
    finally:
        engine.dispose()
    return new


def recorded_alerts(settings: Settings, model: str) -> list[dict[str, Any]]:
    """Every recorded alert of ``model``, oldest first."""
    return [dict(row) for row in rows_of(settings, _table(), model)]
