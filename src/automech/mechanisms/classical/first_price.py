"""First-price auction: not truthful; kept to show that the regret evaluator finds it."""

from __future__ import annotations

import torch

from automech.mechanisms.base import Mechanism
from automech.mechanisms.welfare import max_welfare
from automech.problems.setting import Setting


class FirstPrice(Mechanism):
    """Allocate to maximise reported welfare (per item for additive bidders); each winner
    pays its own bid for what it receives, ``p_i = b_i . x_i``.  Bidders gain by shading
    their bids, so its regret is positive."""

    name = "first-price"

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alloc, _ = max_welfare(bids, self.setting)
        return alloc, Setting.values(bids, alloc)
