"""Converged regret: the misreport search rerun with its budget doubled until the figure
stops moving.

A regret figure from one fixed budget is a lower bound of unknown slack (You et al.,
arXiv 2601.13489, find published regrets too low by up to hundreds of times).  The ladder
reruns the search of :mod:`automech.evaluation.regret` at budgets ``k = 1, 2, 4, ...``
(:func:`scaled_search`) on the same profiles.  The best lie found at a profile can only
improve with budget, so rung r's per-profile regret is the maximum over rungs 1..r (each
search is a valid lower bound of the true regret); its mean ``R_r`` is non-decreasing.

The ladder stops at the first rung r >= 2 where

    R_r - R_{r-1} < rel_tol * R_r   and   R_r - R_{r-1} < se_tol * se(R_r),

(defaults 5 % and 2 standard errors; the standard error criterion is skipped for an
exact expectation over a finite prior, whose figures carry no sampling error), or where
``R_{r-1}`` and ``R_r`` are both zero (at most the arithmetic's tolerance,
:func:`~automech.evaluation.regret.tolerance`).  It then reports converged at budget
``k_r``; after ``max_rungs`` rungs without that, "not converged", with every rung's
figures (the last two included).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from automech.errors import EvaluationError
from automech.evaluation.regret import RegretSearch, search_regrets, tolerance
from automech.mechanisms.base import Mechanism
from automech.problems.setting import Setting


@dataclass(frozen=True)
class Ladder:
    """When the budget ladder stops.

    Attributes:
        max_rungs: most rungs run (budgets 1, 2, ..., 2**(max_rungs - 1)); at least 2.
        rel_tol: largest relative change of mean regret between consecutive rungs that
            counts as converged.
        se_tol: largest change, in standard errors of the mean regret, that counts as
            converged.
    """

    max_rungs: int = 4
    rel_tol: float = 0.05
    se_tol: float = 2.0

    def __post_init__(self) -> None:
        if isinstance(self.max_rungs, bool) or not isinstance(self.max_rungs, int):
            raise EvaluationError(f"ladder: max_rungs must be an integer, got {self.max_rungs!r}")
        if self.max_rungs < 2:
            raise EvaluationError(
                f"ladder: max_rungs must be >= 2 (convergence compares two rungs), "
                f"got {self.max_rungs}"
            )
        for key in ("rel_tol", "se_tol"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise EvaluationError(f"ladder: {key} must be a number > 0, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"max_rungs": self.max_rungs, "rel_tol": self.rel_tol, "se_tol": self.se_tol}


def scaled_search(search: RegretSearch, budget: int) -> RegretSearch:
    """``search`` with ``budget`` times the work: ``budget`` times the random
    candidates, the line-search grid intervals (``(line_points - 1) * budget + 1``
    points, so each rung's grid holds the previous one's), the refined starts
    (``ascent_starts``) and the local search's perturbations (``local_samples``).  The
    steps per start (``ascent_steps``, ``local_steps``) stay: with a step of
    ``ascent_lr`` of the box width, 1/ascent_lr steps already cross the box, and the
    budget goes to more basins.  The other fields (profiles, scales, joint grid) stay."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise EvaluationError(f"ladder: budget must be an integer >= 1, got {budget!r}")
    return replace(
        search,
        random=search.random * budget,
        line_points=(search.line_points - 1) * budget + 1 if search.line_points else 0,
        ascent_starts=search.ascent_starts * budget,
        local_samples=search.local_samples * budget,
    )


def regret_summary(
    regrets: torch.Tensor, weights: torch.Tensor | None = None, total: int | None = None
) -> dict[str, Any]:
    """Mean, standard error, max and per-bidder mean of per-profile regrets (P, n).

    With ``weights`` (a finite prior's probabilities of the searched profiles, most
    likely first) the mean is the expectation renormalised over them, with standard
    error 0 when they are the whole support (``total`` profiles) and None otherwise."""
    r = regrets.double()
    per_profile = r.mean(dim=1)
    if weights is not None:
        w = weights[: len(r)].double().to(r.device)
        w = w / w.sum()
        return dict(
            regret_mean=float((per_profile * w).sum()),
            regret_max=float(r.max()),
            regret_se=0.0 if len(r) == total else None,
            regret_per_bidder=[float(x) for x in (r * w[:, None]).sum(dim=0)],
        )
    return dict(
        regret_mean=float(per_profile.mean()),
        regret_max=float(r.max()),
        regret_se=float(per_profile.std() / math.sqrt(len(r))) if len(r) > 1 else 0.0,
        regret_per_bidder=[float(x) for x in r.mean(dim=0)],
    )


