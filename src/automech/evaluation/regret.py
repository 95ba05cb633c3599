"""Misreport search: the best gain any bidder can get by lying, per profile.

Regret of bidder i at profile v is (Duetting et al., "Optimal Auctions through Deep
Learning", section 2.2)

    rgt_i(v) = max_{b_i} u_i(v_i; (b_i, v_-i)) - u_i(v_i; v),   u_i = v_i . x_i - p_i,

the ex-post gain of the best lie against truthful others.  It is searched for, per bidder,
batched over the profiles, in stages that do not rely on gradients alone, inside the
prior's support box ``[low, high]``:

1. candidates: the truth, uniformly random points of the box, scaled copies of the truth
   ``alpha * v_i`` (bid shading and inflation), a regular joint grid of the box when it is
   small enough (``grid**m <= max_grid``), and every type of a discrete prior;
2. per-item line searches from the best candidate: each item's report in turn on a fine
   grid of its support interval (``line_points`` points) with the other items fixed at
   the current best point, moving there when it is better, for ``line_rounds`` rounds of
   coordinates;
3. refinement from the best ``ascent_starts`` points (the line search's result first):
   for differentiable mechanisms projected gradient ascent (Adam, ``ascent_steps``
   steps); for the others a gradient-free local search (``local_steps`` rounds of
   ``local_samples`` uniform perturbations per start in a box whose radius shrinks
   geometrically from ``LOCAL_RADIUS`` to ``LOCAL_RADIUS_END`` of the support width,
   moving to the best when it is better);
4. regret is the best utility seen at any stage minus the truthful one (>= 0, since the
   truth is a candidate).  The best point ever seen is kept, never the last.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from automech.errors import EvaluationError
from automech.mechanisms.base import Mechanism
from automech.problems.setting import Setting

#: Starting radius of the gradient-free local search, as a fraction of the support width.
LOCAL_RADIUS = 0.1
#: Final radius of the gradient-free local search, as a fraction of the support width.
LOCAL_RADIUS_END = 1e-4


@dataclass(frozen=True)
class RegretSearch:
    """Budget of the misreport search.

    Attributes:
        profiles: test profiles on which regret is searched (the first ones of the test set).
        random: uniformly random misreports in the support box, per profile and bidder.
        scales: number of shading factors ``alpha`` in [0, 1.5] applied to the true values.
        grid: points per dimension of a joint grid over the box, used when
            ``grid**m <= max_grid``.
        max_grid: largest joint grid used.
        line_points: points of each item's line-search grid over its support interval
            (``low + (high - low) * k / (line_points - 1)``); 0 skips the line searches.
        line_rounds: rounds of per-item line searches (each round visits every item once).
        ascent_starts: best points refined by gradient ascent (differentiable mechanisms)
            or by the gradient-free local search (the others).
        ascent_steps: Adam steps per start.
        ascent_lr: Adam step size, as a fraction of the box width.
        local_steps: rounds of the gradient-free local search (non-differentiable
            mechanisms); 0 skips it.
        local_samples: random perturbations per start and round of the local search.
        chunk: (profile x candidate) rows per forward pass; bounds memory.
    """

    profiles: int = 1_000
    random: int = 256
    scales: int = 16
    grid: int = 16
    max_grid: int = 4_096
    line_points: int = 64
    line_rounds: int = 2
    ascent_starts: int = 8
    ascent_steps: int = 100
    ascent_lr: float = 0.01
    local_steps: int = 16
    local_samples: int = 4
    chunk: int = 2**17

    def __post_init__(self) -> None:
        for key in ("profiles", "max_grid", "chunk", "local_samples"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise EvaluationError(
                    f"regret search: {key} must be an integer >= 1, got {value!r}"
                )
        for key in (
            "random",
            "scales",
            "grid",
            "line_points",
            "line_rounds",
            "ascent_starts",
            "ascent_steps",
            "local_steps",
        ):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise EvaluationError(
                    f"regret search: {key} must be an integer >= 0, got {value!r}"
                )
        if self.line_points == 1:
            raise EvaluationError(
                "regret search: line_points must be 0 (no line search) or >= 2, got 1"
            )
        if not (isinstance(self.ascent_lr, (int, float)) and self.ascent_lr > 0):
            raise EvaluationError(f"regret search: ascent_lr must be > 0, got {self.ascent_lr!r}")

    def to_dict(self) -> dict:
        return asdict(self)


#: The papers' final-number budget: 1,000 restarts x 2,000 steps on 10,000 profiles.
THOROUGH = RegretSearch(
    profiles=10_000, random=1_000, ascent_starts=1_000, ascent_steps=2_000, chunk=2**17
)


def tolerance(dtype: torch.dtype, setting: Setting) -> float:
    """What counts as zero for utilities computed in ``dtype``: 1e-9 (float64) or 1e-5
    (float32) of the prior's largest value (at least 1)."""
    scale = float(np.max(setting.prior.support()[1]))
    return (1e-9 if dtype == torch.float64 else 1e-5) * max(scale, 1.0)


