"""Scoring a dynamic AMA with the exact (unregularised) inner solution.

:func:`evaluate_dynamic` measures, on ``samples`` fresh profiles of the environment's
prior (seed :data:`~automech.evaluation.protocol.TEST_SEED` by default, so every mechanism
is scored on the same profiles): the objective (revenue, welfare or makespan) with its
standard error, revenue and welfare, the IR violation rate, and an IC check: for
``ic_profiles`` profiles and every agent, the best utility gain over ``ic_misreports``
misreported types (prior draws, the truthful type scaled by 0.5 and 1.5, and the null
report).  AMAs are exactly IC and IR, so both checks read zero up to floating point.
The dynamic VCG mechanism is scored on the same profiles beside it.

:func:`evaluate` is the shared protocol's signature (what
:func:`automech.evaluation.evaluate` calls for a dynamic setting): the misreport search
budget maps to the IC check (``search.profiles`` profiles; ``None`` skips it).
:class:`DynamicEvaluation` carries the shared protocol's keys too (``regret_mean``,
``regret_max`` from the IC check, ``infeasible_rate`` None: a policy is always feasible)
and lists the VCG row under ``baselines``, so tables and sweeps read both kinds alike.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from rich.progress import Progress

from automech.errors import AutomechError, NotApplicableError
from automech.evaluation.protocol import TEST_PROFILES, TEST_SEED
from automech.evaluation.regret import THOROUGH, RegretSearch
from automech.mechanisms.learned.dynamic_ama import DynamicAMA
from automech.problems.dynamic.envs import DynamicEnv

#: Utility differences below this count as zero (float64 solves).
TOL = 1e-9

#: Misreports per profile and agent of the IC check.
IC_MISREPORTS = 16

#: The shared protocol's default misreport search (its ``profiles`` sets the IC check's).
DEFAULT_SEARCH = RegretSearch()


@dataclass
class DynamicEvaluation:
    """What :func:`evaluate_dynamic` measures; ``to_dict`` gives the JSON form (the keys of
    the shared protocol's :class:`~automech.evaluation.Evaluation` that have a meaning
    here, and the VCG row under ``baselines``)."""

    mechanism: str
    setting: str
    samples: int
    seed: int
    objective: str
    objective_value: float
    objective_se: float
    revenue: float
    revenue_se: float
    welfare: float
    welfare_se: float
    ir_violation_rate: float
    ic_profiles: int
    ic_misreports: int
    ic_max_gain: float | None
    ic_violation_rate: float | None
    seconds: float
    vcg: dict[str, float] | None = None
    #: the IC check as regret: mean and max over profiles and agents of the best gain
    #: (clamped at 0)
    regret_mean: float | None = None
    regret_max: float | None = None
    maximise: bool = True

    kind = "dynamic"

    @property
    def regret_samples(self) -> int:
        return self.ic_profiles

    @property
    def infeasible_rate(self) -> None:
        """No figure: the chosen policy is always a feasible outcome."""
        return None

    def baselines(self) -> dict[str, dict[str, Any]]:
        """Rows of the mechanisms scored beside this one: the dynamic VCG mechanism."""
        if not self.vcg or self.mechanism == "dynamic-vcg":
            return {}
        return {
            "dynamic-vcg": {
                "mechanism": "dynamic-vcg",
                "objective": self.objective,
                **self.vcg,
                "samples": self.samples,
                "maximise": self.maximise,
            }
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            **asdict(self),
            "regret_samples": self.regret_samples,
            "infeasible_rate": self.infeasible_rate,
            "baselines": self.baselines(),
        }


def _mean_se(x: torch.Tensor) -> tuple[float, float]:
    x = x.double()
    se = float(x.std() / math.sqrt(len(x))) if len(x) > 1 else 0.0
    return float(x.mean()), se


def evaluate_dynamic(
    mechanism: DynamicAMA,
    samples: int = TEST_PROFILES,
    seed: int = TEST_SEED,
    ic_profiles: int = 200,
    ic_misreports: int = IC_MISREPORTS,
    with_vcg: bool = True,
    progress: bool = False,
) -> DynamicEvaluation:
    """Score ``mechanism`` on its environment (exact inner solutions), with the dynamic
    VCG mechanism's objective on the same profiles beside it when ``with_vcg``."""
    env = mechanism.env
    start = time.perf_counter()
    types = env.sample(samples, np.random.default_rng(seed))
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task(f"evaluating on {env.name}", total=2 + bool(with_vcg))
        out = mechanism.outcome(types)
        bar.advance(task)
        gains = None
        if ic_profiles > 0:
            gains = misreport_gains(
                mechanism, types[:ic_profiles], ic_misreports, np.random.default_rng([seed, 1])
            )
        bar.advance(task)
        vcg = None
        if with_vcg:
            base = DynamicAMA.vcg(env).outcome(types)
            vcg = dict(zip(("objective_value", "objective_se"), _mean_se(base.objective)))
            vcg.update(zip(("revenue", "revenue_se"), _mean_se(base.revenue)))
            vcg.update(zip(("welfare", "welfare_se"), _mean_se(base.welfare)))
            bar.advance(task)
    objective, objective_se = _mean_se(out.objective)
    revenue, revenue_se = _mean_se(out.revenue)
    welfare, welfare_se = _mean_se(out.welfare)
    scale = max(1.0, float(out.asw.abs().max()))
    regret = None if gains is None else gains.clamp_min(0.0).double()
    return DynamicEvaluation(
        mechanism="dynamic-vcg" if mechanism.is_vcg else mechanism.name,
        setting=env.name,
        samples=samples,
        seed=seed,
        objective=env.objective,
        objective_value=objective,
        objective_se=objective_se,
        revenue=revenue,
        revenue_se=revenue_se,
        welfare=welfare,
        welfare_se=welfare_se,
        ir_violation_rate=float((out.utilities < -TOL * scale).double().mean()),
        ic_profiles=0 if gains is None else len(gains),
        ic_misreports=ic_misreports,
        ic_max_gain=None if gains is None else float(gains.max()),
        ic_violation_rate=None if gains is None else float((gains > TOL * scale).double().mean()),
        seconds=time.perf_counter() - start,
        vcg=vcg,
        regret_mean=None if regret is None else float(regret.mean()),
        regret_max=None if regret is None else float(regret.max()),
        maximise=env.maximise,
    )