@dataclass
class LadderResult:
    """What :func:`converged_regret` found.

    Attributes:
        regrets: float64 (P, n), each bidder's regret at each profile, the maximum over
            all rungs run.
        rungs: per rung, ``budget`` (the multiplier of :func:`scaled_search`),
            ``regret_mean``, ``regret_se``, ``regret_max`` (of the running maximum over
            rungs) and ``seconds`` (of that rung's search).
        converged: whether the last two rungs met the criterion.
        budget: the budget of the rung at which it converged; None if not converged.
        summary: :func:`regret_summary` of ``regrets`` (the last rung's figures).
    """

    regrets: np.ndarray
    rungs: list[dict[str, Any]]
    converged: bool
    budget: int | None
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rungs": self.rungs,
            "converged": self.converged,
            "budget": self.budget,
            **self.summary,
        }


def _converged(
    before: dict[str, Any], after: dict[str, Any], ladder: Ladder, zero: float, exact: bool
) -> bool:
    if before["regret_mean"] <= zero and after["regret_mean"] <= zero:
        return True
    change = after["regret_mean"] - before["regret_mean"]
    if not change < ladder.rel_tol * after["regret_mean"]:
        return False
    se = after["regret_se"]
    return exact or se is None or change < ladder.se_tol * se


def converged_regret(
    mechanism: Mechanism,
    setting: Setting,
    values: Any,
    search: RegretSearch | None = None,
    ladder: Ladder | None = None,
    seed: int = 0,
    weights: Any = None,
    total: int | None = None,
    on_rung: Callable[[dict[str, Any]], None] | None = None,
) -> LadderResult:
    """Regret on the profiles ``values`` (P, n, m), searched with a doubling budget
    until it converges (module docstring).

    Args:
        mechanism: the mechanism (differentiable ones get gradient ascent).
        setting: the setting whose prior gives the search box.
        values: the profiles, array-like (P, n, m); all of them are searched (the
            ``profiles`` field of ``search`` is not used here).
        search: the budget-1 search (default :class:`RegretSearch`()).
        ladder: the stopping rule (default :class:`Ladder`()).
        seed: seed of rung 1's random misreports (rung r uses ``seed + r - 1``), so rung
            1 is the fixed-budget search of :func:`~automech.evaluation.evaluate`.
        weights: a finite prior's probabilities of the profiles (exact expectations).
        total: size of the finite support (regret_se is 0 when all of it is searched).
        on_rung: called with each rung's figures as it finishes.

    Returns:
        LadderResult: per-profile regrets (max over rungs), per-rung figures, whether
        and at which budget it converged.
    """
    search = search or RegretSearch()
    ladder = ladder or Ladder()
    if isinstance(values, torch.Tensor):
        v = values.to(dtype=mechanism.dtype, device=mechanism.device)
    else:
        v = torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=mechanism.dtype)
        v = v.to(mechanism.device)
    if v.ndim != 3 or tuple(v.shape[1:]) != tuple(setting.shape):
        raise EvaluationError(
            f"converged_regret needs profiles of shape (P, {setting.shape[0]}, "
            f"{setting.shape[1]}), got {tuple(v.shape)}"
        )
    w = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
    zero = tolerance(mechanism.dtype, setting)
    best: torch.Tensor | None = None
    rungs: list[dict[str, Any]] = []
    converged, at = False, None
    summary: dict[str, Any] = {}
    for r in range(ladder.max_rungs):
        budget = 2**r
        start = time.perf_counter()
        found = search_regrets(mechanism, setting, v, scaled_search(search, budget), seed + r)
        best = found if best is None else torch.maximum(best, found)
        summary = regret_summary(best, w, total)
        rung = {
            "budget": budget,
            "regret_mean": summary["regret_mean"],
            "regret_se": summary["regret_se"],
            "regret_max": summary["regret_max"],
            "seconds": time.perf_counter() - start,
        }
        rungs.append(rung)
        if on_rung is not None:
            on_rung(rung)
        if r and _converged(rungs[-2], rung, ladder, zero, exact=w is not None):
            converged, at = True, budget
            break
    assert best is not None
    return LadderResult(
        regrets=best.detach().cpu().double().numpy(),
        rungs=rungs,
        converged=converged,
        budget=at,
        summary=summary,
    )


__all__ = ["Ladder", "LadderResult", "converged_regret", "regret_summary", "scaled_search"]