def _box(values: torch.Tensor, bidder: int, setting: Setting) -> tuple[torch.Tensor, torch.Tensor]:
    """Bidder ``bidder``'s support box ``(low, high)``, each (m,)."""
    low, high = (
        torch.as_tensor(a[bidder], dtype=values.dtype, device=values.device)
        for a in setting.prior.support()
    )
    return low, high


def _candidates(
    values: torch.Tensor,
    bidder: int,
    setting: Setting,
    search: RegretSearch,
    generator: torch.Generator,
    box: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Misreports for ``bidder`` at profiles ``values`` (P, n, m): (P, C, m), truth first;
    ``box``: the bidder's support box when the caller has it."""
    p, _, m = values.shape
    low, high = box if box is not None else _box(values, bidder, setting)
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


def _chunked_utilities(
    mechanism: Mechanism, values: torch.Tensor, bidder: int, misreports: torch.Tensor, chunk: int
) -> torch.Tensor:
    """:func:`_utilities` without gradients, ``chunk`` (profile x candidate) rows a pass."""
    rows = max(1, chunk // misreports.shape[1])
    with torch.no_grad():
        return torch.cat(
            [
                _utilities(mechanism, values[s : s + rows], bidder, misreports[s : s + rows])
                for s in range(0, len(values), rows)
            ]
        )


def _line_search(
    mechanism: Mechanism,
    values: torch.Tensor,
    bidder: int,
    setting: Setting,
    low: torch.Tensor,
    high: torch.Tensor,
    point: torch.Tensor,
    utility: torch.Tensor,
    search: RegretSearch,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-item line searches from ``point`` (P, m) with utility ``utility`` (P,): in each
    of ``line_rounds`` rounds, item j's report takes the best of ``line_points`` grid
    values of ``[low_j, high_j]``, the others fixed, when it beats the current point.
    Rounds stop early once a whole round gains no more than rounding
    (:func:`tolerance`) at any profile.  Returns the final point (P, m) and its utility
    (P,), never below ``utility``."""
    p, m = point.shape
    zero = tolerance(values.dtype, setting)
    t = torch.linspace(0, 1, search.line_points, dtype=values.dtype, device=values.device)
    grid = low + (high - low) * t.unsqueeze(1)  # (L, m)
    point, utility = point.clone(), utility.clone()
    for _ in range(search.line_rounds):
        moved = False
        for j in range(m):
            cands = point.unsqueeze(1).repeat(1, search.line_points, 1)  # (P, L, m)
            cands[:, :, j] = grid[:, j]
            u = _chunked_utilities(mechanism, values, bidder, cands, search.chunk)
            best, idx = u.max(dim=1)
            better = best > utility
            moved = moved or bool((best > utility + zero).any())
            point[better] = cands[better, idx[better]]
            utility = torch.where(better, best, utility)
        if not moved:  # no gain above rounding anywhere: another round would find none
            break
    return point, utility


def _local_search(
    mechanism: Mechanism,
    values: torch.Tensor,
    bidder: int,
    low: torch.Tensor,
    high: torch.Tensor,
    starts: torch.Tensor,
    start_utility: torch.Tensor,
    search: RegretSearch,
    generator: torch.Generator,
) -> torch.Tensor:
    """Gradient-free refinement of ``starts`` (P, K, m): ``local_steps`` rounds, each
    drawing ``local_samples`` points uniformly in a box of radius ``r_t`` (shrinking
    geometrically from ``LOCAL_RADIUS`` to ``LOCAL_RADIUS_END`` of the support width)
    around every start's current point, projected on the support box, moving to the
    best when it is better.  Returns the best utility per profile (P,)."""
    p, k, m = starts.shape
    s = search.local_samples
    point, utility = starts.clone(), start_utility.clone()
    width = high - low
    steps = search.local_steps
    for t in range(steps):
        frac = t / (steps - 1) if steps > 1 else 0.0
        radius = LOCAL_RADIUS * (LOCAL_RADIUS_END / LOCAL_RADIUS) ** frac
        noise = torch.rand(p, k, s, m, generator=generator, dtype=values.dtype, device="cpu")
        step = (2 * noise.to(values.device) - 1) * (radius * width)
        cands = torch.minimum(torch.maximum(point.unsqueeze(2) + step, low), high)
        u = _chunked_utilities(mechanism, values, bidder, cands.view(p, k * s, m), search.chunk)
        best, idx = u.view(p, k, s).max(dim=2)
        better = best > utility
        chosen = cands.gather(2, idx.view(p, k, 1, 1).expand(-1, -1, 1, m)).squeeze(2)
        point = torch.where(better.unsqueeze(-1), chosen, point)
        utility = torch.where(better, best, utility)
    return utility.amax(dim=1)


def best_misreport_utility(
    mechanism: Mechanism,
    values: torch.Tensor,
    bidder: int,
    setting: Setting,
    search: RegretSearch,
    generator: torch.Generator,
) -> torch.Tensor:
    """Best utility bidder ``bidder`` finds by misreporting at each profile: (P,).

    The stages of the module docstring, batched over the profiles ``values`` (P, n, m)
    and each stage's candidates; ``generator`` draws the random candidates (and the
    local search's perturbations)."""
    low, high = _box(values, bidder, setting)
    p, _, m = values.shape
    # candidates a profile gets (drawing none), then blocks of profiles that fit a chunk;
    # the random candidates come out of the generator in the same order as in one block
    c = _candidates(values[:0], bidder, setting, search, generator, (low, high)).shape[1]
    refine = search.ascent_steps if mechanism.differentiable else search.local_steps
    k = max(1, min(search.ascent_starts, c)) if refine else 1
    starts_parts, u_parts = [], []
    for s in range(0, p, max(1, search.chunk // c)):
        v = values[s : s + max(1, search.chunk // c)]
        cands = _candidates(v, bidder, setting, search, generator, (low, high))
        top = _chunked_utilities(mechanism, v, bidder, cands, search.chunk).topk(k, dim=1)
        starts_parts.append(cands.gather(1, top.indices.unsqueeze(-1).expand(-1, -1, m)))
        u_parts.append(top.values)
    starts, start_u = torch.cat(starts_parts), torch.cat(u_parts)  # (P, K, m), (P, K)
    best = start_u[:, 0].clone()
    if search.line_points:
        rows = max(1, search.chunk // search.line_points)
        for s in range(0, p, rows):
            point, best[s : s + rows] = _line_search(
                mechanism,
                values[s : s + rows],
                bidder,
                setting,
                low,
                high,
                starts[s : s + rows, 0],
                start_u[s : s + rows, 0],
                search,
            )
            starts[s : s + rows, 0] = point  # the line search's result starts first
        start_u[:, 0] = best
    if refine and search.ascent_starts:
        if mechanism.differentiable:
            found = _ascent(mechanism, values, bidder, setting, starts, search)
        else:
            rows = max(1, search.chunk // (k * search.local_samples))
            found = torch.cat(
                [
                    _local_search(
                        mechanism,
                        values[s : s + rows],
                        bidder,
                        low,
                        high,
                        starts[s : s + rows],
                        start_u[s : s + rows],
                        search,
                        generator,
                    )
                    for s in range(0, p, rows)
                ]
            )
        best = torch.maximum(best, found)
    return best


def search_regrets(
    mechanism: Mechanism,
    setting: Setting,
    values: torch.Tensor,
    search: RegretSearch,
    seed: int,
    on_bidder: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Regret ``rgt_i(v)`` of every bidder at every profile ``values`` (P, n, m) under
    ``search``, the random misreports drawn with ``seed``: float64 (P, n), >= 0.
    ``on_bidder(i)`` is called when bidder i is done (progress bars)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        truthful = setting.utilities(values, *mechanism(values))
    out = []
    for i in range(setting.num_bidders):
        best = best_misreport_utility(mechanism, values, i, setting, search, generator)
        out.append((best - truthful[:, i]).clamp_min(0).detach().double())
        if on_bidder is not None:
            on_bidder(i)
    return torch.stack(out, dim=1)


def _ascent(
    mechanism: Mechanism,
    values: torch.Tensor,
    bidder: int,
    setting: Setting,
    starts: torch.Tensor,
    search: RegretSearch,
) -> torch.Tensor:
    """Projected Adam ascent on misreports from ``starts`` (P, K, m); best utility (P,)."""
    low, high = _box(values, bidder, setting)
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
