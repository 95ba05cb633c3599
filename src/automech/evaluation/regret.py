"""Misreport search: the best gain any bidder can get by lying, per profile.

Regret of bidder i at profile v is

    rgt_i(v) = max_{b_i} u_i(v_i; (b_i, v_-i)) - u_i(v_i; v),   u_i = v_i . x_i - p_i,

searched for in three stages that do not rely on gradients alone:

1. candidates: the truth, uniformly random points of the prior's support box, scaled
   copies of the truth ``alpha * v_i`` (bid shading and inflation), a regular grid of the
   box when it is small enough, and every type of a discrete prior;
2. for differentiable mechanisms, gradient ascent (Adam, projected on the box) from the
   best candidates, keeping the best utility seen at any step;
3. regret is the best utility found minus the truthful one (>= 0, since the truth is
   always a candidate).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from automech.errors import EvaluationError
from automech.mechanisms.base import Mechanism
from automech.problems.setting import Setting


@dataclass(frozen=True)
class RegretSearch:
    """Budget of the misreport search.

    Attributes:
        profiles: test profiles on which regret is searched (the first ones of the test set).
        random: uniformly random misreports in the support box, per profile and bidder.
        scales: number of shading factors ``alpha`` in [0, 1.5] applied to the true values.
        grid: points per dimension of a grid over the box, used when ``grid**m <= max_grid``.
        max_grid: largest grid used.
        ascent_starts: best candidates refined by gradient ascent (differentiable mechanisms).
        ascent_steps: Adam steps per start.
        ascent_lr: Adam step size, as a fraction of the box width.
        chunk: (profile x candidate) rows per forward pass; bounds memory.
    """

    profiles: int = 1_000
    random: int = 256
    scales: int = 16
    grid: int = 16
    max_grid: int = 4_096
    ascent_starts: int = 8
    ascent_steps: int = 100
    ascent_lr: float = 0.01
    chunk: int = 2**17

    def __post_init__(self) -> None:
        for key in ("profiles", "max_grid", "chunk"):
            if getattr(self, key) < 1:
                raise EvaluationError(
                    f"regret search: {key} must be >= 1, got {getattr(self, key)}"
                )
        for key in ("random", "scales", "grid", "ascent_starts", "ascent_steps"):
            if getattr(self, key) < 0:
                raise EvaluationError(
                    f"regret search: {key} must be >= 0, got {getattr(self, key)}"
                )
        if not self.ascent_lr > 0:
            raise EvaluationError(f"regret search: ascent_lr must be > 0, got {self.ascent_lr}")

    def to_dict(self) -> dict:
        return asdict(self)


#: The papers' final-number budget: 1,000 restarts x 2,000 steps on 10,000 profiles.
THOROUGH = RegretSearch(
    profiles=10_000, random=1_000, ascent_starts=1_000, ascent_steps=2_000, chunk=2**17
)


def _candidates(
    values: torch.Tensor,
    bidder: int,
    setting: Setting,
    search: RegretSearch,
    generator: torch.Generator,
) -> torch.Tensor:
    """Misreports for ``bidder`` at profiles ``values`` (P, n, m): (P, C, m), truth first."""
    p, _, m = values.shape
    low, high = (
        torch.as_tensor(a[bidder], dtype=values.dtype, device=values.device)
        for a in setting.prior.support()
    )
    truth = values[:, bidder].unsqueeze(1)
    parts = [truth]
    if search.random:
        u = torch.rand(
            p, search.random, m, generator=generator, dtype=values.dtype, device="cpu"
        ).to(values.device)
        parts.append(low + (high - low) * u)
    if search.scales:
        alpha = torch.linspace(0.0, 1.5, search.scales, dtype=values.dtype, device=values.device)
        parts.append(torch.minimum(alpha.view(1, -1, 1) * truth, high))
    if search.grid and search.grid**m <= search.max_grid:
        axes = [torch.linspace(0, 1, search.grid, dtype=values.dtype, device=values.device)] * m
        pts = torch.cartesian_prod(*axes).view(-1, m)
        parts.append((low + (high - low) * pts).unsqueeze(0).expand(p, -1, -1))
    atoms = setting.prior.atoms(bidder)
    if atoms is not None:
        a = torch.as_tensor(atoms, dtype=values.dtype, device=values.device)
        parts.append(a.unsqueeze(0).expand(p, -1, -1))
    return torch.cat(parts, dim=1)


def _utilities(
    mechanism: Mechanism, values: torch.Tensor, bidder: int, misreports: torch.Tensor
) -> torch.Tensor:
    """u_bidder(v; (b, v_-bidder)) for misreports (P, C, m): (P, C)."""
    p, c, m = misreports.shape
    bids = values.unsqueeze(1).expand(p, c, -1, -1).clone()
    bids[:, :, bidder] = misreports
    alloc, pay = mechanism(bids.view(p * c, -1, m))
    own = (alloc[:, bidder] * values[:, bidder].repeat_interleave(c, dim=0)).sum(dim=-1)
    return (own - pay[:, bidder]).view(p, c)


def best_misreport_utility(
    mechanism: Mechanism,
    values: torch.Tensor,
    bidder: int,
    setting: Setting,
    search: RegretSearch,
    generator: torch.Generator,
) -> torch.Tensor:
    """Best utility bidder ``bidder`` finds by misreporting at each profile: (P,)."""
    cands = _candidates(values, bidder, setting, search, generator)
    p, c, _ = cands.shape
    rows = max(1, search.chunk // c)
    best_u, best_idx = [], []
    with torch.no_grad():
        for s in range(0, p, rows):
            u = _utilities(mechanism, values[s : s + rows], bidder, cands[s : s + rows])
            k = min(search.ascent_starts, c) if mechanism.differentiable else 1
            top = u.topk(k, dim=1)
            best_u.append(top.values)
            best_idx.append(top.indices)
    top_u, top_idx = torch.cat(best_u), torch.cat(best_idx)
    best = top_u[:, 0]
    if mechanism.differentiable and search.ascent_steps > 0:
        starts = cands.gather(1, top_idx.unsqueeze(-1).expand(-1, -1, cands.shape[-1]))
        best = torch.maximum(best, _ascent(mechanism, values, bidder, setting, starts, search))
    return best


def _ascent(
    mechanism: Mechanism,
    values: torch.Tensor,
    bidder: int,
    setting: Setting,
    starts: torch.Tensor,
    search: RegretSearch,
) -> torch.Tensor:
    """Projected Adam ascent on misreports from ``starts`` (P, K, m); best utility (P,)."""
    low, high = (
        torch.as_tensor(a[bidder], dtype=values.dtype, device=values.device)
        for a in setting.prior.support()
    )
    p, k, _ = starts.shape
    rows = max(1, search.chunk // k)
    out = []
    for s in range(0, p, rows):
        v = values[s : s + rows]
        b = starts[s : s + rows].clone().requires_grad_(True)
        opt = torch.optim.Adam([b], lr=search.ascent_lr * float((high - low).max()))
        best = torch.full((len(v),), -math.inf, dtype=values.dtype, device=values.device)
        for _ in range(search.ascent_steps):
            u = _utilities(mechanism, v, bidder, b)
            best = torch.maximum(best, u.detach().amax(dim=1))
            opt.zero_grad()
            (-u.sum()).backward(inputs=[b])
            opt.step()
            with torch.no_grad():
                b.copy_(torch.maximum(torch.minimum(b, high), low))
        with torch.no_grad():
            best = torch.maximum(best, _utilities(mechanism, v, bidder, b).amax(dim=1))
        out.append(best)
    return torch.cat(out)
