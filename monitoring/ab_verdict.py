"""The live A/B verdict: challenger against champion on labelled live traffic.

The two variants' matured predictions (:mod:`monitoring.outcomes`) are compared with a
stated test, once each variant has at least ``min_samples`` labels:

- a classifier: the share of correct decisions, by the two-proportion z-test
  (statsmodels ``proportions_ztest``), the lift being the difference in that share with
  its Wald interval (``confint_proportions_2indep``);
- a regression: the absolute error, by Welch's t-test (scipy ``ttest_ind`` with unequal
  variances), the lift being the champion's mean absolute error minus the challenger's,
  with the test's own interval.

A positive lift means the challenger is better. The verdict is ``challenger_better`` or
``champion_better`` when the test rejects equality at ``alpha``, ``no_difference``
otherwise, and ``insufficient_data`` below the minimum sample size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd

from core.locks import registry_lock
from core.settings import Settings
from core.spec import ModelSpec

Decision = Literal["challenger_better", "champion_better", "no_difference", "insufficient_data"]
CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class ABVerdict:
    """The outcome of one live comparison, with its figures."""

    model: str
    test: str
    measure: str
    champion_version: int | None
    challenger_version: int | None
    champion_n: int
    challenger_n: int
    min_samples: int
    champion_value: float | None
    challenger_value: float | None
    lift: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    alpha: float
    decision: Decision

    def tags(self) -> dict[str, str]:
        """The verdict as MLflow model-version tags (``live_ab.*``)."""
        return {
            f"live_ab.{key}": "" if value is None else str(value)
            for key, value in asdict(self).items()
        }


def _versions(frame: pd.DataFrame) -> int | None:
    return int(frame["model_version"].iloc[-1]) if not frame.empty else None


def live_ab_verdict(
    spec: ModelSpec, labelled: pd.DataFrame, min_samples: int = 200, alpha: float = 0.05
) -> ABVerdict:
    """Compare the challenger with the champion on ``labelled`` live predictions.

    Only the newest version each variant served is compared (a variant that changed
    version mid-window would mix two models).
    """
    parts = {}
    for variant in (CHAMPION, CHALLENGER):
        rows = labelled[labelled["variant"] == variant].sort_values("logged_at")
        if not rows.empty:
            rows = rows[rows["model_version"] == rows["model_version"].iloc[-1]]
        parts[variant] = rows
    champion, challenger = parts[CHAMPION], parts[CHALLENGER]
    if spec.task == "classification":
        test, measure = "two-proportion z-test", "share of correct decisions"
        right = {v: (p["prediction"] == p[spec.label]).to_numpy() for v, p in parts.items()}
    else:
        test, measure = "Welch's t-test", "mean absolute error"
        right = {v: (p["prediction"] - p[spec.label]).abs().to_numpy() for v, p in parts.items()}
    base = {
        "model": spec.name,
        "test": test,
        "measure": measure,
        "champion_version": _versions(champion),
        "challenger_version": _versions(challenger),
        "champion_n": len(champion),
        "challenger_n": len(challenger),
        "min_samples": min_samples,
        "alpha": alpha,
    }
    if min(len(champion), len(challenger)) < min_samples:
        return ABVerdict(
            **base,
            champion_value=float(right[CHAMPION].mean()) if len(champion) else None,
            challenger_value=float(right[CHALLENGER].mean()) if len(challenger) else None,
            lift=None,
            ci_low=None,
            ci_high=None,
            p_value=None,
            decision="insufficient_data",
        )
    if spec.task == "classification":
        from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

        hits = [int(right[CHALLENGER].sum()), int(right[CHAMPION].sum())]
        sizes = [len(challenger), len(champion)]
        _, p_value = proportions_ztest(hits, sizes)
        low, high = confint_proportions_2indep(
            hits[0], sizes[0], hits[1], sizes[1], method="wald", alpha=alpha
        )
        lift = hits[0] / sizes[0] - hits[1] / sizes[1]
    else:
        from scipy.stats import ttest_ind

        result = ttest_ind(right[CHAMPION], right[CHALLENGER], equal_var=False)
        interval = result.confidence_interval(1 - alpha)
        p_value, low, high = result.pvalue, interval.low, interval.high
        lift = float(right[CHAMPION].mean() - right[CHALLENGER].mean())
    significant = bool(np.isfinite(p_value) and p_value < alpha)
    decision: Decision = (
        ("challenger_better" if lift > 0 else "champion_better") if significant else "no_difference"
    )
    return ABVerdict(
        **base,
        champion_value=float(right[CHAMPION].mean()),
        challenger_value=float(right[CHALLENGER].mean()),
        lift=float(lift),
        ci_low=float(low),
        ci_high=float(high),
        p_value=float(p_value),
        decision=decision,
    )


def record_verdict(verdict: ABVerdict, spec: ModelSpec, settings: Settings) -> None:
    """Write the verdict and its figures on both compared model versions (MLflow tags)."""
    from models.tracking import configure_mlflow

    client = configure_mlflow(settings)
    for version in {verdict.champion_version, verdict.challenger_version} - {None}:
        for key, value in verdict.tags().items():
            client.set_model_version_tag(spec.registered_model, str(version), key, value)


def promote_on_live_verdict(
    spec: ModelSpec, labelled: pd.DataFrame, settings: Settings
) -> ABVerdict | None:
    """Judge the challenger that awaits a live verdict, record the verdict on both
    versions, and promote it when it is better (when it is worse: ``rejected_live``, and
    the ``challenger`` alias is removed, so serving stops sending it traffic).

    A challenger awaits a verdict when the gate passed it with
    ``promotion_requires_live_verdict`` set, or when an operator sent it to a live A/B
    (:func:`models.registry.challenge_by_hand`). None when no challenger awaits one.
    """
    from models.registry import CHALLENGER as CHALLENGER_ALIAS
    from models.registry import CHAMPION as CHAMPION_ALIAS
    from models.registry import alias_version, set_champion
    from models.tracking import configure_mlflow

    # The verdict is judged against the champion read here: no gate or rollback moves it
    # meanwhile.
    with registry_lock(settings, spec.registered_model):
        client = configure_mlflow(settings)
        name = spec.registered_model
        challenger = alias_version(settings, name, CHALLENGER_ALIAS, client)
        champion = alias_version(settings, name, CHAMPION_ALIAS, client)
        if challenger is None or champion is None or challenger == champion:
            return None
        tags = client.get_model_version(name, str(challenger)).tags
        if tags.get("gate.decision") != "awaiting_live_verdict":
            return None
        served = labelled[labelled["model_version"].isin([challenger, champion])]
        verdict = live_ab_verdict(spec, served, settings.live_verdict_min_samples)
        record_verdict(verdict, spec, settings)
        if verdict.decision == "challenger_better" and verdict.challenger_version == challenger:
            set_champion(client, name, challenger, champion)
            client.set_model_version_tag(name, str(challenger), "gate.decision", "promoted")
            client.set_model_version_tag(
                name, str(challenger), "gate.live_reason",
                f"live A/B: {verdict.measure} lift {verdict.lift:+.4f} "
                f"[{verdict.ci_low:+.4f}, {verdict.ci_high:+.4f}], p={verdict.p_value:.2g}",
            )  # fmt: skip
        elif verdict.decision == "champion_better":
            client.set_model_version_tag(name, str(challenger), "gate.decision", "rejected_live")
            # Serving drops a removed challenger: its share of traffic goes back to the champion.
            client.delete_registered_model_alias(name, CHALLENGER_ALIAS)
        return verdict
