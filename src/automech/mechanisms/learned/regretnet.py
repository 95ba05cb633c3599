"""RegretNet networks (Duetting et al., "Optimal Auctions through Deep Learning", Section 5).

Two feed-forward networks read the flattened bid profile mapped onto the prior's support
box, ``x = (b - low) / (high - low)`` (n x m), so that inputs are O(1) in any unit and on
any offset support:

* the **allocation network** outputs per-item scores for the n bidders plus a dummy
  bidder ("the item stays unsold"). Additive bidders get the per-item softmax over the
  n + 1 rows, ``z_ij = softmax_i(s_.j)`` so ``sum_i z_ij <= 1``. Unit-demand bidders
  get the doubly stochastic form: a second score matrix ``s'`` with a dummy item,
  softmax over items per bidder, and ``z_ij = min(softmax_i(s_.j), softmax_j(s'_i.))``,
  so each row and each column sums to at most 1. With ``allocation="sparsemax"`` every
  softmax is a sparsemax (:func:`sparsemax`, Martins and Astudillo, ICML 2016): the
  Euclidean projection of the scores onto the simplex, piecewise linear, and exactly 0
  or 1 on whole regions of bids;
* the **payment network** (``activation="tanh"``, the paper's) outputs a fraction
  ``p~_i = sigmoid(t_i)`` in (0, 1) for each bidder and charges
  ``p_i = p~_i * sum_j z_ij b_ij``, a share of the bidder's *reported* value for what it
  receives: a truthful bidder never pays more than its value (IR).

With ``activation="relu"`` the hidden layers are ReLUs and the payment is piecewise
linear too, so that the whole mechanism is a mixed-integer-linear-representable function
of the bids (:mod:`automech.evaluation.certify` solves for its exact regret). The product
``p~_i * (z_i . b_i)`` of two functions of the misreport is not piecewise linear, and
Curry, Chiang, Goldstein and Dickerson ("Certifying Strategyproof Auction Networks",
NeurIPS 2020) either let the payment network output the payment directly (IR is then
not guaranteed by the architecture) or keep the product and use a non-convex quadratic
solver. Here the network outputs the amount and it is capped by a piecewise-linear lower
bound of the reported value:

    p_i = min( c_i |t_i|, sum_j g_ij ),   g_ij = max_k [ q_ijk z_ij - (q_ijk - b_ij)_+ ],

with knots ``q_ijk = L_ij + (H_ij - L_ij) k / K`` (k = 0..K, ``K = cap_pieces``) on the
support box ``[L, H]`` and ``c_i = sum_j scale_ij`` the value unit (``|t|``, not
``relu(t)``: a ReLU output unit can be negative on the whole box from the start and then
never gets a gradient; ``|t| = 2 relu(t) - t`` is as piecewise linear). For z in [0, 1]
and any b each term is at most ``z b``: ``q z <= b z`` when b >= q, and
``q z - (q - b) = b z - (q - b)(1 - z)`` when b < q; so ``p_i <= z_i . b_i`` and IR holds
by construction. Within the box ``g >= z b - (H - L) z (1 - z) / K``: exact at the
knots and for deterministic allocations (z in {0, 1}), within ``(H - L) / (4K)`` on
lotteries. K = 1 is the McCormick (convex) envelope, which caps the payment of a lottery
so hard that training stalls (1x2 uniform, 1,500 default steps, seed 0: revenue 0.27
with K = 1, 0.60 with K = 8, regret not yet trained away; the tanh network's is 0.55
after 4,000 steps).

Feasibility and IR hold by construction for every parameter value; strategyproofness does
not and is only approximated in training (regret penalty, see
:mod:`automech.methods.regretnet` and :mod:`automech.methods.algnet`).

:func:`misreport_utilities` is the batched utility-of-misreporting used by the training
attackers: every bidder's misreport is substituted in its own copy of the profile, one
forward pass over a (B, n, n, m) tensor.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from automech.errors import NotApplicableError
from automech.mechanisms.base import Mechanism
from automech.problems.setting import Setting

#: Hidden-layer activations of the networks.
ACTIVATIONS = ("tanh", "relu")
#: Pieces of the piecewise-linear IR cap of the ReLU payment (knots L + (H - L) k / K).
CAP_PIECES = 8
#: Per-item allocation maps of the allocation network.
ALLOCATIONS = ("softmax", "sparsemax")


def mlp(
    inputs: int, outputs: int, hidden: int, layers: int, activation: str = "tanh"
) -> nn.Sequential:
    """``layers`` hidden layers of width ``hidden`` (tanh or ReLU), Glorot-uniform
    weights, zero bias."""
    mods: list[nn.Module] = []
    width = inputs
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.ReLU() if activation == "relu" else nn.Tanh()]
        width = hidden
    mods.append(nn.Linear(width, outputs))
    for mod in mods:
        if isinstance(mod, nn.Linear):
            nn.init.xavier_uniform_(mod.weight)
            nn.init.zeros_(mod.bias)
    return nn.Sequential(*mods)


def sparsemax(scores: torch.Tensor, dim: int) -> torch.Tensor:
    """Euclidean projection of ``scores`` onto the probability simplex along ``dim``
    (Martins and Astudillo, "From Softmax to Sparsemax", ICML 2016, Section 2):
    ``z_k = max(s_k - tau, 0)`` with tau the unique threshold making ``sum_k z_k = 1``;
    with the scores sorted decreasingly, ``tau = (sum_{l <= K} s_(l) - 1) / K`` for the
    largest K such that ``1 + K s_(K) > sum_{l <= K} s_(l)``."""
    s = scores.movedim(dim, -1)
    s = s - s.amax(dim=-1, keepdim=True).detach()  # the same projection, rounded better
    d = s.shape[-1]
    ordered = s.sort(dim=-1, descending=True).values
    cum = ordered.cumsum(dim=-1)
    k = torch.arange(1, d + 1, dtype=s.dtype, device=s.device)
    support = (1 + k * ordered > cum).to(s.dtype).sum(dim=-1, keepdim=True)  # K >= 1
    tau = (cum.gather(-1, support.long() - 1) - 1) / support
    return (s - tau).clamp_min(0).movedim(-1, dim)


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

    low: torch.Tensor
    high: torch.Tensor
    _grid: torch.Tensor

    def __init__(
        self,
        setting: Setting,
        hidden: int = 100,
        layers: int = 2,
        init_seed: int = 0,
        activation: Literal["tanh", "relu"] = "tanh",
        allocation: Literal["softmax", "sparsemax"] = "softmax",
        cap_pieces: int = CAP_PIECES,
    ) -> None:
        super().__init__(setting)
        problem = self.applicable(setting)
        if problem:
            raise NotApplicableError(f"{self.name}: {problem}")
        if activation not in ACTIVATIONS or allocation not in ALLOCATIONS:
            raise NotApplicableError(
                f"{self.name}: activation must be one of {', '.join(ACTIVATIONS)} and "
                f"allocation one of {', '.join(ALLOCATIONS)}, got {activation!r}, {allocation!r}"
            )
        n, m = setting.shape
        self.hidden, self.layers, self.init_seed = hidden, layers, init_seed
        self.activation, self.allocation_map = activation, allocation
        if isinstance(cap_pieces, bool) or not isinstance(cap_pieces, int) or cap_pieces < 1:
            raise NotApplicableError(f"{self.name}: cap_pieces must be an integer >= 1")
        self.cap_pieces = cap_pieces
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            heads = (n + 1) * m + (n * (m + 1) if setting.unit_demand else 0)
            self.allocation = mlp(n * m, heads, hidden, layers, activation)
            self.payment = mlp(n * m, n, hidden, layers, activation)
        shift, scale = input_box(setting)
        low, high = (np.asarray(a, dtype=np.float64) for a in setting.prior.support())
        grid = np.linspace(0.0, 1.0, cap_pieces + 1)
        for name, value in (
            ("shift", shift),
            ("scale", scale),
            ("low", low),
            ("high", high),
            ("_grid", grid),
        ):
            self.register_buffer(
                name, torch.as_tensor(value, dtype=torch.float32), persistent=False
            )

    @classmethod
    def applicable(cls, setting: Setting) -> str | None:
        if not setting.unit_supply:
            return "the allocation network sells unit supply (softmax over bidders)"
        if setting.objective.name != "revenue":
            return "trained for revenue only"
        return None

    def config(self) -> dict[str, Any]:
        return {
            "hidden": self.hidden,
            "layers": self.layers,
            "init_seed": self.init_seed,
            "activation": self.activation,
            "allocation": self.allocation_map,
            "cap_pieces": self.cap_pieces,
        }

    @property
    def piecewise_linear(self) -> bool:
        """ReLU layers, sparsemax allocation and the capped payment: the outcome is a
        piecewise-linear function of the bids (what :mod:`automech.evaluation.certify`
        needs)."""
        return self.activation == "relu" and self.allocation_map == "sparsemax"

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, m = bids.shape
        x = ((bids - self.shift.to(bids.dtype)) / self.scale.to(bids.dtype)).reshape(b, n * m)
        scores = self.allocation(x)
        simplex = sparsemax if self.allocation_map == "sparsemax" else torch.softmax
        alloc = simplex(scores[:, : (n + 1) * m].view(b, n + 1, m), dim=1)[:, :n]
        if self.setting.unit_demand:
            rows = simplex(scores[:, (n + 1) * m :].view(b, n, m + 1), dim=2)[..., :m]
            alloc = torch.minimum(alloc, rows)
        out = self.payment(x)  # (B, n)
        if self.activation == "tanh":
            return alloc, torch.sigmoid(out) * (alloc * bids).sum(dim=-1)
        low, high = self.low.to(bids.dtype), self.high.to(bids.dtype)
        knots = low.unsqueeze(-1) + (high - low).unsqueeze(-1) * self._grid.to(bids.dtype)
        cap = (
            (knots * alloc.unsqueeze(-1) - (knots - bids.unsqueeze(-1)).clamp_min(0))
            .amax(dim=-1)
            .sum(dim=-1)
        )
        unit = self.scale.to(bids.dtype).sum(dim=-1)  # (n,)
        return alloc, torch.minimum(unit * out.abs(), cap)

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
