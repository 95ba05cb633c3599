"""Classical baselines of the TEDI paper (Ma et al., AAMAS 2026, Section 4.2.2) for
unlimited-supply goods with production and duplication costs.

Principal utility ``sum_i p_i - sum_j (c_p max_i x_ij + c_d sum_i x_ij)`` (for the plain
revenue objective both costs are zero).

* :class:`SeparableOPT` ("Separable-OPT"): the optimal mechanism for each good on its own.
  With values independent across bidders, Myerson's lemma makes the expected utility of
  good j equal to the expected *virtual surplus*
  ``sum_i phi_ij(v_ij) x_ij - c_p max_i x_ij - c_d sum_i x_ij``, a piecewise-linear
  function of ``x_.j`` maximised at a vertex: serve the set
  ``S = {i: phi_ij > c_d}`` if ``sum_{i in S} (phi_ij - c_d) >= c_p``, else nobody.  The
  production cost c_p is what couples the bidders: bidder i is served iff
  ``phi_ij(v_ij) >= tau_ij = c_d + max(0, c_p - sum_{k != i} (phi_kj(v_kj) - c_d)^+)``,
  a threshold that does not depend on its own value, and pays the threshold value
  ``inf{v: phi_ij(v) >= tau_ij}`` (DSIC and IR).  phi is the *ironed* virtual value of the
  marginal law (concave hull of the revenue curve), so Bernoulli values (posted price 1)
  are covered too.  For the correlated prior C the marginal (a trapezoid) is used as if
  values were independent: still DSIC and IR, the paper's "derived by hand" per-good
  optimum there is not specified.
* :class:`BundleOPT` ("Bundle-OPT"): every bidder is offered the grand bundle at one posted
  price P (unlimited supply: any number may buy) and buys it iff ``sum_j b_ij >= P``.  P is
  found by an exact search over the sampled bundle values of the empirical principal
  utility ``(P - m c_d) #buyers - m c_p 1{any buyer}``; if no price is profitable nothing
  is sold.
* :class:`SharedBundleOPT` (ours, not in the paper): the optimal grand-bundle-only
  mechanism, the bundle sold as an excludable public good whose cost the buyers share.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from automech.errors import NotApplicableError
from automech.mechanisms.base import Mechanism
from automech.mechanisms.classical.myerson import interp
from automech.mechanisms.classical.pricing import tuning_statistics
from automech.mechanisms.welfare import item_costs
from automech.problems.priors import CorrelatedPrior
from automech.problems.setting import Setting, cost_problem

#: Value-grid points for the ironed virtual value of a continuous marginal.
GRID_POINTS = 4001


def _upper_hull_slopes(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Slopes of the concave hull of points (q, r) (q increasing) on each [q_k, q_k+1]."""
    hull: list[int] = []
    for k in range(len(q)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # drop b if it lies on or below the chord a -> k
            if (r[b] - r[a]) * (q[k] - q[a]) <= (r[k] - r[a]) * (q[b] - q[a]):
                hull.pop()
            else:
                break
        hull.append(k)
    slopes = np.empty(len(q) - 1)
    for a, b in zip(hull[:-1], hull[1:]):
        slopes[a:b] = (r[b] - r[a]) / (q[b] - q[a])
    return slopes


def ironed_continuous(values: np.ndarray, cdf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ironed virtual value of a continuous law given its CDF on an increasing value grid:
    knots (midpoints) and phi there, phi non-decreasing."""
    q = (1.0 - cdf)[::-1]  # quantile of selling, increasing
    r = (values * (1.0 - cdf))[::-1]  # revenue curve R(q) = q F^{-1}(1 - q)
    slopes = _upper_hull_slopes(q, r)[::-1]  # per interval [v_k, v_k+1]
    mid = 0.5 * (values[1:] + values[:-1])
    return mid, np.maximum.accumulate(slopes)


def ironed_discrete(atoms: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Ironed virtual value at each atom (increasing atoms)."""
    q_at = np.cumsum(probs[::-1])[::-1]  # P(v >= a_k)
    q = np.concatenate([[0.0], q_at[::-1]])  # increasing: top atom first
    r = np.concatenate([[0.0], (atoms * q_at)[::-1]])
    slopes = _upper_hull_slopes(q, r)  # interval [q_(K-k), ...] -> atom
    return np.maximum.accumulate(slopes[::-1])


def inverse_virtual_value(
    knots: torch.Tensor, phi: torch.Tensor, tau: torch.Tensor, discrete: bool, low: float
) -> torch.Tensor:
    """``inf{v: phi(v) >= tau}`` for non-decreasing phi tabulated at ``knots`` (..., K),
    targets ``tau`` (..., B): the smallest knot reaching tau (discrete laws), or the
    linear interpolation between knots (continuous laws; ``low`` below the first knot);
    ``inf`` where phi never reaches tau."""
    size = phi.shape[-1]
    idx = torch.searchsorted(phi, tau, right=False)  # first phi >= tau
    hi = idx.clamp(max=size - 1)
    if discrete:
        value = knots.gather(-1, hi)
    else:
        lo = (idx - 1).clamp(min=0)
        v0, v1 = knots.gather(-1, lo), knots.gather(-1, hi)
        f0, f1 = phi.gather(-1, lo), phi.gather(-1, hi)
        w = ((tau - f0) / (f1 - f0).clamp_min(1e-300)).clamp(0.0, 1.0)
        value = torch.where(idx == 0, torch.full_like(tau, low), v0 + w * (v1 - v0))
    return torch.where(idx >= size, torch.full_like(value, torch.inf), value)


def _correlated_cdf(prior: CorrelatedPrior, v: np.ndarray) -> np.ndarray:
    c = np.linspace(prior.center_low, prior.center_high, 4001)
    s = prior.spread
    return np.clip((v[:, None] - c[None, :] + s) / (2 * s), 0.0, 1.0).mean(axis=1)


class SeparableOPT(Mechanism):
    """Separable-OPT: the optimal one-good mechanism with costs, run good by good."""

    name = "separable-opt"
    knots: torch.Tensor
    phi: torch.Tensor

    def __init__(self, setting: Setting) -> None:
        super().__init__(setting)
        problem = self.applicable(setting)
        if problem:
            raise NotApplicableError(f"{self.name}: {problem}")
        n, m = setting.shape
        self.c_p, self.c_d = item_costs(setting)
        laws = [[setting.prior.marginal(i, j) for j in range(m)] for i in range(n)]
        self.discrete = laws[0][0] is not None and laws[0][0].discrete
        knots, phis = [], []
        for i in range(n):
            for j in range(m):
                law = laws[i][j]
                if self.discrete:
                    assert law is not None  # applicable: no marginal is missing
                    atoms = np.asarray(law.atoms(), dtype=float)
                    probs = np.diff(np.concatenate([[0.0], law.cdf(atoms)]))
                    knots.append(atoms)
                    phis.append(ironed_discrete(atoms, probs))
                    continue
                if law is None:  # correlated prior
                    assert isinstance(setting.prior, CorrelatedPrior)
                    lo, hi = setting.prior.support()[0][i, j], setting.prior.support()[1][i, j]
                    v = np.linspace(lo, hi, GRID_POINTS)
                    cdf = _correlated_cdf(setting.prior, v)
                else:
                    lo, hi = law.bounds()
                    v = np.linspace(lo, hi, GRID_POINTS)
                    cdf = law.cdf(v)
                mid, phi = ironed_continuous(v, cdf)
                knots.append(mid)
                phis.append(phi)
        size = len(knots[0])
        self.register_buffer(
            "knots", torch.as_tensor(np.stack(knots)).view(n, m, size), persistent=False
        )
        self.register_buffer(
            "phi", torch.as_tensor(np.stack(phis)).view(n, m, size), persistent=False
        )

    @classmethod
    def applicable(cls, setting: Setting) -> str | None:
        problem = cost_problem(setting)
        if problem:
            return problem
        n, m = setting.shape
        laws = [setting.prior.marginal(i, j) for i in range(n) for j in range(m)]
        if isinstance(setting.prior, CorrelatedPrior):
            return None
        known = [law for law in laws if law is not None]
        if len(known) < len(laws):
            return "needs independent values with known marginals (or the correlated prior)"
        if len({law.discrete for law in known}) > 1:
            return "mixes discrete and continuous marginals"
        return None

    def virtual_values(self, bids: torch.Tensor) -> torch.Tensor:
        """Ironed phi_ij(b_ij) for bids (B, n, m)."""
        x = bids.permute(1, 2, 0).contiguous()  # (n, m, B)
        knots, phi = self.knots.to(bids.dtype), self.phi.to(bids.dtype)
        if self.discrete:
            idx = (torch.searchsorted(knots, x, right=True) - 1).clamp_min(0)
            out = phi.gather(-1, idx)
        else:
            out = interp(x, knots, phi)
        return out.permute(2, 0, 1)

    def thresholds(self, bids: torch.Tensor) -> torch.Tensor:
        """Bidder i's threshold value for good j given the others' bids: (B, n, m)
        (``inf`` where no value of its own gets it served)."""
        surplus = (self.virtual_values(bids) - self.c_d).clamp_min(0.0)  # (B, n, m)
        others = surplus.sum(dim=1, keepdim=True) - surplus
        tau = self.c_d + (self.c_p - others).clamp_min(0.0)  # (B, n, m)
        low = float(self.setting.prior.support()[0].min())
        value = inverse_virtual_value(
            self.knots.to(bids.dtype),
            self.phi.to(bids.dtype),
            tau.permute(1, 2, 0).contiguous(),
            self.discrete,
            low,
        )
        return value.permute(2, 0, 1)

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        threshold = self.thresholds(bids)
        alloc = (bids >= threshold).to(bids.dtype)
        pay = (alloc * torch.where(alloc > 0, threshold, torch.zeros_like(threshold))).sum(-1)
        return alloc, pay


class BundleOPT(Mechanism):
    """Bundle-OPT: the grand bundle at one posted price to every bidder (unlimited supply)."""

    name = "bundle-opt"

    def __init__(self, setting: Setting, price: float | None = None) -> None:
        super().__init__(setting)
        problem = self.applicable(setting)
        if problem:
            raise NotApplicableError(f"{self.name}: {problem}")
        if price is None:
            price = best_bundle_price(setting)[0]
        self.price = float(price)

    @classmethod
    def applicable(cls, setting: Setting) -> str | None:
        return cost_problem(setting)

    def config(self) -> dict[str, Any]:
        return {"price": self.price}

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        buys = (bids.sum(dim=-1) >= self.price).to(bids.dtype)  # (B, n)
        pay = torch.where(buys > 0, torch.full_like(buys, self.price), torch.zeros_like(buys))
        return buys.unsqueeze(-1).expand_as(bids).clone(), pay


def best_bundle_price(setting: Setting) -> tuple[float, float]:
    """Posted bundle price maximising the empirical principal utility on prior samples,
    and that utility (``inf, 0`` when no price is profitable)."""
    c_p, c_d = item_costs(setting)
    m = setting.num_items
    sums = tuning_statistics(setting, lambda v: v.sum(axis=2))  # (N, n)
    num = len(sums)
    pooled = np.sort(sums.ravel())
    tops = np.sort(sums.max(axis=1))
    cand = np.unique(pooled)
    buyers = len(pooled) - np.searchsorted(pooled, cand, side="left")
    any_buyer = num - np.searchsorted(tops, cand, side="left")
    utility = ((cand - m * c_d) * buyers - m * c_p * any_buyer) / num
    k = int(np.argmax(utility))
    if utility[k] <= 0:
        return float("inf"), 0.0
    return float(cand[k]), float(utility[k])


class SharedBundleOPT(Mechanism):
    """Shared-Bundle-OPT: the optimal mechanism that sells only the grand bundle, treating
    it as one excludable public good (Myerson 1981, the virtual-surplus argument of
    :class:`SeparableOPT` applied to the bundle value ``s_i = sum_j b_ij``).

    Serving a set A of bidders the grand bundle costs ``m c_p 1{A nonempty} + m c_d |A|``,
    so the expected principal utility is the expected virtual surplus
    ``sum_{i in A} (phi_i(s_i) - m c_d) - m c_p 1{A nonempty}``.  It is maximised by
    serving ``{i: phi_i > m c_d}`` when their surplus covers ``m c_p``, else nobody:
    bidder i is served iff ``phi_i(s_i) >= tau_i = m c_d + max(0, m c_p -
    sum_{k != i} (phi_k(s_k) - m c_d)^+)`` and pays ``inf{s: phi_i(s) >= tau_i}`` (DSIC,
    IR).  Unlike :class:`BundleOPT`'s one posted price, a bidder's price falls as the
    others' bundle values rise: they share the production cost.  phi_i is the ironed
    virtual value of the *empirical* law of ``s_i`` on ``TUNING_SAMPLES`` prior profiles
    (the concave hull of its revenue curve), so it needs no closed form for the law of a
    sum and covers any prior.  With one bidder, or with c_p = 0, it is Bundle-OPT (the
    monopoly price of the empirical bundle-value law).  Not a baseline of the TEDI paper:
    ours.
    """

    name = "shared-bundle-opt"
    knots: torch.Tensor
    phi: torch.Tensor

    def __init__(self, setting: Setting) -> None:
        super().__init__(setting)
        problem = self.applicable(setting)
        if problem:
            raise NotApplicableError(f"{self.name}: {problem}")
        self.c_p, self.c_d = item_costs(setting)
        sums = tuning_statistics(setting, lambda v: v.sum(axis=2))  # (N, n)
        knots, phis = [], []
        for column in sums.T:
            atoms, counts = np.unique(column, return_counts=True)
            knots.append(atoms)
            phis.append(ironed_discrete(atoms, counts / counts.sum()))
        size = max(len(k) for k in knots)

        def pad(a: np.ndarray) -> np.ndarray:  # repeat the top atom: phi unchanged
            return np.concatenate([a, np.full(size - len(a), a[-1])])

        self.register_buffer(
            "knots", torch.as_tensor(np.stack([pad(k) for k in knots])), persistent=False
        )
        self.register_buffer(
            "phi", torch.as_tensor(np.stack([pad(p) for p in phis])), persistent=False
        )

    @classmethod
    def applicable(cls, setting: Setting) -> str | None:
        return cost_problem(setting)

    def thresholds(self, bids: torch.Tensor) -> torch.Tensor:
        """Bidder i's threshold bundle value given the others' bids: (B, n) (``inf``
        where no bundle value of its own gets it served)."""
        m = self.setting.num_items
        knots, phi = self.knots.to(bids.dtype), self.phi.to(bids.dtype)
        s = bids.sum(-1).T.contiguous()  # (n, B)
        idx = (torch.searchsorted(knots, s, right=True) - 1).clamp_min(0)
        surplus = (phi.gather(-1, idx) - m * self.c_d).clamp_min(0.0)  # (n, B)
        others = surplus.sum(dim=0, keepdim=True) - surplus
        tau = m * self.c_d + (m * self.c_p - others).clamp_min(0.0)
        return inverse_virtual_value(knots, phi, tau, True, 0.0).T

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        threshold = self.thresholds(bids)  # (B, n)
        buys = bids.sum(-1) >= threshold
        pay = torch.where(buys, threshold, torch.zeros_like(threshold))
        return buys.unsqueeze(-1).expand_as(bids).to(bids.dtype).clone(), pay
