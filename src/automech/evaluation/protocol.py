"""The one evaluation protocol every mechanism is scored with.

On ``samples`` test profiles drawn from the setting's prior with ``seed``
(``prior.test_profiles``; a data prior gives all its held-out profiles instead, whatever
``samples`` is, and the revenue gets a 95 % bootstrap confidence interval), or, when the
prior is finite with at most :data:`MAX_EXACT_PROFILES` profiles (listed profiles,
per-bidder type lists, Bernoulli values), on every profile of its support weighted by its
probability: the figures are then expectations, not estimates (``exact``, standard
errors 0), and regret is the expectation over the support when it has at most
``search.profiles`` profiles (else over the most likely ones, renormalised):

* revenue (and the setting's objective, when it is not revenue) and welfare, each
  with its standard error ``std / sqrt(samples)``;
* IR: the share of (profile, bidder) pairs with negative truthful utility, and its size;
* feasibility: the share of profiles whose allocation breaks a constraint (unit supply,
  unit demand, 0 <= x <= 1), and the worst excess;
* regret per bidder, by the misreport search of :mod:`automech.evaluation.regret` on the
  first ``search.profiles`` profiles, reported as the mean over profiles and bidders,
  the maximum, and per bidder, with the search budget used; with a ``ladder``
  (:mod:`automech.evaluation.ladder`) the search is rerun with its budget doubled until
  the mean stops moving, and every rung's figures are kept (``regret_ladder``);
* regret-adjusted revenue (Rahme, Jelassi, Weinberg, "Auction Learning as a Two-Player
  Game", ICLR 2021, section 3): ``(sqrt(P) - sqrt(R))^2`` with P the mean revenue and R
  the mean regret summed over bidders, the revenue of a truthful auction the authors
  derive from one with revenue P and total regret R (0 when R >= P).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from rich.progress import Progress

from automech.device import default_device
from automech.errors import EvaluationError
from automech.evaluation.ladder import Ladder, converged_regret, regret_summary
from automech.evaluation.regret import THOROUGH, RegretSearch, search_regrets, tolerance
from automech.mechanisms.base import Mechanism
from automech.problems.data import DataPrior
from automech.problems.finite_types import enumerate_support, support_size
from automech.problems.setting import Setting, check_sample_size

#: Default seed of the test profiles: fixed, so every method is scored on the same set,
#: and distinct from any training seed stream.
TEST_SEED = 987_654_321

#: Default number of test profiles, the same for ``train``, ``evaluate``, ``baselines`` and
#: ``design``: at 100,000 the standard error of a 1x2 U[0,1] revenue is ~0.0009, so a
#: headline figure is not "above the proven optimum" by noise (at 10,000 it was ~0.004).
TEST_PROFILES = 100_000

#: Profiles per forward pass when computing revenue, welfare, IR and feasibility.
CHUNK = 2**15

#: Resamples of the bootstrap confidence interval of revenue (data priors).
BOOTSTRAP_RESAMPLES = 1000

#: Largest finite support evaluated exactly (every profile, weighted by its probability).
MAX_EXACT_PROFILES = 65_536


@dataclass
class Evaluation:
    """Everything the protocol measures; ``to_dict`` gives the JSON form."""

    mechanism: str
    setting: str
    samples: int
    seed: int
    revenue: float
    revenue_se: float
    welfare: float
    welfare_se: float
    objective: str
    objective_value: float
    objective_se: float
    ir_violation_rate: float
    ir_violation_mean: float
    infeasible_rate: float
    infeasibility_max: float
    regret_mean: float | None
    regret_max: float | None
    regret_se: float | None
    regret_per_bidder: list[float] | None
    regret_samples: int
    search: dict[str, Any] | None
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)
    #: 95 % bootstrap confidence interval of the mean revenue, on a data prior only.
    revenue_ci: list[float] | None = None
    #: Expectations over a finite prior's whole support rather than sample means.
    exact: bool = False
    #: Why the figures are estimates when the prior is finite but too large to enumerate.
    note: str | None = None
    #: ``(sqrt(revenue) - sqrt(R))^2``, R the mean regret summed over bidders (ALGNet's
    #: score, :func:`adjusted_revenue`); None when regret is not measured.
    revenue_adjusted: float | None = None
    #: The budget ladder's rungs (budget, regret_mean, regret_se, regret_max, seconds),
    #: when regret was searched with a ladder; the regret fields are the last rung's.
    regret_ladder: list[dict[str, Any]] | None = None
    #: Whether the ladder converged (None for a fixed budget).
    regret_converged: bool | None = None
    #: The budget (multiplier of ``search``) at which the ladder converged.
    regret_budget: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_tolerance = tolerance


def adjusted_revenue(revenue: float, regret_total: float | None) -> float | None:
    """Regret-adjusted revenue ``(sqrt(P) - sqrt(R))^2`` for ``P = revenue`` and ``R =
    regret_total`` (mean regret summed over bidders), as ALGNet scores a mechanism
    (Rahme et al., ICLR 2021, section 3: an auction with revenue P and total regret R
    yields a truthful one with revenue ``(sqrt(P) - sqrt(R))^2``, exactly for one
    bidder); 0 when ``R >= P`` (and P is taken as 0 when negative); None without R."""
    if regret_total is None:
        return None
    if regret_total <= 0:  # exactly the revenue, not a rounded square of its root
        return max(revenue, 0.0)
    gap = math.sqrt(max(revenue, 0.0)) - math.sqrt(max(regret_total, 0.0))
    return gap**2 if gap > 0 else 0.0


def bootstrap_ci(
    values: np.ndarray, seed: int, resamples: int = BOOTSTRAP_RESAMPLES, level: float = 0.95
) -> list[float]:
    """Percentile bootstrap confidence interval ``[low, high]`` of the mean of
    ``values``: ``resamples`` resamples with replacement, drawn with ``seed``."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2**22 // max(len(values), 1))  # resamples per batch: bounded memory
    for s in range(0, resamples, chunk):
        k = min(chunk, resamples - s)
        means[s : s + k] = values[rng.integers(0, len(values), size=(k, len(values)))].mean(1)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return [float(low), float(high)]


