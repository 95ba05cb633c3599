"""Scoring a dynamic AMA with the exact (unregularised) inner solution.

:func:`evaluate_dynamic` measures, on ``samples`` fresh profiles of the environment's
prior (seed :data:`~automech.evaluation.protocol.TEST_SEED` by default, so every mechanism
is scored on the same profiles): the objective (revenue, welfare or makespan) with its
standard error, revenue and welfare, the IR violation rate, and an IC check: for
``ic_profiles`` profiles and every agent, the best utility gain over ``ic_misreports``
misreported types (prior draws, the truthful type scaled by 0.5 and 1.5, and the null
report).  AMAs are exactly IC and IR, so both checks read zero up to floating point.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from rich.progress import Progress

from automech.dynamic.ama import DynamicAMA
from automech.evaluation.protocol import TEST_SEED

#: Utility differences below this count as zero (float64 solves).
TOL = 1e-9


@dataclass
class DynamicEvaluation:
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mean_se(x: torch.Tensor) -> tuple[float, float]:
    x = x.double()
    se = float(x.std() / math.sqrt(len(x))) if len(x) > 1 else 0.0
    return float(x.mean()), se


def evaluate_dynamic(mechanism: DynamicAMA, samples: int = 10_000, seed: int = TEST_SEED,
                     ic_profiles: int = 200, ic_misreports: int = 16,
                     with_vcg: bool = True, progress: bool = False) -> DynamicEvaluation:
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
            gains = misreport_gains(mechanism, types[:ic_profiles], ic_misreports,
                                    np.random.default_rng([seed, 1]))
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
    return DynamicEvaluation(
        mechanism="dynamic-vcg" if mechanism.is_vcg else mechanism.name,
        setting=env.name, samples=samples, seed=seed, objective=env.objective,
        objective_value=objective, objective_se=objective_se, revenue=revenue,
        revenue_se=revenue_se, welfare=welfare, welfare_se=welfare_se,
        ir_violation_rate=float((out.utilities < -TOL * scale).double().mean()),
        ic_profiles=0 if gains is None else len(gains), ic_misreports=ic_misreports,
        ic_max_gain=None if gains is None else float(gains.max()),
        ic_violation_rate=None if gains is None else float(
            (gains > TOL * scale).double().mean()),
        seconds=time.perf_counter() - start, vcg=vcg)


def misreports(env, types: torch.Tensor, i: int, count: int,
               rng: np.random.Generator) -> torch.Tensor:
    """``count`` misreported types of agent ``i`` per profile: (P, count, *type_shape)."""
    P = len(types)
    draws = [env.sample(P, rng)[:, i] for _ in range(max(count - 3, 0))]
    own = types[:, i]
    fixed = [0.5 * own, 1.5 * own, env.null_type()[i].expand_as(own)]
    return torch.stack((draws + fixed)[:count], dim=1)


def misreport_gains(mechanism: DynamicAMA, types: torch.Tensor, count: int,
                    rng: np.random.Generator) -> torch.Tensor:
    """Best utility gain (P, n) of each agent over ``count`` misreports, the others
    reporting truthfully (<= 0 up to rounding for an IC mechanism)."""
    P, n = len(types), mechanism.env.n
    truthful = mechanism.outcome(types).utilities                      # (P, n)
    gains = []
    for i in range(n):
        lies = misreports(mechanism.env, types, i, count, rng)         # (P, K, ...)
        K = lies.shape[1]
        true = types.unsqueeze(1).expand(P, K, *types.shape[1:])
        reports = true.clone()
        reports[:, :, i] = lies
        flat = (P * K, *types.shape[1:])
        out = mechanism.outcome(true.reshape(flat), reports.reshape(flat))
        utility = out.utilities[:, i].reshape(P, K)
        gains.append(utility.max(1).values - truthful[:, i])
    return torch.stack(gains, dim=1)
