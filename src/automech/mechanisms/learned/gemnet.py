"""GemNet: a menu per bidder, computed from the other bids (Wang, Jiang and Parkes 2024).

Survey Section 5.3.  For each bidder i a network maps the other bids ``v_-i`` to a menu of
K entries ``(a_ik(v_-i), p_ik(v_-i))`` (a lottery over items and its price) plus the null
entry ``(0, 0)``; bidder i takes the entry maximising ``v_i . a_ik - p_ik``.  Because the
menu does not depend on the bidder's own bid, truthful bidding is a dominant strategy
(taxation principle, Hammond 1979), and the null entry makes it IR, for every parameter
value.  What a free menu network does *not* guarantee is feasibility: when every bidder
picks independently, the chosen lotteries may allocate an item more than once
("menu incompatibility").  Training penalises it (:mod:`automech.methods.gemnet`) and the
post-training price adjustment (:mod:`automech.methods.gemnet.compatibility`) removes it.

The network's input is ``v_-i`` scaled to [0, 1] by the support box; with ``grid > 0``
it is instead the centre of the cell holding ``v_-i`` in a grid of ``grid`` cells per
coordinate, so each bidder's menu is constant on opponent cells (the form the price
adjustment certifies; training on it lets the network learn the menus it will deploy).
Entries: additive ``sigmoid`` allocations in [0, 1]^m, unit-demand ``softmax`` over the
items and a dummy; prices are unconstrained (the null entry keeps IR).

* **network** (``adjusted=False``): menus come from the network.  Training optimises
  the softmax relaxation of the choice (:meth:`relaxed`); the exact mechanism may
  over-allocate, and the evaluator's feasibility check reports it.
* **adjusted** (``adjusted=True``, needs a grid): each bidder's menu is a table indexed
  by the opponent cell: the network's menu at the cell centre, allocations within
  ``snap`` of 0 or 1 rounded to it, prices shifted by the MILP adjustment, entries no bid
  can choose removed.  Bids are capped at the support's upper end before the choice.
  Everything a bidder faces is a function of ``v_-i`` (its own report only selects from
  it, and a capped report is one it could have sent), so DSIC and IR still hold exactly;
  :func:`~automech.methods.gemnet.compatibility.certify` proves that no profile
  over-allocates (see that module for the precise statement).

The exact choice takes the first maximum (null entry first, so ties go to not buying).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from automech.errors import NotApplicableError
from automech.mechanisms.base import Mechanism
from automech.problems.setting import Setting


class GemNetMechanism(Mechanism):
    """Menu networks for ``n`` bidders (one per bidder, batched), optionally adjusted."""

    name = "gemnet"
    low: torch.Tensor
    high: torch.Tensor
    others: torch.Tensor
    table_alloc: torch.Tensor  # registered only when adjusted
    table_price: torch.Tensor

    def __init__(
        self,
        setting: Setting,
        menu_size: int = 32,
        hidden: Sequence[int] = (128, 128),
        init_seed: int = 0,
        grid: int = 0,
        snap: float = 0.0,
        adjusted: bool = False,
    ) -> None:
        super().__init__(setting)
        problem = self.applicable(setting)
        if problem:
            raise NotApplicableError(f"{self.name}: {problem}")
        n, m = setting.shape
        self.menu_size, self.hidden, self.init_seed = (
            menu_size,
            tuple(int(h) for h in hidden),
            init_seed,
        )
        self.grid, self.snap, self.adjusted = int(grid), float(snap), bool(adjusted)
        if self.adjusted and not self.grid:
            raise NotApplicableError(f"{self.name}: an adjusted mechanism needs grid > 0")
        self.width = m + 1 if setting.unit_demand else m
        low, high = (torch.as_tensor(a, dtype=torch.float32) for a in setting.prior.support())
        self.register_buffer("low", low)
        self.register_buffer("high", high)
        others = [[j for j in range(n) if j != i] for i in range(n)]
        self.register_buffer("others", torch.tensor(others, dtype=torch.long).reshape(n, n - 1))
        self.top = float((high - low).sum(dim=1).max())
        #: The values' unit (:attr:`Setting.value_unit`): the softmax choice sees
        #: utilities in it, so a temperature means the same in any currency.
        self.unit = setting.value_unit

        gen = torch.Generator().manual_seed(init_seed)
        sizes = [max((n - 1) * m, 1), *self.hidden, menu_size * (self.width + 1)]
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        for d_in, d_out in zip(sizes[:-1], sizes[1:]):
            bound = 1 / np.sqrt(d_in)
            self.weights.append(
                torch.nn.Parameter((torch.rand(n, d_in, d_out, generator=gen) * 2 - 1) * bound)
            )
            self.biases.append(
                torch.nn.Parameter((torch.rand(n, d_out, generator=gen) * 2 - 1) * bound)
            )
        with torch.no_grad():  # diverse initial menus: random lotteries, prices in [0, top/2]
            last = self.biases[-1]
            last[:, : menu_size * self.width] = torch.randn(
                n, menu_size * self.width, generator=gen
            )
            last[:, menu_size * self.width :] = torch.rand(n, menu_size, generator=gen) / 2

        if self.adjusted:
            cells = self.grid ** ((n - 1) * m)
            self.register_buffer(
                "table_alloc", torch.zeros(n, cells, menu_size + 1, m, dtype=torch.float64)
            )
            self.register_buffer(
                "table_price", torch.zeros(n, cells, menu_size + 1, dtype=torch.float64)
            )
            self.double()

    @classmethod
    def applicable(cls, setting: Setting) -> str | None:
        if not setting.unit_supply:
            return (
                "GemNet's menus share unit-supply items (use TEDI or a menu for unlimited supply)"
            )
        return None

    def config(self) -> dict[str, Any]:
        return {
            "menu_size": self.menu_size,
            "hidden": list(self.hidden),
            "init_seed": self.init_seed,
            "grid": self.grid,
            "snap": self.snap,
            "adjusted": self.adjusted,
        }

    # ------------------------------------------------------------------ the network form

    def opponent_features(self, bids: torch.Tensor) -> torch.Tensor:
        """Each bidder's network input (B, n, max((n-1) m, 1)): the other bids scaled to
        [0, 1] by the support box -- with a grid, the centre of their cell instead --
        (zeros for a single bidder)."""
        b, n, m = bids.shape
        if self.grid:
            scaled = (self.cell_index(torch.minimum(bids, self.high)) + 0.5) / self.grid
            scaled = scaled.to(bids.dtype)
        else:
            scaled = (bids - self.low) / (self.high - self.low)
        if n == 1:
            return scaled.new_zeros(b, 1, 1)
        return scaled[:, self.others].reshape(b, n, (n - 1) * m)

    def network_menus(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Menus from network inputs (B, n, d): allocations (B, n, K + 1, m) and prices
        (B, n, K + 1), the null entry first.  One batched matrix product per layer for all
        bidders (no loop over bidders or profiles)."""
        h = features.transpose(0, 1)  # (n, B, d)
        last = len(self.weights) - 1
        for layer, (w, bias) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(bias.unsqueeze(1), h, w)
            if layer < last:
                h = torch.relu(h)
        out = h.transpose(0, 1)  # (B, n, K (w + 1))
        b, n, _ = out.shape
        k, m = self.menu_size, self.setting.num_items
        logits = out[..., : k * self.width].reshape(b, n, k, self.width)
        if self.setting.unit_demand:
            alloc = torch.softmax(logits, dim=-1)[..., :m]
        else:
            alloc = torch.sigmoid(logits)
        # an entry x of bidder i's menu is priced low_i . x (the least any type in the
        # support values it at) plus a learned surplus price in the box's width
        floor = (alloc * self.low.to(alloc.dtype).view(1, n, 1, m)).sum(-1)
        prices = floor + out[..., k * self.width :] * self.top
        alloc = torch.cat([alloc.new_zeros(b, n, 1, m), alloc], dim=2)
        prices = torch.cat([prices.new_zeros(b, n, 1), prices], dim=2)
        return alloc, prices

    def network_utilities(
        self, bids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The network's menus at ``bids`` and each bidder's utility for every entry:
        (B, n, K + 1, m), (B, n, K + 1), (B, n, K + 1)."""
        alloc, prices = self.network_menus(self.opponent_features(bids))
        return alloc, prices, (bids.unsqueeze(2) * alloc).sum(-1) - prices

    @staticmethod
    def soft_choice(
        alloc: torch.Tensor, prices: torch.Tensor, util: torch.Tensor, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Allocation and payment of the ``softmax(temperature * util)``-weighted choice."""
        weights = torch.softmax(temperature * util, dim=-1)  # (B, n, K + 1)
        return (weights.unsqueeze(-1) * alloc).sum(2), (weights * prices).sum(-1)

    def relaxed(self, bids: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Softmax-weighted choice from each network menu (training surrogate)."""
        return self.soft_choice(*self.network_utilities(bids), temperature / self.unit)

    # ------------------------------------------------------------------ the adjusted form

    def cell_index(self, bids: torch.Tensor) -> torch.Tensor:
        """Grid cell of each bidder's (capped) bid, per coordinate: (B, n, m) integers."""
        frac = (bids - self.low) / (self.high - self.low)
        return (frac * self.grid).floor().clamp(0, self.grid - 1).long()

    def opponent_cells(self, bids: torch.Tensor) -> torch.Tensor:
        """Flat index (B, n) of the cell of ``v_-i`` for each bidder i (row-major over the
        other bidders' coordinates, in bidder order)."""
        b, n, m = bids.shape
        digits = self.cell_index(bids)[:, self.others].reshape(b, n, (n - 1) * m)
        powers = self.grid ** torch.arange((n - 1) * m - 1, -1, -1, device=bids.device)
        return (digits * powers).sum(-1)

    def cell_centres(self) -> torch.Tensor:
        """Centres of all opponent cells, as network inputs (cells, max((n-1) m, 1)) in
        the scaled [0, 1] coordinates, in :meth:`opponent_cells` order."""
        n, m = self.setting.shape
        if n == 1:
            return torch.zeros(1, 1, dtype=torch.float64)
        mids = ((np.arange(self.grid) + 0.5) / self.grid).tolist()
        return torch.tensor(list(itertools.product(mids, repeat=(n - 1) * m)), dtype=torch.float64)

    def menus(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The menu each bidder faces at ``bids``: (B, n, K + 1, m) and (B, n, K + 1)."""
        if not self.adjusted:
            return self.network_menus(self.opponent_features(bids))
        cells = self.opponent_cells(bids)
        bidder = torch.arange(bids.shape[1], device=bids.device)
        return self.table_alloc[bidder, cells], self.table_price[bidder, cells]

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.adjusted:
            bids = torch.minimum(bids, self.high)
        alloc, prices = self.menus(bids)
        util = (bids.unsqueeze(2) * alloc).sum(-1) - prices
        choice = util.argmax(dim=-1, keepdim=True)  # (B, n, 1)
        chosen = alloc.gather(2, choice.unsqueeze(-1).expand(-1, -1, -1, alloc.shape[-1]))
        return chosen.squeeze(2), prices.gather(2, choice).squeeze(2)

    def _network_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("table_")}

    def network(self, grid: int | None = None) -> GemNetMechanism:
        """The unadjusted mechanism (the trained network alone, on ``grid`` cells per
        coordinate, by default its own), e.g. for a before/after picture."""
        plain = GemNetMechanism(
            self.setting,
            self.menu_size,
            self.hidden,
            self.init_seed,
            grid=self.grid if grid is None else grid,
        )
        plain.load_state_dict(self._network_state())
        return plain.to(self.dtype).eval()

    def with_tables(self, alloc: np.ndarray, prices: np.ndarray, snap: float) -> GemNetMechanism:
        """The adjusted mechanism on this network's grid with the given menu tables
        (n, cells, K + 1, m) and (n, cells, K + 1)."""
        adjusted = GemNetMechanism(
            self.setting,
            self.menu_size,
            self.hidden,
            self.init_seed,
            grid=self.grid,
            snap=snap,
            adjusted=True,
        )
        adjusted.load_state_dict(
            {
                **self._network_state(),
                "table_alloc": torch.as_tensor(alloc, dtype=torch.float64),
                "table_price": torch.as_tensor(prices, dtype=torch.float64),
            }
        )
        return adjusted.eval()

    def describe(self, values: np.ndarray) -> dict[str, Any]:
        """Per bidder, how often each menu entry (by index) is chosen on ``values`` and at
        what mean price, with the share of profiles over-allocating some item."""
        with torch.no_grad():
            bids = torch.as_tensor(values, dtype=self.dtype, device=self.device)
            capped = torch.minimum(bids, self.high) if self.adjusted else bids
            alloc, prices = self.menus(capped)
            util = (capped.unsqueeze(2) * alloc).sum(-1) - prices
            choice = util.argmax(dim=-1)
            out_alloc, out_pay = self(bids)
            over = self.setting.infeasibility(out_alloc) > 1e-9
        bidders = []
        for i in range(self.setting.num_bidders):
            counts = torch.bincount(choice[:, i], minlength=self.menu_size + 1)
            used = torch.nonzero(counts).flatten().tolist()
            entries = []
            for k in sorted(used, key=lambda k: -int(counts[k])):
                mask = choice[:, i] == k
                entries.append(
                    {
                        "entry": int(k),
                        "share": float(counts[k]) / len(values),
                        "mean_allocation": out_alloc[mask, i].mean(0).tolist(),
                        "mean_price": float(out_pay[mask, i].mean()),
                    }
                )
            bidders.append({"bidder": i, "entries_used": len(used), "entries": entries})
        return {
            "kind": "gemnet",
            "adjusted": self.adjusted,
            "grid": self.grid,
            "over_allocation_rate": float(over.double().mean()),
            "bidders": bidders,
        }