def evaluate(
    mechanism: Mechanism,
    setting: Setting | None = None,
    samples: int = TEST_PROFILES,
    seed: int = TEST_SEED,
    search: RegretSearch | None = RegretSearch(),
    thorough: bool = False,
    progress: bool = False,
    ladder: Ladder | bool | None = None,
) -> Evaluation:
    """Score ``mechanism`` on ``setting`` (its own by default) with the shared protocol.

    Parameters
    ----------
    mechanism
        Any :class:`~automech.mechanisms.base.Mechanism`.
    setting
        The problem to score on (default: the mechanism's own).
    samples
        Test profiles for revenue, welfare, IR and feasibility (ignored on a data prior:
        its held-out profiles are all used; ``Evaluation.samples`` says how many).
    seed
        Seed of the test profiles and of the random misreports (fixed by default, so
        every design is scored on the same profiles).
    search
        Misreport search budget (:class:`RegretSearch`); None skips regret.
    thorough
        Use the papers' budget :data:`THOROUGH` (overrides ``search``; a fixed budget,
        so it cannot be combined with ``ladder``).
    progress
        Show a Rich progress bar.
    ladder
        Search regret with the budget ladder of :func:`converged_regret` from ``search``
        (True: the default :class:`Ladder`); None or False: the fixed budget ``search``.

    Returns
    -------
    Evaluation
        Revenue with its standard error, welfare, IR violation rate, infeasibility,
        regret (mean and max over the searched profiles), regret-adjusted revenue, with a
        ladder its rungs and whether it converged, and on a data prior a 95 % bootstrap
        confidence interval of revenue (``revenue_ci``); ``to_dict()`` is the JSON that
        ``metrics.json`` holds.
    """
    setting = setting or mechanism.setting
    if ladder is True:
        ladder = Ladder()
    if thorough:
        if ladder:
            raise EvaluationError(
                "thorough is the papers' fixed budget: use it without a ladder, or give "
                "the ladder's first rung as the search"
            )
        search = THOROUGH
    if ladder is not None and ladder is not False and not isinstance(ladder, Ladder):
        raise EvaluationError(f"ladder must be a Ladder, True or None, got {ladder!r}")
    steps_per_bidder = ladder.max_rungs if isinstance(ladder, Ladder) else 1
    start = time.perf_counter()
    device = default_device()
    mechanism = mechanism.to(device)
    dtype = mechanism.dtype
    data = isinstance(setting.prior, DataPrior)
    support = None if data else enumerate_support(setting.prior, MAX_EXACT_PROFILES)
    size = None if data else support_size(setting.prior)
    note = None
    weights: torch.Tensor | None = None
    if support is not None:
        order = np.argsort(-support[1], kind="stable")  # most likely first (regret)
        profiles, probs = support[0][order], support[1][order]
        weights = torch.as_tensor(probs, dtype=torch.float64, device=device)
    else:
        if not data:
            check_sample_size(samples, setting.num_bidders * setting.num_items)
        if size is not None:
            note = (
                f"the prior is finite but has {size:,} profiles (more than "
                f"{MAX_EXACT_PROFILES:,}): figures are sample estimates"
            )
        profiles = setting.prior.test_profiles(samples, seed)
    samples = len(profiles)
    values = torch.as_tensor(profiles, dtype=dtype, device=device)
    tol = _tolerance(dtype, setting)
    regret_profiles = min(search.profiles, samples) if search else 0
    steps = math.ceil(samples / CHUNK) + (setting.num_bidders * steps_per_bidder if search else 0)

    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task(f"evaluating {mechanism.name}", total=steps)
        rev, wel, obj, ir_bad, ir_size, infeasible, worst = [], [], [], [], [], [], 0.0
        with torch.no_grad():
            for s in range(0, samples, CHUNK):
                v = values[s : s + CHUNK]
                alloc, pay = mechanism(v)
                util = setting.utilities(v, alloc, pay)
                rev.append(pay.sum(dim=1))
                wel.append(setting.values(v, alloc).sum(dim=1))
                obj.append(setting.objective.value(v, alloc, pay))
                ir_bad.append((util < -tol).double().mean(dim=1))
                ir_size.append((-util).clamp_min(0).mean(dim=1))
                excess = setting.infeasibility(alloc)
                infeasible.append((excess > tol).double())
                worst = max(worst, float(excess.max()))
                bar.advance(task)
        r: torch.Tensor | None = None
        climbed = None
        if search and isinstance(ladder, Ladder):
            climbed = converged_regret(
                mechanism,
                setting,
                values[:regret_profiles],
                search,
                ladder,
                seed=seed,
                weights=weights,
                total=samples,
                on_rung=lambda _: bar.advance(task, setting.num_bidders),
            )
            r = torch.as_tensor(climbed.regrets)
        elif search:
            r = search_regrets(
                mechanism,
                setting,
                values[:regret_profiles],
                search,
                seed,
                on_bidder=lambda _: bar.advance(task),
            )

    def mean_se(parts):
        x = torch.cat(parts).double()
        if weights is not None:  # an expectation over the support: no error
            return float((x * weights).sum()), 0.0
        return float(x.mean()), float(x.std() / math.sqrt(len(x))) if len(x) > 1 else 0.0

    def mean(parts):
        return mean_se(parts)[0]

    revenue, revenue_se = mean_se(rev)
    welfare, welfare_se = mean_se(wel)
    objective, objective_se = mean_se(obj)
    if r is not None:
        regret: dict[str, Any] = regret_summary(r, weights, samples)
    else:
        regret = dict(regret_mean=None, regret_max=None, regret_se=None, regret_per_bidder=None)
    per_bidder = regret["regret_per_bidder"]
    return Evaluation(
        mechanism=mechanism.name,
        setting=setting.name or setting.describe(),
        samples=samples,
        seed=seed,
        revenue=revenue,
        revenue_se=revenue_se,
        welfare=welfare,
        welfare_se=welfare_se,
        objective=setting.objective.name,
        objective_value=objective,
        objective_se=objective_se,
        ir_violation_rate=mean(ir_bad),
        ir_violation_mean=mean(ir_size),
        infeasible_rate=mean(infeasible),
        infeasibility_max=worst,
        **regret,
        regret_samples=regret_profiles,
        search=search.to_dict() if search else None,
        seconds=time.perf_counter() - start,
        revenue_ci=bootstrap_ci(torch.cat(rev).double().cpu().numpy(), seed) if data else None,
        exact=weights is not None,
        note=note,
        revenue_adjusted=adjusted_revenue(revenue, None if per_bidder is None else sum(per_bidder)),
        regret_ladder=None if climbed is None else climbed.rungs,
        regret_converged=None if climbed is None else climbed.converged,
        regret_budget=None if climbed is None else climbed.budget,
    )
