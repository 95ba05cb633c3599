"""Myerson's optimal auction (Myerson 1981), for one item or item by item.

For independent regular priors, with virtual values

    phi_i(v) = v - (1 - F_i(v)) / f_i(v),

the optimal single-item auction gives the item to the bidder with the highest
non-negative virtual value; the winner pays the smallest bid that still wins,
``phi_i^{-1}(max(0, max_{k != i} phi_k(b_k)))``.  Bidder i's reserve is ``phi_i^{-1}(0)``.
Virtual values of every built-in law are tabulated on a fine grid of its support
(linear beyond it) and inverted by interpolation, reserves included.
"""

from __future__ import annotations

import numpy as np
import torch

from automech.errors import NotApplicableError
from automech.mechanisms.base import Mechanism
from automech.problems.setting import Setting

GRID_POINTS = 16_385


def _myerson_problem(setting: Setting) -> str | None:
    if not setting.unit_supply:
        return "needs unit supply"
    if setting.objective.name != "revenue":
        return "maximises revenue only"
    if not setting.prior.independent:
        return "needs values independent across bidders and items"
    for i in range(setting.num_bidders):
        for j in range(setting.num_items):
            law = setting.prior.marginal(i, j)
            assert law is not None  # the prior is independent
            if law.discrete:
                return "needs continuous value laws (a discrete law has no virtual value)"
    return None


def interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation along the last axis, extrapolated linearly.

    ``x`` (..., K) and the increasing knots ``xp`` (..., G), values ``fp`` (..., G) share
    their leading dimensions.
    """
    g = xp.shape[-1]
    idx = torch.searchsorted(xp, x.contiguous()).clamp(1, g - 1)
    x0, x1 = xp.gather(-1, idx - 1), xp.gather(-1, idx)
    f0, f1 = fp.gather(-1, idx - 1), fp.gather(-1, idx)
    w = (x - x0) / (x1 - x0).clamp_min(torch.finfo(xp.dtype).tiny)
    return f0 + w * (f1 - f0)


class SeparateMyerson(Mechanism):
    """Myerson's optimal auction run separately on every item (additive bidders)."""

    name = "separate-myerson"
    grid: torch.Tensor
    phi: torch.Tensor
    reserves: torch.Tensor

    def __init__(self, setting: Setting) -> None:
        super().__init__(setting)
        problem = self.applicable(setting)
        if problem:
            raise NotApplicableError(f"{self.name}: {problem}")
        n, m = setting.shape
        grid = np.empty((n, m, GRID_POINTS))
        phi = np.empty_like(grid)
        reserves = np.empty((n, m))
        for i in range(n):
            for j in range(m):
                law = setting.prior.marginal(i, j)
                assert law is not None  # applicable: the prior is independent
                lo, hi = law.bounds()
                v = np.linspace(lo, hi, GRID_POINTS)
                with np.errstate(divide="ignore", invalid="ignore"):
                    ph = law.virtual_value(v)
                ok = np.isfinite(ph)  # 0/0 where the density vanishes at an end point
                ph = np.interp(v, v[ok], ph[ok])
                if np.any(np.diff(ph) < -1e-9 * max(1.0, abs(ph).max())):
                    raise NotApplicableError(
                        f"{self.name}: the {law.name} law of bidder {i}, item {j} is not "
                        "regular (decreasing virtual value); ironing is not implemented"
                    )
                grid[i, j], phi[i, j] = v, ph
                reserves[i, j] = lo if ph[0] >= 0 else np.interp(0.0, ph, v)
        self.register_buffer("grid", torch.as_tensor(grid), persistent=False)
        self.register_buffer("phi", torch.as_tensor(phi), persistent=False)
        self.register_buffer("reserves", torch.as_tensor(reserves), persistent=False)

    @classmethod
    def applicable(cls, setting: Setting) -> str | None:
        if setting.unit_demand and setting.num_items > 1:
            return "item-wise sale can give a unit-demand bidder several items"
        if setting.num_items == 1:
            return "one item: use 'myerson'"
        return _myerson_problem(setting)

    def virtual_values(self, bids: torch.Tensor) -> torch.Tensor:
        """phi_ij(b_ij) for bids (B, n, m)."""
        x = bids.permute(1, 2, 0)  # (n, m, B)
        return interp(x, self.grid.to(bids.dtype), self.phi.to(bids.dtype)).permute(2, 0, 1)

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = bids.shape[1]
        phi = self.virtual_values(bids)  # (B, n, m)
        best, winner = phi.max(dim=1)  # (B, m)
        sells = best >= 0
        alloc = torch.zeros_like(bids)
        alloc.scatter_(1, winner.unsqueeze(1), sells.to(bids.dtype).unsqueeze(1))
        # Highest virtual value among the others, per bidder: (B, n, m).
        if n > 1:
            top2 = phi.topk(2, dim=1).values
            is_top = torch.arange(n, device=bids.device).view(1, n, 1) == winner.unsqueeze(1)
            others = torch.where(is_top, top2[:, 1:2], top2[:, 0:1])
        else:
            others = torch.full_like(phi, -torch.inf)
        target = others.clamp_min(0.0).permute(1, 2, 0)  # (n, m, B)
        threshold = interp(target, self.phi.to(bids.dtype), self.grid.to(bids.dtype))
        reserve = self.reserves.to(bids.dtype).unsqueeze(-1)
        threshold = torch.where(target <= 0, reserve, threshold.clamp_min(0)).permute(2, 0, 1)
        return alloc, (alloc * threshold).sum(dim=-1)


class Myerson(SeparateMyerson):
    """Myerson's optimal single-item auction (independent regular priors)."""

    name = "myerson"

    @classmethod
    def applicable(cls, setting: Setting) -> str | None:
        if setting.num_items != 1:
            return "one item only: use 'separate-myerson'"
        return _myerson_problem(setting)
