"""Automatic rollback: a champion that does worse live than the one it replaced moves back.

The previous champion's measured live metric is the mean of its scored periods while it
served as champion (:mod:`monitoring.performance`). When the current champion's gate
metric is worse than that by more than the spec's ``rollback_margin`` in each of its last
``rollback_periods`` scored periods, ``champion`` moves back to ``previous_champion``
(:func:`models.registry.rollback_champion`), and the reason is written on both versions
(``rollback.*`` tags; the one left is tagged ``rolled_back``). ``previous_champion`` is
cleared by the move, so the rule has nothing to compare with until the next promotion, and
no rollback ever restores the version rolled back from. Serving follows the alias on its
next refresh, as for any swap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from core.settings import Settings
from core.spec import ModelSpec
from monitoring.performance import PeriodQuality

CHAMPION = "champion"


@dataclass(frozen=True)
class RollbackCheck:
    """What the rollback rule found (and did) for one model."""

    model: str
    champion_version: int | None
    previous_version: int | None
    previous_live: float | None
    champion_recent: tuple[float, ...]
    rolled_back: bool
    reason: str


def rollback_verdict(
    spec: ModelSpec,
    periods: Sequence[PeriodQuality],
    champion_version: int | None,
    previous_version: int | None,
) -> RollbackCheck:
    """The rule, pure: is the champion worse live than its predecessor by the margin?"""

    def scores(version: int | None) -> list[float]:
        served = sorted(
            (p for p in periods if p.model_version == version and p.variant == CHAMPION),
            key=lambda p: p.period_start,
        )
        return [p.metrics[spec.gate_metric] for p in served if p.counted]

    def result(previous: float | None, recent: list[float], rolled: bool, reason: str):
        return RollbackCheck(spec.name, champion_version, previous_version, previous,
                             tuple(recent), rolled, reason)  # fmt: skip

    if spec.rollback_margin is None:
        return result(None, [], False, "no automatic rollback (the spec sets no margin)")
    if champion_version is None or previous_version is None:
        return result(None, [], False, "no previous champion to compare with")
    before = scores(previous_version)
    if not before:
        return result(None, [], False, f"v{previous_version} has no measured live metric")
    previous = sum(before) / len(before)
    recent = scores(champion_version)[-spec.rollback_periods :]
    if len(recent) < spec.rollback_periods:
        return result(previous, recent, False, f"v{champion_version}: too few scored periods")
    margin = spec.rollback_margin
    limit = previous - margin if spec.greater_is_better else previous + margin
    if all(spec.worse_than(score, limit) for score in recent):
        values = ", ".join(f"{s:.3f}" for s in recent)
        return result(
            previous,
            recent,
            True,
            f"v{champion_version} live {spec.gate_metric} {values} in its last "
            f"{len(recent)} periods, worse than v{previous_version}'s {previous:.3f} by more "
            f"than {margin}",
        )
    return result(previous, recent, False, f"v{champion_version} holds against v{previous_version}")


def apply_rollback(
    spec: ModelSpec, periods: Sequence[PeriodQuality], settings: Settings, as_of: datetime
):
    """Check the rule against the registry's aliases; roll back when it says so."""
    from models.registry import CHAMPION as CHAMPION_ALIAS
    from models.registry import alias_version, rollback_champion, rollback_target
    from models.tracking import configure_mlflow

    client = configure_mlflow(settings)
    name = spec.registered_model
    check = rollback_verdict(
        spec,
        periods,
        alias_version(settings, name, CHAMPION_ALIAS, client),
        rollback_target(settings, name, client),
    )
    if check.rolled_back:
        rollback_champion(settings, name, check.reason, at=as_of)
    return check
