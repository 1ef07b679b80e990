"""One retraining policy for every reason to retrain: drift, performance drift, a schedule.

Every request goes through :func:`request_retraining`, which decides and records, in one
transaction on the platform database (``settings.storage.platform_database_url``:
PostgreSQL when configured, since several monitoring runs may ask at once; SQLite
otherwise):

- refused while a training run of the model is queued or running (the caller counts
  them, in Airflow with the Task SDK's ``get_dr_count``);
- refused inside the spec's cool-down (``retrain_cooldown_hours``) after the last
  accepted request;
- accepted otherwise.

Every decision is kept with its reason (``retrain_requests`` table), and an accepted one
gives the ``conf`` the training DAG is triggered with, which carries the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from core.settings import Settings
from core.spec import ModelSpec
from monitoring.platform_db import (
    as_utc,
    create_tables,
    platform_engine,
    platform_table,
    rows_of,
)

Kind = Literal["drift", "performance", "schedule", "manual"]
TABLE = "retrain_requests"


@dataclass(frozen=True)
class RetrainRequest:
    """A reason to retrain one model, from one source."""

    model: str
    kind: Kind
    reason: str
    requested_at: datetime


@dataclass(frozen=True)
class RetrainDecision:
    """What the policy made of a request, and why."""

    request: RetrainRequest
    accepted: bool
    why: str

    def conf(self) -> dict[str, Any]:
        """The training DAG's ``conf`` for an accepted request."""
        return {
            "reason": self.request.reason,
            "trigger": self.request.kind,
            "requested_at": self.request.requested_at.isoformat(),
        }


def decide(
    request: RetrainRequest,
    last_accepted_at: datetime | None,
    active_runs: int,
    cooldown: timedelta,
) -> RetrainDecision:
    """The policy itself, pure: debounce on running work, then on the cool-down."""
    if active_runs > 0:
        return RetrainDecision(
            request, False, f"refused: {active_runs} training run(s) already queued or running"
        )
    if last_accepted_at is not None and request.requested_at - last_accepted_at < cooldown:
        until = last_accepted_at + cooldown
        return RetrainDecision(
            request,
            False,
            f"refused: inside the cool-down of {cooldown} after the retrain accepted at "
            f"{last_accepted_at.isoformat()} (until {until.isoformat()})",
        )
    return RetrainDecision(request, True, f"accepted: {request.kind}: {request.reason}")


def _table():
    import sqlalchemy as sa

    return platform_table(
        TABLE,
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted", sa.Boolean, nullable=False),
        sa.Column("why", sa.Text, nullable=False),
    )


def request_retraining(
    request: RetrainRequest, spec: ModelSpec, settings: Settings, active_runs: int = 0
) -> RetrainDecision:
    """Decide on ``request`` with the policy and record the decision, atomically per model."""
    import sqlalchemy as sa

    table = _table()
    engine = platform_engine(settings)
    try:
        create_tables(engine, table.metadata)
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                # Two monitoring runs asking at once: one decides after the other.
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(hashtext(:m))"), {"m": spec.name}
                )
            last = conn.execute(
                sa.select(sa.func.max(table.c.requested_at)).where(
                    table.c.model == spec.name, table.c.accepted.is_(True)
                )
            ).scalar()
            decision = decide(
                request,
                as_utc(last),
                active_runs,
                timedelta(hours=spec.retrain_cooldown_hours),
            )
            conn.execute(
                table.insert().values(
                    model=spec.name,
                    kind=request.kind,
                    reason=request.reason,
                    requested_at=request.requested_at,
                    accepted=decision.accepted,
                    why=decision.why,
                )
            )
        return decision
    finally:
        engine.dispose()


def retrain_history(spec: ModelSpec, settings: Settings) -> list[RetrainDecision]:
    """Every recorded request of the model and its decision, oldest first."""
    return [
        RetrainDecision(
            RetrainRequest(row["model"], row["kind"], row["reason"], as_utc(row["requested_at"])),
            row["accepted"],
            row["why"],
        )
        for row in rows_of(settings, _table(), spec.name)
    ]
