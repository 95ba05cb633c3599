"""A mechanism given by a table of outcomes on a finite type grid (the ``lp`` method's output).

Bidder i has types ``types[i, :k_i]`` (rows of m values); for every profile t of the
product grid (C order, bidder 0 slowest) the table holds the allocation ``alloc[t]``
(n, m) and payments ``pay[t]`` (n,), and ``probabilities[t]`` is P(t) under the
(discretised) prior.  Bids off the grid are mapped to the table as follows:

* one bidder: the table is a menu.  The bidder gets the entry maximising its utility
  ``b . x_k - p_k`` over all table entries and the null entry (0, 0); among entries within
  :data:`TIE` (times the value scale) of the best, the highest payment wins.  This is
  DSIC and IR for *every* bid, not only grid bids.
* several bidders: each bid is rounded down: to the nearest (Euclidean) of its bidder's
  types that it weakly dominates in every item, or to the nearest type when it dominates
  none; the table's outcome at the rounded profile is used.  Rounding down keeps most
  bidders' utilities non-negative (additive values: a bid above its type values the same
  allocation more); with ``null_if_negative`` (ex-post IR designs) a bidder whose utility
  at its bid would still be below ``-TIE`` gets the null outcome instead (dropping an
  allocation keeps feasibility), so IR holds for every bid.  DSIC holds on the grid only;
  off the grid, the evaluator's regret measures the loss.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from automech.mechanisms.base import Mechanism
from automech.problems.setting import Setting

Array = np.ndarray | torch.Tensor

#: Utility tolerance (relative to the largest type value) of ties and the IR repair.
TIE = 1e-9
#: Bids x menu entries evaluated per block (bounds memory of the single-bidder menu).
BLOCK = 2**22


class LPTable(Mechanism):
    """Outcome table on a finite type grid; ``num_types[i]`` = k_i types for bidder i."""

    name = "lp-table"
    types: torch.Tensor
    alloc: torch.Tensor
    pay: torch.Tensor
    probabilities: torch.Tensor
    strides: torch.Tensor

    def __init__(
        self,
        setting: Setting,
        num_types: list[int],
        null_if_negative: bool = True,
        types: Array | None = None,
        alloc: Array | None = None,
        pay: Array | None = None,
        probabilities: Array | None = None,
    ) -> None:
        """Tables given as arrays (from the LP), or zeros of the right shapes to be filled
        by ``load_state_dict``."""
        super().__init__(setting)
        n, m = setting.shape
        self.num_types = [int(k) for k in num_types]
        self.null_if_negative = bool(null_if_negative)
        size = int(np.prod(self.num_types))
        shapes = {
            "types": (n, max(self.num_types), m),
            "alloc": (size, n, m),
            "pay": (size, n),
            "probabilities": (size,),
        }
        given = {"types": types, "alloc": alloc, "pay": pay, "probabilities": probabilities}
        for key, shape in shapes.items():
            value = given[key]
            tensor = (
                torch.zeros(shape, dtype=torch.float64)
                if value is None
                else torch.as_tensor(value, dtype=torch.float64).reshape(shape)
            )
            self.register_buffer(key, tensor)
        strides = [int(np.prod(self.num_types[i + 1 :])) for i in range(n)]
        self.register_buffer("strides", torch.tensor(strides, dtype=torch.int64), persistent=False)

    def config(self) -> dict[str, Any]:
        return {"num_types": self.num_types, "null_if_negative": self.null_if_negative}

    def _tie(self) -> float:
        return TIE * max(1.0, float(self.types.abs().amax()))

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.setting.num_bidders == 1:
            entries, prices = self._menu(bids)
            pick = self._menu_choice(bids)
            return entries[pick].unsqueeze(1), prices[pick].unsqueeze(1)
        alloc, pay = (t[self._profile(bids)].to(bids) for t in (self.alloc, self.pay))
        if self.null_if_negative:
            keep = (bids * alloc).sum(dim=-1) - pay >= -self._tie()
            alloc, pay = alloc * keep.unsqueeze(-1), pay * keep
        return alloc, pay

    def _menu(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Menu entries (K + 1, m) and prices (K + 1,), the null entry first."""
        entries = torch.cat([torch.zeros_like(self.alloc[:1, 0]), self.alloc[:, 0]])
        prices = torch.cat([torch.zeros_like(self.pay[:1, 0]), self.pay[:, 0]])
        return entries.to(like), prices.to(like)

    def _menu_choice(self, bids: torch.Tensor) -> torch.Tensor:
        """Chosen menu entry per bid (0 = null, k + 1 = table row k), (B,)."""
        entries, prices = self._menu(bids)
        tie = self._tie()
        rows = max(1, BLOCK // len(entries))
        choice = []
        for s in range(0, len(bids), rows):
            util = bids[s : s + rows, 0] @ entries.T - prices  # (B, K + 1)
            near_best = util >= util.amax(dim=1, keepdim=True) - tie
            choice.append(torch.where(near_best, prices, -torch.inf).argmax(dim=1))
        return torch.cat(choice)

    def _profile(self, bids: torch.Tensor) -> torch.Tensor:
        """Table row of the rounded-down bid profile, (B,)."""
        profile = torch.zeros(len(bids), dtype=torch.int64, device=bids.device)
        tie = self._tie()
        for i, k in enumerate(self.num_types):
            types = self.types[i, :k].to(bids)
            dist = torch.cdist(bids[:, i], types)
            below = (types.unsqueeze(0) <= bids[:, i].unsqueeze(1) + tie).all(dim=-1)
            down = dist.masked_fill(~below, torch.inf).argmin(dim=1)
            nearest = torch.where(below.any(dim=1), down, dist.argmin(dim=1))
            profile += nearest * self.strides[i]
        return profile

    def describe(self, values: np.ndarray | None = None) -> dict[str, Any]:
        """The non-zero entries of the table, JSON-able, with the share of the profiles
        ``values`` (B, n, m) that use each entry when given."""
        kind = "menu" if self.setting.num_bidders == 1 else "table"
        return {
            "kind": kind,
            "rule": "utility-maximising entry"
            if kind == "menu"
            else "each bid rounded down to a type",
            "types_per_bidder": self.num_types,
            "entries": describe(self, values),
        }


def describe(
    mechanism: LPTable, values: np.ndarray | None = None, digits: int = 9
) -> list[dict[str, Any]]:
    """Non-zero table entries with their grid probability, plus ``share``, the fraction of
    the profiles ``values`` mapped to the entry, when given.

    One bidder: the distinct menu entries ``{"allocation", "payment", "types",
    "probability"}`` by payment (``types``: how many grid types take the entry);
    several: ``{"types", "allocation", "payments", "probability"}`` per profile.
    """
    alloc = mechanism.alloc.cpu().numpy().round(digits) + 0.0  # no -0.0
    pay = mechanism.pay.cpu().numpy().round(digits) + 0.0
    probs = mechanism.probabilities.cpu().numpy()
    single = mechanism.setting.num_bidders == 1
    share = np.zeros(len(alloc))
    if values is not None:
        with torch.no_grad():
            bids = torch.as_tensor(values, dtype=torch.float64, device=mechanism.device)
            used = mechanism._menu_choice(bids) - 1 if single else mechanism._profile(bids)
        share = np.bincount(used[used >= 0].cpu().numpy(), minlength=len(alloc)) / len(bids)
    live = np.flatnonzero((alloc != 0).any(axis=(1, 2)) | (pay != 0).any(axis=1))

    def usage(rows: np.ndarray | np.integer) -> dict[str, float]:
        out = {"probability": float(probs[rows].sum())}
        if values is not None:
            out["share"] = float(share[rows].sum())
        return out

    if single:
        outcomes = np.concatenate([alloc[live, 0], pay[live]], axis=1)
        distinct, group = np.unique(outcomes, axis=0, return_inverse=True)
        group = group.reshape(-1)
        return [
            {
                "allocation": distinct[g, :-1].tolist(),
                "payment": float(distinct[g, -1]),
                "types": int((group == g).sum()),
                **usage(live[group == g]),
            }
            for g in np.argsort(distinct[:, -1], kind="stable")
        ]
    index = np.stack(np.unravel_index(np.arange(len(alloc)), mechanism.num_types), axis=1)
    types = mechanism.types.cpu().numpy()
    return [
        {
            "types": types[np.arange(len(index[t])), index[t]].tolist(),
            "allocation": alloc[t].tolist(),
            "payments": pay[t].tolist(),
            **usage(t),
        }
        for t in live
    ]
