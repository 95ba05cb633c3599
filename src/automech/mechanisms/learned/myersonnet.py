"""MyersonNet (Duetting et al., "Optimal Auctions through Deep Learning", Section 4).

A single-item auction that is exactly DSIC and IR for every parameter value. Each bidder
i has a strictly increasing piecewise-linear "virtual value" function, a min over K
groups of a max over J lines,

    phibar_i(b) = min_k max_j ( exp(alpha_ikj) * (b - f) + u * beta_ikj ),

whose inverse is again min-max form with the roles swapped,

    phibar_i^-1(y) = f + max_k min_j exp(-alpha_ikj) * (y - u * beta_ikj),

with ``u`` the values' unit (the support's width) and ``f`` its floor, so that the learned
parameters and the relaxation's temperature mean the same in any currency and on any
offset (the same family of functions, reparametrised).

The item goes to the highest *non-negative* virtual bid ("SPA-0": a second-price auction
with reserve 0 on the virtual bids; ties to the lowest index). The winner pays the
smallest bid that still wins, ``phibar_i^-1(max(0, max_{k != i} phibar_k(b_k)))``.
The allocation is monotone in the own bid and the payment is its threshold, so the
auction is DSIC; the winner's bid is at least its threshold, so it is IR.

Training (:mod:`automech.methods.myersonnet`) replaces the argmax by a softmax over the
virtual bids and a dummy at 0, ``z = softmax(T * [phibar(b), 0])``, and charges
``z_i * phibar_i^-1(max(0, max_{k != i} phibar_k(b_k)))`` (the paper's relaxation).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from automech.errors import NotApplicableError
from automech.mechanisms.base import Mechanism
from automech.problems.setting import Setting


class MyersonNetMechanism(Mechanism):
    """Monotone min-max virtual values per bidder, SPA-0 on them, threshold payments."""

    name = "myersonnet"

    def __init__(
        self, setting: Setting, groups: int = 10, lines: int = 10, init_seed: int = 0
    ) -> None:
        super().__init__(setting)
        problem = self.applicable(setting)
        if problem:
            raise NotApplicableError(f"{self.name}: {problem}")
        n = setting.num_bidders
        gen = torch.Generator().manual_seed(init_seed)
        self.groups, self.lines, self.init_seed = groups, lines, init_seed
        #: The values' unit (:attr:`Setting.value_unit`): the ``beta`` parameter holds the
        #: offsets in it and the relaxation's softmax sees virtual bids in it, so values
        #: scaled by c train along the same path and end with c times the offsets.
        self.unit = setting.value_unit
        #: ... and the lines are anchored at the support's floor (``b - floor``): the same
        #: family of functions, with offsets that start near the support, not near 0.
        self.floor = float(setting.value_floor[0])
        # Near the identity at the start: slopes exp(alpha) ~ 1, small offsets.
        self.alpha = torch.nn.Parameter(0.1 * torch.randn(n, groups, lines, generator=gen))
        self.beta = torch.nn.Parameter(-0.1 * torch.rand(n, groups, lines, generator=gen))

    @classmethod
    def applicable(cls, setting: Setting) -> str | None:
        if setting.num_items != 1:
            return "one item only (MyersonNet is a single-item auction)"
        if not setting.unit_supply:
            return "needs unit supply"
        if setting.objective.name != "revenue":
            return "maximises revenue only"
        return None

    def config(self) -> dict[str, Any]:
        return {"groups": self.groups, "lines": self.lines, "init_seed": self.init_seed}

    def virtual_bids(self, bids: torch.Tensor) -> torch.Tensor:
        """phibar_i(b_i) for bids (B, n, 1): (B, n)."""
        b = bids[..., 0].unsqueeze(-1).unsqueeze(-1)  # (B, n, 1, 1)
        lines = torch.exp(self.alpha) * (b - self.floor) + self.beta * self.unit  # (B, n, K, J)
        return lines.amax(dim=-1).amin(dim=-1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """phibar_i^-1(y_i) for y (B, n): (B, n)."""
        lines = torch.exp(-self.alpha) * (y.unsqueeze(-1).unsqueeze(-1) - self.beta * self.unit)
        return lines.amin(dim=-1).amax(dim=-1) + self.floor

    def _thresholds(self, phi: torch.Tensor) -> torch.Tensor:
        """max(0, highest virtual bid among the other bidders), per bidder: (B, n)."""
        n = phi.shape[1]
        if n == 1:
            return torch.zeros_like(phi)
        top2 = phi.topk(2, dim=1)
        is_top = torch.arange(n, device=phi.device).view(1, n) == top2.indices[:, :1]
        others = torch.where(is_top, top2.values[:, 1:2], top2.values[:, 0:1])
        return others.clamp_min(0.0)

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        phi = self.virtual_bids(bids)
        best, winner = phi.max(dim=1)
        alloc = torch.zeros_like(phi)
        alloc.scatter_(1, winner.unsqueeze(1), (best >= 0).to(phi.dtype).unsqueeze(1))
        pay = alloc * self.inverse(self._thresholds(phi)).clamp_min(0.0)
        return alloc.unsqueeze(-1), pay

    def relaxed(self, bids: torch.Tensor, temperature: float):
        phi = self.virtual_bids(bids)
        dummy = torch.zeros_like(phi[:, :1])
        t = temperature / self.unit  # the temperature applies to virtual bids in units
        z = torch.softmax(t * torch.cat([phi, dummy], dim=1), dim=1)[:, :-1]
        return z.unsqueeze(-1), z * self.inverse(self._thresholds(phi)).clamp_min(0.0)

    def describe(self, values: np.ndarray) -> dict[str, Any]:
        """Reserve prices ``phibar_i^-1(0)`` and the virtual value functions on a grid."""
        low, high = self.setting.prior.support()
        n = self.setting.num_bidders
        with torch.no_grad():
            reserves = self.inverse(torch.zeros(1, n, dtype=self.dtype))[0]
            grid = torch.linspace(float(low.min()), float(high.max()), 11, dtype=self.dtype)
            phi = self.virtual_bids(grid.view(-1, 1, 1).expand(-1, n, 1))
            v = torch.as_tensor(values, dtype=self.dtype)
            alloc, pay = self(v)
        return {
            "kind": self.name,
            "config": self.config(),
            "reserve_prices": reserves.tolist(),
            "virtual_value_grid": grid.tolist(),
            "virtual_values": phi.T.tolist(),
            "sale_share": float(alloc.sum(dim=(1, 2)).mean()),
            "win_share_per_bidder": alloc[..., 0].mean(0).tolist(),
            "revenue": float(pay.sum(-1).mean()),
        }
