"""Selling the grand bundle of all items as one good."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from automech.mechanisms.base import Mechanism
from automech.mechanisms.classical.pricing import (
    best_posted_price,
    best_second_price_reserve,
    tuning_statistics,
)
from automech.problems.setting import Setting


def _bundle_problem(setting: Setting) -> str | None:
    if setting.unit_demand and setting.num_items > 1:
        return "a unit-demand bidder values the bundle at its best item only"
    if not setting.unit_supply:
        return "needs unit supply"
    if setting.objective.name != "revenue":
        return "maximises revenue only"
    return None


def _top_two(profiles: np.ndarray) -> np.ndarray:
    bundle = np.sort(profiles.sum(axis=2), axis=1)
    top2 = bundle[:, -2] if bundle.shape[1] > 1 else np.zeros(len(bundle))
    return np.stack([bundle[:, -1], top2], axis=1)


class GrandBundle(Mechanism):
    """Second-price auction on the grand bundle with an anonymous reserve r:
    the highest bundle bid ``sum_j b_ij`` wins if it is at least r and pays
    ``max(r, second-highest bundle bid)``.  The reserve maximises revenue on
    samples from the prior (:func:`best_second_price_reserve`)."""

    name = "grand-bundle"

    def __init__(self, setting: Setting, reserve: float | None = None) -> None:
        super().__init__(setting)
        if reserve is None:
            tops = tuning_statistics(setting, _top_two)
            reserve, _ = best_second_price_reserve(tops[:, 0], tops[:, 1])
        self.reserve = float(reserve)

    @classmethod
    def applicable(cls, setting: Setting) -> str | None:
        return _bundle_problem(setting)

    def config(self) -> dict[str, Any]:
        return {"reserve": self.reserve}

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bundle = bids.sum(dim=-1)  # (B, n)
        if bundle.shape[1] > 1:
            top = bundle.topk(2, dim=1)
            best, winner, second = top.values[:, 0], top.indices[:, 0], top.values[:, 1]
        else:
            best, winner = bundle[:, 0], torch.zeros_like(bundle[:, 0], dtype=torch.long)
            second = torch.zeros_like(best)
        sold = (best >= self.reserve).to(bids.dtype)
        won = torch.zeros_like(bundle).scatter_(1, winner.unsqueeze(1), sold.unsqueeze(1))
        price = second.clamp_min(self.reserve)
        return won.unsqueeze(-1).expand_as(bids).clone(), won * price.unsqueeze(1)


class BundlePostedPrice(Mechanism):
    """Posted price P for the grand bundle; bidders are asked in index order and the
    first whose bundle value ``sum_j b_ij`` is at least P buys it at P.  DSIC: a
    bidder's offer never depends on its own bid.  P maximises
    ``P * P(max_i sum_j v_ij >= P)`` on samples from the prior."""

    name = "bundle-posted-price"

    def __init__(self, setting: Setting, price: float | None = None) -> None:
        super().__init__(setting)
        if price is None:
            top = tuning_statistics(setting, lambda v: v.sum(axis=2).max(axis=1))
            price, _ = best_posted_price(top)
        self.price = float(price)

    @classmethod
    def applicable(cls, setting: Setting) -> str | None:
        return _bundle_problem(setting)

    def config(self) -> dict[str, Any]:
        return {"price": self.price}

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        wants = (bids.sum(dim=-1) >= self.price).to(bids.dtype)  # (B, n)
        first = wants * (wants.cumsum(dim=1) == 1).to(bids.dtype)  # first willing bidder
        return first.unsqueeze(-1).expand_as(bids).clone(), first * self.price
