"""Sequential posted prices per item."""

from __future__ import annotations

from typing import Any

import torch

from automech.mechanisms.base import Mechanism
from automech.mechanisms.classical.pricing import TUNING_SEED, best_posted_price, tuning_statistics
from automech.problems.setting import Setting

#: Unit-demand prices are tuned by coordinate search on this many profiles and grid points.
UNIT_DEMAND_TUNING_SAMPLES = 2**15
UNIT_DEMAND_GRID = 101
UNIT_DEMAND_SWEEPS = 3


class PostedPrice(Mechanism):
    """Item prices ``p_j``; bidders are visited in index order and each buys, among the
    items still unsold, what maximises its utility at these prices: every item with
    ``b_ij >= p_j`` (additive), or the single item maximising ``b_ij - p_j >= 0``
    (unit-demand).  DSIC: the offer a bidder faces never depends on its own bid.

    Prices maximise revenue on samples from the prior: exactly per item for additive
    bidders (:func:`best_posted_price` on ``max_i v_ij``), by coordinate search on a grid
    for unit-demand bidders.
    """

    name = "posted-price"
    prices: torch.Tensor

    def __init__(self, setting: Setting, prices: list[float] | None = None) -> None:
        super().__init__(setting)
        if prices is None:
            prices = self._tune()
        self.register_buffer("prices", torch.tensor(prices, dtype=torch.float64))

    @classmethod
    def applicable(cls, setting: Setting) -> str | None:
        if not setting.unit_supply:
            return "needs unit supply"
        if setting.objective.name != "revenue":
            return "maximises revenue only"
        return None

    def config(self) -> dict[str, Any]:
        return {"prices": self.prices.tolist()}

    def _tune(self) -> list[float]:
        s = self.setting
        if not s.unit_demand:
            top = tuning_statistics(s, lambda v: v.max(axis=1))  # (N, m)
            return [best_posted_price(top[:, j])[0] for j in range(s.num_items)]
        values = torch.as_tensor(s.sample(UNIT_DEMAND_TUNING_SAMPLES, TUNING_SEED))
        hi = values.amax(dim=(0, 1))
        prices = (0.5 * hi).clone()
        for _ in range(UNIT_DEMAND_SWEEPS):
            for j in range(s.num_items):
                grid = torch.linspace(0.0, float(hi[j]), UNIT_DEMAND_GRID, dtype=values.dtype)
                revenue = []
                for g in grid:
                    prices[j] = g
                    revenue.append(self._sell(values, prices)[1].sum(dim=1).mean())
                prices[j] = grid[int(torch.stack(revenue).argmax())]
        return prices.tolist()

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._sell(bids, self.prices.to(bids.dtype))

    def _sell(self, bids: torch.Tensor, prices: torch.Tensor):
        batch, n, m = bids.shape
        unsold = torch.ones(batch, m, dtype=torch.bool, device=bids.device)
        alloc = torch.zeros_like(bids)
        for i in range(n):  # bidders in order; batched over profiles
            surplus = bids[:, i] - prices
            if self.setting.unit_demand:
                surplus = surplus.masked_fill(~unsold, -torch.inf)
                best, item = surplus.max(dim=1)
                buy = torch.zeros_like(unsold).scatter_(
                    1, item.unsqueeze(1), (best >= 0).unsqueeze(1)
                )
            else:
                buy = (surplus >= 0) & unsold
            alloc[:, i] = buy.to(bids.dtype)
            unsold &= ~buy
        return alloc, (alloc * prices).sum(dim=-1)
