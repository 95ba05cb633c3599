"""RegretNet networks (Duetting et al., "Optimal Auctions through Deep Learning", Section 5).

Two feed-forward networks read the flattened bid profile mapped onto the prior's support
box, ``x = (b - low) / (high - low)`` (n x m), so that inputs are O(1) in any unit and on
any offset support:

* the **allocation network** outputs per-item scores for the n bidders plus a dummy
  bidder ("the item stays unsold"). Additive bidders get the per-item softmax over the
  n + 1 rows, ``z_ij = softmax_i(s_.j)`` so ``sum_i z_ij <= 1``. Unit-demand bidders
  get the doubly stochastic form: a second score matrix ``s'`` with a dummy item,
  softmax over items per bidder, and ``z_ij = min(softmax_i(s_.j), softmax_j(s'_i.))``,
  so each row and each column sums to at most 1;
* the **payment network** outputs a fraction ``p~_i = sigmoid(.)`` in (0, 1) for each
  bidder and charges ``p_i = p~_i * sum_j z_ij b_ij``, a share of the bidder's *reported*
  value for what it receives: a truthful bidder never pays more than its value (IR).

Feasibility and IR hold by construction for every parameter value; strategyproofness does
not and is only approximated in training (regret penalty, see
:mod:`automech.methods.regretnet` and :mod:`automech.methods.algnet`).

:func:`misreport_utilities` is the batched utility-of-misreporting used by the training
attackers: every bidder's misreport is substituted in its own copy of the profile, one
forward pass over a (B, n, n, m) tensor.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from automech.errors import NotApplicableError
from automech.mechanisms.base import Mechanism
from automech.problems.setting import Setting


def mlp(inputs: int, outputs: int, hidden: int, layers: int) -> nn.Sequential:
    """``layers`` tanh hidden layers of width ``hidden``, Glorot-uniform weights, zero bias."""
    mods: list[nn.Module] = []
    width = inputs
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.Tanh()]
        width = hidden
    mods.append(nn.Linear(width, outputs))
    for mod in mods:
        if isinstance(mod, nn.Linear):
            nn.init.xavier_uniform_(mod.weight)
            nn.init.zeros_(mod.bias)
    return nn.Sequential(*mods)


def substitute(values: torch.Tensor, misreports: torch.Tensor) -> torch.Tensor:
    """Profiles (B, n, n, m) whose copy i is ``values`` with bidder i's row replaced by
    ``misreports[:, i]``."""
    n = values.shape[1]
    eye = torch.eye(n, dtype=values.dtype, device=values.device).view(1, n, n, 1)
    return eye * misreports.unsqueeze(2) + (1 - eye) * values.unsqueeze(1)


def misreport_utilities(
    mechanism: Mechanism, values: torch.Tensor, misreports: torch.Tensor
) -> torch.Tensor:
    """``u_i(v_i; (b_i, v_-i))`` for every bidder i at once: values and misreports (B, n, m)
    -> (B, n), in one forward pass over the B * n substituted profiles."""
    b, n, m = values.shape
    alloc, pay = mechanism(substitute(values, misreports).reshape(b * n, n, m))
    idx = torch.arange(n, device=values.device)
    own_alloc = alloc.view(b, n, n, m)[:, idx, idx]  # (B, n, m)
    own_pay = pay.view(b, n, n)[:, idx, idx]  # (B, n)
    return (own_alloc * values).sum(dim=-1) - own_pay


def input_box(setting: Setting) -> tuple[np.ndarray, np.ndarray]:
    """The affine map ``x = (b - shift) / scale`` (each (n, m)) onto the support box: shift
    the box's lower corner, scale its width (the upper corner where the box is a point)."""
    low, high = (np.asarray(a, dtype=np.float64) for a in setting.prior.support())
    width = high - low
    scale = np.where(width > 0, width, np.where(high > 0, high, 1.0))
    return np.where(width > 0, low, 0.0), scale


class RegretNetMechanism(Mechanism):
    """RegretNet allocation and payment networks (additive or unit-demand, unit supply)."""

    name = "regretnet"
    differentiable = True
    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(
        self, setting: Setting, hidden: int = 100, layers: int = 2, init_seed: int = 0
    ) -> None:
        super().__init__(setting)
        problem = self.applicable(setting)
        if problem:
            raise NotApplicableError(f"{self.name}: {problem}")
        n, m = setting.shape
        self.hidden, self.layers, self.init_seed = hidden, layers, init_seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            heads = (n + 1) * m + (n * (m + 1) if setting.unit_demand else 0)
            self.allocation = mlp(n * m, heads, hidden, layers)
            self.payment = mlp(n * m, n, hidden, layers)
        shift, scale = input_box(setting)
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float32), persistent=False)
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32), persistent=False)

    @classmethod
    def applicable(cls, setting: Setting) -> str | None:
        if not setting.unit_supply:
            return "the allocation network sells unit supply (softmax over bidders)"
        if setting.objective.name != "revenue":
            return "trained for revenue only"
        return None

    def config(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "layers": self.layers, "init_seed": self.init_seed}

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, m = bids.shape
        x = ((bids - self.shift.to(bids.dtype)) / self.scale.to(bids.dtype)).reshape(b, n * m)
        scores = self.allocation(x)
        alloc = torch.softmax(scores[:, : (n + 1) * m].view(b, n + 1, m), dim=1)[:, :n]
        if self.setting.unit_demand:
            rows = torch.softmax(scores[:, (n + 1) * m :].view(b, n, m + 1), dim=2)[..., :m]
            alloc = torch.minimum(alloc, rows)
        fraction = torch.sigmoid(self.payment(x))  # (B, n)
        return alloc, fraction * (alloc * bids).sum(dim=-1)

    def relaxed(self, bids: torch.Tensor, temperature: float):
        """The networks are smooth already: the relaxation is the mechanism itself."""
        return self(bids)

    def describe(self, values: np.ndarray) -> dict[str, Any]:
        """Summary statistics of the learned rule on ``values`` (B, n, m)."""
        with torch.no_grad():
            v = torch.as_tensor(values, dtype=self.dtype, device=self.device)
            alloc, pay = self(v)
            own = (alloc * v).sum(dim=-1)
            frac = torch.where(own > 1e-9, pay / own.clamp_min(1e-9), torch.zeros_like(pay))
            sold = alloc.sum(dim=1)  # (B, m)
            crisp = ((alloc < 0.05) | (alloc > 0.95)).double().mean()
        return {
            "kind": self.name,
            "config": self.config(),
            "revenue": float(pay.sum(-1).mean()),
            "mean_allocation": alloc.mean(0).tolist(),
            "mean_payment": pay.mean(0).tolist(),
            "mean_payment_fraction": frac.mean(0).tolist(),
            "unsold_share_per_item": (1 - sold).clamp_min(0).mean(0).tolist(),
            "share_of_near_deterministic_allocations": float(crisp),
        }


class ALGNetMechanism(RegretNetMechanism):
    """The same auctioneer networks, trained by ALGNet (:mod:`automech.methods.algnet`)."""

    name = "algnet"