def evaluate(
    mechanism: DynamicAMA,
    setting: DynamicEnv | None = None,
    samples: int = TEST_PROFILES,
    seed: int = TEST_SEED,
    search: RegretSearch | None = DEFAULT_SEARCH,
    thorough: bool = False,
    progress: bool = False,
) -> DynamicEvaluation:
    """:func:`evaluate_dynamic` with the shared protocol's arguments: the IC check runs on
    the first ``search.profiles`` profiles (``THOROUGH``'s with ``thorough``; none when
    ``search`` is None), with :data:`IC_MISREPORTS` misreports per profile and agent.

    Raises
    ------
    NotApplicableError
        when ``mechanism`` is not a dynamic mechanism (a static one built on an MDP).
    AutomechError
        when ``setting`` is another environment than the mechanism's: a dynamic AMA's
        boosts are indexed by its MDP's states and actions.
    """
    if not isinstance(mechanism, DynamicAMA):
        raise NotApplicableError(
            f"{getattr(mechanism, 'name', mechanism)!r} is not a "
            "dynamic mechanism: a dynamic setting scores dynamic AMAs"
        )
    env = mechanism.env
    if setting is not None and setting is not env and setting.name != env.name:
        raise AutomechError(
            f"a dynamic AMA is tied to its MDP: this one was designed for "
            f"{env.name!r}, not {setting.name!r}"
        )
    if thorough:
        search = THOROUGH
    ic_profiles = min(search.profiles, samples) if search else 0
    return evaluate_dynamic(
        mechanism, samples=samples, seed=seed, ic_profiles=ic_profiles, progress=progress
    )


def misreports(
    env, types: torch.Tensor, i: int, count: int, rng: np.random.Generator
) -> torch.Tensor:
    """``count`` misreported types of agent ``i`` per profile: (P, count, *type_shape)."""
    P = len(types)
    draws = [env.sample(P, rng)[:, i] for _ in range(max(count - 3, 0))]
    own = types[:, i]
    fixed = [0.5 * own, 1.5 * own, env.null_type()[i].expand_as(own)]
    return torch.stack((draws + fixed)[:count], dim=1)


def misreport_gains(
    mechanism: DynamicAMA, types: torch.Tensor, count: int, rng: np.random.Generator
) -> torch.Tensor:
    """Best utility gain (P, n) of each agent over ``count`` misreports, the others
    reporting truthfully (<= 0 up to rounding for an IC mechanism)."""
    P, n = len(types), mechanism.env.n
    truthful = mechanism.outcome(types).utilities  # (P, n)
    gains = []
    for i in range(n):
        lies = misreports(mechanism.env, types, i, count, rng)  # (P, K, ...)
        K = lies.shape[1]
        true = types.unsqueeze(1).expand(P, K, *types.shape[1:])
        reports = true.clone()
        reports[:, :, i] = lies
        flat = (P * K, *types.shape[1:])
        out = mechanism.outcome(true.reshape(flat), reports.reshape(flat))
        utility = out.utilities[:, i].reshape(P, K)
        gains.append(utility.max(1).values - truthful[:, i])
    return torch.stack(gains, dim=1)
