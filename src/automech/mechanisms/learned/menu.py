"""Menu mechanisms for one bidder: RochetNet (Duetting et al. 2019) / MenuNet (Shen et al. 2019).

The seller offers K entries ``(a_k, p_k)`` (a lottery over items and its price) plus the
null entry ``(0, 0)``; the bidder takes the entry maximising ``v . a_k - p_k``.  Any menu
is DSIC (the bidder picks its favourite) and IR (the null entry is always there), for
every parameter value.  Entries are parameterised to be feasible: additive
``a_k = sigmoid(theta_k)`` in [0, 1]^m; unit-demand ``a_k = softmax(theta_k, dummy)`` over
the m items and a dummy, so ``sum_j a_kj <= 1``.

Training uses the softmax relaxation: entry weights ``softmax(T * utilities)``; the exact
mechanism (evaluation) takes the argmax, ties broken towards the null entry, then the
lowest index.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from automech.errors import NotApplicableError
from automech.mechanisms.base import Mechanism
from automech.problems.setting import Setting


class MenuMechanism(Mechanism):
    """A menu of ``menu_size`` lotteries with prices plus the null entry (one bidder)."""

    name = "menu"
    floor: torch.Tensor

    def __init__(self, setting: Setting, menu_size: int = 256, init_seed: int = 0) -> None:
        super().__init__(setting)
        problem = self.applicable(setting)
        if problem:
            raise NotApplicableError(f"{self.name}: {problem}")
        m = setting.num_items
        gen = torch.Generator().manual_seed(init_seed)
        width = m + 1 if setting.unit_demand else m
        self.logits = torch.nn.Parameter(torch.randn(menu_size, width, generator=gen))
        high = setting.prior.support()[1]
        #: The values' unit (:attr:`Setting.value_unit`): an entry x is priced
        #: ``floor . x + price_scale * unit_prices`` (``floor`` the support's lower corner,
        #: :attr:`Setting.value_floor`) and the softmax of :meth:`relaxed` sees utilities in
        #: this unit, so training on values scaled by c follows the same path and ends with
        #: c times the prices, and a support far from 0 starts priced at its floor.
        self.price_scale = setting.value_unit
        self.register_buffer(
            "floor", torch.as_tensor(setting.value_floor, dtype=torch.float32), persistent=False
        )
        top = float(np.sum(high - setting.value_floor)) / self.price_scale
        self.unit_prices = torch.nn.Parameter(torch.rand(menu_size, generator=gen) * top / 2)
        self.menu_size, self.init_seed = menu_size, init_seed

    @property
    def prices(self) -> torch.Tensor:
        """The entries' prices (K,), in the values' units."""
        return self.entries()[1][1:]

    @classmethod
    def applicable(cls, setting: Setting) -> str | None:
        if setting.num_bidders != 1:
            return "a menu serves one bidder (see GemNet or affine maximizers for several)"
        return None

    def config(self) -> dict[str, Any]:
        return {"menu_size": self.menu_size, "init_seed": self.init_seed}

    def entries(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Allocations (K + 1, m) and prices (K + 1,), the null entry first."""
        if self.setting.unit_demand:
            alloc = torch.softmax(self.logits, dim=-1)[:, :-1]
        else:
            alloc = torch.sigmoid(self.logits)
        zero = alloc.new_zeros(1, alloc.shape[1])
        prices = alloc @ self.floor.to(alloc.dtype) + self.unit_prices * self.price_scale
        return torch.cat([zero, alloc]), torch.cat([prices.new_zeros(1), prices])

    def _utilities(self, bids: torch.Tensor):
        alloc, prices = self.entries()
        return bids[:, 0] @ alloc.T - prices, alloc, prices  # (B, K + 1)

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        util, alloc, prices = self._utilities(bids)
        choice = util.argmax(dim=1)  # first maximum: null wins ties
        return alloc[choice].unsqueeze(1), prices[choice].unsqueeze(1)

    def relaxed(self, bids: torch.Tensor, temperature: float):
        """Softmax-weighted menu choice, ``softmax(temperature * u / price_scale)``: the
        differentiable surrogate used in training (the temperature is per unit of value)."""
        util, alloc, prices = self._utilities(bids)
        weights = torch.softmax(temperature * util / self.price_scale, dim=1)
        return (weights @ alloc).unsqueeze(1), (weights @ prices).unsqueeze(1)

    def describe(self, values: np.ndarray) -> dict[str, Any]:
        """The entries chosen on ``values`` (B, 1, m), with how often each is chosen."""
        with torch.no_grad():
            bids = torch.as_tensor(values, dtype=self.dtype, device=self.device)
            util, alloc, prices = self._utilities(bids)
            counts = torch.bincount(util.argmax(dim=1), minlength=len(prices))
        used = torch.nonzero(counts).flatten().tolist()
        return {
            "kind": "menu",
            "entries": [
                {
                    "entry": int(k),
                    "allocation": alloc[k].tolist(),
                    "price": float(prices[k]),
                    "share": float(counts[k]) / len(values),
                }
                for k in sorted(used, key=lambda k: -int(counts[k]))
            ],
        }
