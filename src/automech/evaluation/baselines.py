"""The best classical mechanism of a setting, scored on the same test profiles as a design:
the bar a learned design must clear (``automech train`` prints it next to the result).
"""

from __future__ import annotations

import math
from typing import Any

from automech.errors import NotApplicableError
from automech.evaluation.protocol import TEST_SEED, Evaluation, evaluate
from automech.mechanisms import CLASSICAL
from automech.problems.setting import Setting

#: Classical mechanisms that are not strategyproof: never the bar a design must clear.
NOT_STRATEGYPROOF = frozenset({"first-price"})


def best_classical(
    setting: Any, samples: int, seed: int = TEST_SEED
) -> tuple[str, Evaluation] | None:
    """The strategyproof classical mechanism with the best objective on ``setting``,
    evaluated with ``samples`` profiles of ``seed`` (so on the profiles a design with the
    same arguments is scored on; exact expectations on a small finite prior), without
    a regret search (they are DSIC by construction).  None when none applies (or the
    setting is dynamic, whose baseline, the dynamic VCG, each evaluation reports)."""
    if not isinstance(setting, Setting):
        return None
    best: tuple[str, Evaluation] | None = None
    for cls in CLASSICAL:
        if cls.name in NOT_STRATEGYPROOF or cls.applicable(setting):
            continue
        try:
            mech = cls(setting)
        except NotApplicableError:
            continue
        report = evaluate(mech, setting, samples=samples, seed=seed, search=None)
        if best is None or report.objective_value > best[1].objective_value:
            best = (cls.name, report)
    return best


#: Relative gap below which a design is not called below its baseline (one part in 10^5).
EXACT_TOLERANCE = 1e-5


def comparison(design: Evaluation, baseline: tuple[str, Evaluation]) -> dict[str, Any]:
    """What ``metrics.json`` records of the comparison: the baseline's figures and
    ``below_baseline``, true when the design's objective is below the baseline's by more
    than two standard errors of the difference, and by more than :data:`EXACT_TOLERANCE`
    of the baseline's objective (what decides when both are exact expectations: float32
    rounding and the strict-preference margins of polished menu prices are below it)."""
    name, report = baseline
    gap = design.objective_value - report.objective_value
    noise = 2 * math.hypot(design.objective_se, report.objective_se)
    return {
        "baseline": {
            "mechanism": name,
            "revenue": report.revenue,
            "revenue_se": report.revenue_se,
            "objective": report.objective,
            "objective_value": report.objective_value,
            "objective_se": report.objective_se,
            "welfare": report.welfare,
            "ir_violation_rate": report.ir_violation_rate,
            "infeasible_rate": report.infeasible_rate,
            "samples": report.samples,
        },
        "below_baseline": bool(
            gap < -max(noise, EXACT_TOLERANCE * abs(report.objective_value), 1e-12)
        ),
        "gap_to_baseline": gap,
    }
