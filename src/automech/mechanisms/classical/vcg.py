"""The Vickrey-Clarke-Groves mechanism with Clarke pivot payments."""

from __future__ import annotations

import torch

from automech.mechanisms.base import Mechanism
from automech.mechanisms.welfare import max_welfare
from automech.problems.setting import Setting


class VCG(Mechanism):
    """Welfare-maximising allocation x*(b); bidder i pays the externality it imposes:

        p_i(b) = W(0, b_-i) - (W(b) - b_i . x*_i(b)),

    where W is the maximal welfare (net of production costs, if the objective has them)
    and ``(0, b_-i)`` removes bidder i by zeroing its bids.  DSIC and IR.
    For additive bidders and unit supply this is a second-price auction per item.
    """

    name = "vcg"

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alloc, welfare = max_welfare(bids, self.setting)
        n = bids.shape[1]
        without = bids.unsqueeze(1).repeat(1, n, 1, 1)  # (B, n, n, m)
        idx = torch.arange(n, device=bids.device)
        without[:, idx, idx, :] = 0.0
        _, welfare_without = max_welfare(without.flatten(0, 1), self.setting)
        own = Setting.values(bids, alloc)
        pay = welfare_without.view(-1, n) - (welfare.unsqueeze(1) - own)
        return alloc, pay.clamp_min(0.0)
