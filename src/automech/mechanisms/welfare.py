"""Welfare maximisation over deterministic allocations, batched on tensors.

Welfare of a deterministic allocation x is ``sum_i v_i . x_i - cost(x)``, where the cost
``sum_j (c_p [item j produced] + c_d * copies of j)`` comes from a revenue-minus-cost
objective (zero otherwise).  Used by VCG and the first-price auction, and by later
designs that enumerate deterministic allocations (deterministic affine maximizers).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from automech.errors import NotApplicableError
from automech.problems.objectives import RevenueMinusCost
from automech.problems.setting import Setting

#: Largest number of deterministic allocations enumerated explicitly.
MAX_ENUMERATED_ALLOCATIONS = 50_000


def item_costs(setting: Setting) -> tuple[float, float]:
    """``(c_p, c_d)``: production and duplication cost per item (zero unless set)."""
    obj = setting.objective
    if isinstance(obj, RevenueMinusCost):
        return obj.params["production_cost"], obj.params["duplication_cost"]
    return 0.0, 0.0


def count_deterministic_allocations(setting: Setting) -> int:
    n, m = setting.shape
    if not setting.unit_supply:
        return 2 ** (n * m)
    return (n + 1) ** m


def deterministic_allocations(setting: Setting) -> np.ndarray:
    """Every feasible deterministic allocation, shape (K, n, m), the empty one included.

    Unit supply: each item goes to one bidder or none; unlimited supply: any 0/1 matrix.
    Unit-demand bidders receive at most one item.
    """
    n, m = setting.shape
    total = count_deterministic_allocations(setting)
    if total > MAX_ENUMERATED_ALLOCATIONS:
        raise NotApplicableError(
            f"{total} deterministic allocations for {n} bidders x {m} items: too many to "
            f"enumerate (limit {MAX_ENUMERATED_ALLOCATIONS})"
        )
    if setting.unit_supply:
        owners = np.array(list(itertools.product(range(n + 1), repeat=m)))  # n = nobody
        alloc = (owners[:, None, :] == np.arange(n)[None, :, None]).astype(float)
    else:
        bits = np.array(list(itertools.product((0.0, 1.0), repeat=n * m)))
        alloc = bits.reshape(-1, n, m)
    if setting.unit_demand:
        alloc = alloc[alloc.sum(axis=2).max(axis=1) <= 1]
    return alloc


def max_welfare(values: torch.Tensor, setting: Setting) -> tuple[torch.Tensor, torch.Tensor]:
    """A welfare-maximising deterministic allocation and its welfare.

    Args:
        values: (B, n, m) reported values.
    Returns:
        allocation (B, n, m) and welfare (B,).  Ties go to the lowest bidder index.
    """
    c_p, c_d = item_costs(setting)
    if not setting.unit_demand:
        return _additive(values, setting.unit_supply, c_p, c_d)
    if count_deterministic_allocations(setting) <= MAX_ENUMERATED_ALLOCATIONS:
        return _enumerated(values, setting, c_p, c_d)
    if c_p or c_d or not setting.unit_supply:
        raise NotApplicableError(
            "welfare maximisation for large unit-demand settings with "
            "costs or unlimited supply is not implemented"
        )
    return _assignment(values)


def _additive(values, unit_supply, c_p, c_d):
    """Items are separable for additive bidders: solve each item on its own."""
    if unit_supply:
        top, winner = values.max(dim=1)  # (B, m)
        gain = top - c_d - c_p
        alloc = torch.zeros_like(values)
        alloc.scatter_(1, winner.unsqueeze(1), (gain > 0).to(values.dtype).unsqueeze(1))
        return alloc, gain.clamp_min(0).sum(dim=-1)
    gains = (values - c_d).clamp_min(0)  # (B, n, m)
    total = gains.sum(dim=1) - c_p  # (B, m)
    produce = (total > 0).to(values.dtype)
    alloc = (values > c_d).to(values.dtype) * produce.unsqueeze(1)
    return alloc, total.clamp_min(0).sum(dim=-1)


def _enumerated(values, setting, c_p, c_d):
    allocs = torch.as_tensor(
        deterministic_allocations(setting), dtype=values.dtype, device=values.device
    )  # (K, n, m)
    cost = c_p * allocs.amax(dim=1).sum(dim=-1) + c_d * allocs.sum(dim=(1, 2))
    welfare = torch.einsum("bnm,knm->bk", values, allocs) - cost
    best, idx = welfare.max(dim=1)
    return allocs[idx], best


def _assignment(values):
    """Max-weight matching per profile (unit-demand, unit supply, no costs)."""
    v = values.detach().cpu().double().numpy()
    alloc = np.zeros_like(v)
    for b, mat in enumerate(v):
        rows, cols = linear_sum_assignment(mat, maximize=True)
        keep = mat[rows, cols] > 0
        alloc[b, rows[keep], cols[keep]] = 1.0
    alloc_t = torch.as_tensor(alloc, dtype=values.dtype, device=values.device)
    return alloc_t, (values * alloc_t).sum(dim=(1, 2))
