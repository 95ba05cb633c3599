"""TEDI's menu mechanism: pricing rules from a Partial GroupMax Network
(Ma et al., "Learning Truthful Mechanisms without Discretization", AAMAS 2026).

Bidder i faces the pricing rule (Eq. 2)

    p_i(x_i; t_-i) = f(x_i, t_-i) - f(0, t_-i),      x_i in [0, 1]^m,

with f convex in x_i (Definitions 3.1-3.3), shared by all bidders, so the rule satisfies
no-buy-no-pay and partial convexity and the induced direct mechanism is DSIC and IR
(Theorem 2.9).  Inference (Eq. 4) solves each bidder's concave utility maximisation
``max_x <t_i, x> - p_i(x; t_-i)`` over the box by smoothing continuation with accelerated
projected gradient ascent (:meth:`TEDIMechanism.solve`), batched over profiles and bidders,
keeping the best candidate under the exact utility and the null outcome (x = 0, u = 0), so
IR holds exactly and the only loss of truthfulness is the solver's suboptimality.

Prices are not bounded below: Eq. 2 asks only that f be convex in x, and a convex f may
decrease along some direction (the skip slope D(t_-i) and the first layer take any sign),
so ``p_i(x) < 0`` is possible: the principal pays a bidder to take x.  That is a
legitimate menu (IR and DSIC are unaffected) and it costs the principal, so training
avoids it; clamping the price at 0 would change the menu the network represents.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from automech.errors import NotApplicableError
from automech.mechanisms.base import Mechanism
from automech.problems.setting import Setting, cost_problem

#: One layer's affine maps ``(W_k, b_k, D_k, c_k)``; the skip slope D and the entry fee c
#: are None except, where switched on, in the last layer.
AffineMap = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]


def group_max(h: torch.Tensor, group: int) -> torch.Tensor:
    """GroupMax activation (Definition 3.1): (..., G * E) -> (..., G), max within groups.

    Group g holds the units ``e * G + g`` (e < E): any fixed partition of the G * E units
    into G groups of E is the same activation, and this one makes the reduction run over
    contiguous slices, several times faster on CPU than groups of adjacent units."""
    return h.unflatten(-1, (group, -1)).amax(dim=-2)


def _smooth_max(hg: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``tau * logsumexp(hg / tau)`` over the group dimension (-2, see :func:`group_max`)
    and its softmax weights.  Exponents are clamped at -60 (weights below e^-60 are zero
    anyway): exp of tiny arguments produces subnormal floats, which are slow on CPUs."""
    top = hg.amax(-2, keepdim=True)
    e = torch.exp((hg - top).mul_(1.0 / tau).clamp_(min=-60.0))
    total = e.sum(-2, keepdim=True)
    return (top + tau * torch.log(total)).squeeze(-2), e / total


def _inv_softplus(x: torch.Tensor) -> torch.Tensor:
    return x + torch.log(-torch.expm1(-x))


class PartialGroupMaxNet(nn.Module):
    """f(x, y) convex in x, continuous in (x, y) (Definition 3.3).

    A Parameterised Affine Network (Definition 3.2: an MLP trunk on y with one linear head
    per produced tensor) gives every layer's ``W_k(y), b_k(y)``; ``W_k`` for k >= 1 goes
    through softplus (>= 0).  With ``x_0 = x``:
    ``x_k = GroupMax(W_{k-1}(y) x_{k-1} + b_{k-1}(y))`` for k = 1..K and
    ``f = W_K(y) x_K + b_K(y) + D(y) x``, where the optional residual (skip) term
    ``D(y) x`` from the input is affine in x (any sign), so convexity is kept (Footnote 7);
    it starts at ``init_slope`` per good, i.e. f starts near a separable linear price.
    In value units f is ``scale * f_raw(x, y / scale) + shift . x`` (see ``__init__``).
    The optional fee term ``c(y) max_j x_j`` with ``c = softplus(.) >= 0`` (``fee``) is a
    second residual connection: a GroupMax over the input coordinates with a nonnegative
    weight, so f stays convex in x.  On integral bundles it is an entry fee charged on
    any purchase, which lets f express two-part tariffs and grand-bundle pricing
    (``c max_j x_j`` alone prices the grand bundle at c and makes every other bundle
    dominated) without first learning a GroupMax over all m goods; it starts at
    ``init_fee``.
    """

    shift: torch.Tensor

    def __init__(
        self,
        d_x: int,
        d_y: int,
        groups: tuple[int, ...] = (32, 32),
        group_size: int = 4,
        pan_hidden: int = 64,
        pan_layers: int = 2,
        skip: bool = True,
        init_slope: float = 0.5,
        fee: bool = True,
        init_fee: float = 0.25,
        seed: int = 0,
        scale: float = 1.0,
        shift: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        #: The values' unit: the network reads y / scale and prices in units of scale
        #: (f = scale * f_raw), so its weights, the smoothing tau and the init constants
        #: below are unit-free.
        self.scale = float(scale)
        #: ... plus the linear term ``shift . x`` (the support's floor: every type values x
        #: at least that), so that a support far from 0 starts priced at its floor.
        self.register_buffer(
            "shift",
            torch.as_tensor(np.zeros(d_x) if shift is None else shift, dtype=torch.float32),
            persistent=False,
        )
        self.d_x, self.d_y, self.groups, self.group_size = d_x, d_y, tuple(groups), group_size
        self.skip, self.fee = skip, fee
        trunk, width = [], max(d_y, 1)
        for _ in range(pan_layers):
            trunk += [nn.Linear(width, pan_hidden), nn.Tanh()]
            width = pan_hidden
        self.trunk = nn.Sequential(*trunk)
        ins = [d_x, *groups]
        outs = [g * group_size for g in groups] + [1]
        self.shapes = list(zip(outs, ins))
        self.w_heads, self.b_heads, self.d_heads = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for k, (o, i) in enumerate(self.shapes):
            w, b = nn.Linear(width, o * i), nn.Linear(width, o)
            with torch.no_grad():
                w.weight.mul_(0.1 / math.sqrt(width))
                b.weight.mul_(0.1 / math.sqrt(width))
                if k == 0:
                    w.bias.copy_(torch.randn(o * i, generator=gen) / math.sqrt(i))
                    b.bias.copy_(0.5 * torch.randn(o, generator=gen))
                else:  # softplus(raw) ~ U(0, 2 / in): layer outputs stay O(1)
                    scale = 2.0 / i if k < len(self.shapes) - 1 else 0.2 / i
                    w.bias.copy_(_inv_softplus(scale * torch.rand(o * i, generator=gen) + 1e-4))
                    b.bias.zero_()
            self.w_heads.append(w)
            self.b_heads.append(b)
            if skip and k == len(self.shapes) - 1:
                d = nn.Linear(width, o * d_x)
                with torch.no_grad():
                    d.weight.mul_(0.1 / math.sqrt(width))
                    d.bias.fill_(init_slope)
                self.d_heads.append(d)
        self.c_head: nn.Linear | None = None
        if fee:
            self.c_head = nn.Linear(width, 1)
            with torch.no_grad():
                self.c_head.weight.mul_(0.1 / math.sqrt(width))
                self.c_head.bias.fill_(float(_inv_softplus(torch.tensor(max(init_fee, 1e-4)))))

    def affine(self, y: torch.Tensor) -> list[AffineMap]:
        """Per-row affine maps from y (R, d_y): [(W_k, b_k, D_k or None)] for k = 0..K."""
        h = self.trunk(y / self.scale if self.d_y else y.new_zeros(1, 1))
        params: list[AffineMap] = []
        for k, (o, i) in enumerate(self.shapes):
            w = self.w_heads[k](h).view(-1, o, i)
            if k > 0:
                w = F.softplus(w)
            d, c = self._residuals(h) if k == len(self.shapes) - 1 else (None, None)
            params.append((w, self.b_heads[k](h), d, c))
        return params

    def _residuals(self, h: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Skip slope ``D`` (R, 1, d_x) and entry fee ``c`` (R, 1) from trunk features h."""
        d = self.d_heads[0](h).view(-1, 1, self.d_x) if self.skip else None
        c = None
        if self.fee:
            assert self.c_head is not None  # built when fee is on
            c = F.softplus(self.c_head(h))
        return d, c

    def residual_heads(self, y: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Only the residual terms of :meth:`affine` for rows y (R, d_y): the skip slope
        ``D(y)`` (R, 1, d_x) and the entry fee ``c(y)`` (R, 1), None where switched off
        (what fitting a start to classical prices needs, without the GroupMax heads), in
        the values' unit."""
        d, c = self._residuals(self.trunk(y / self.scale if self.d_y else y.new_zeros(1, 1)))
        return (
            None if d is None else d * self.scale + self.shift.to(d.dtype),
            None if c is None else c * self.scale,
        )

    def evaluate(self, x: torch.Tensor, params, tau: float = 0.0) -> torch.Tensor:
        """f(x, y) for x (R, S, d_x) (S points per row) and the rows' affine maps: (R, S).
        Maps with a leading dimension of 1 (no y: one bidder) are shared by all rows.

        ``tau > 0`` replaces every GroupMax by its smooth upper bound
        ``tau * logsumexp(. / tau)`` (still convex in x; within ``tau log E`` of the max per
        group), which the inference solver uses for continuation."""
        r, s_, _ = x.shape
        shared = params[0][0].shape[0] == 1
        z = x.reshape(r * s_, -1) if shared else x
        flat_x = z
        for k, (w, b, d, *_) in enumerate(params):
            if shared:
                h = z @ w[0].T + b[0]
                if d is not None:
                    h = h + flat_x @ d[0].T
            else:
                h = torch.matmul(z, w.transpose(-1, -2)) + b.unsqueeze(1)
                if d is not None:
                    h = h + torch.matmul(flat_x, d.transpose(-1, -2))
            if k == len(params) - 1:
                z = h
            elif tau > 0:
                z = _smooth_max(h.unflatten(-1, (self.group_size, -1)), tau)[0]
            else:
                z = group_max(h, self.group_size)
        fee = params[-1][3] if len(params[-1]) > 3 else None
        if fee is not None:
            top = (
                _smooth_max(flat_x.unsqueeze(-1), tau)[0]
                if tau > 0
                else flat_x.amax(-1, keepdim=True)
            )
            z = z + top * (fee[0] if shared else fee.unsqueeze(1))
        return self.scale * z.reshape(r, s_) + x @ self.shift.to(x.dtype)

    def value_and_grad(
        self, x: torch.Tensor, params, tau: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """f (R, S) and its gradient in x (R, S, d_x), by a hand-written backward pass (no
        autograd graph: the inference solver and Langevin steps call this in a loop).
        With ``tau = 0`` the gradient is the subgradient of the selected (arg)max pieces."""
        r, s_, _ = x.shape
        shared = params[0][0].shape[0] == 1
        z = x.reshape(r * s_, -1) if shared else x
        flat_x = z
        weights, mats = [], []
        for k, (w, b, d, *_) in enumerate(params):
            w_ = w[0] if shared else w
            if shared:
                h = z @ w_.T + b[0]
            else:
                h = torch.matmul(z, w_.transpose(-1, -2)) + b.unsqueeze(1)
            if d is not None:
                h = h + (flat_x @ d[0].T if shared else torch.matmul(flat_x, d.transpose(-1, -2)))
            mats.append(w_)
            if k == len(params) - 1:
                z = h
            else:
                hg = h.unflatten(-1, (self.group_size, -1))
                if tau > 0:
                    z, wts = _smooth_max(hg, tau)
                    weights.append(wts)
                else:
                    z, arg = hg.max(-2)
                    weights.append(F.one_hot(arg, self.group_size).to(h.dtype).transpose(-1, -2))
        # backward: d f / d z_K = W_K (one output), then through each GroupMax
        w_last, d_last = mats[-1], params[-1][2]
        if shared:
            g = w_last[0].expand(*z.shape[:-1], -1)
        else:
            g = w_last[:, 0].unsqueeze(1).expand(-1, z.shape[-2], -1)
        for k in range(len(params) - 2, -1, -1):
            gh = (g.unsqueeze(-2) * weights[k]).flatten(-2)
            g = gh @ mats[k] if shared else torch.matmul(gh, mats[k])
        if d_last is not None:
            g = g + (d_last[0, 0] if shared else d_last[:, 0].unsqueeze(1))
        fee = params[-1][3] if len(params[-1]) > 3 else None
        if fee is not None:
            c = fee[0] if shared else fee.unsqueeze(1)
            if tau > 0:
                top, wts = _smooth_max(flat_x.unsqueeze(-1), tau)
                wts = wts.squeeze(-1)
            else:
                top, arg = flat_x.max(-1, keepdim=True)
                wts = F.one_hot(arg.squeeze(-1), flat_x.shape[-1]).to(flat_x.dtype)
            z = z + top * c
            g = g + c * wts
        shift = self.shift.to(x.dtype)
        return (
            self.scale * z.reshape(r, s_) + x @ shift,
            self.scale * g.reshape(r, s_, -1) + shift,
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """f(x, y) for x (R, d_x), y (R, d_y): (R,)."""
        return self.evaluate(x.unsqueeze(1), self.affine(y)).squeeze(1)


class TEDIMechanism(Mechanism):
    """Menu mechanism of Partial-GroupMax pricing rules (unlimited supply, additive)."""

    name = "tedi"
    differentiable = False

    def __init__(
        self,
        setting: Setting,
        groups: tuple[int, ...] | list[int] = (16, 16),
        group_size: int = 4,
        pan_hidden: int = 64,
        pan_layers: int = 2,
        skip: bool = True,
        init_slope: float | None = None,
        fee: bool = True,
        init_fee: float | None = None,
        solver_steps: int = 300,
        solver_lr: float = 2.0,
        solver_tau: float = 0.1,
        solver_tau_final: float = 1e-5,
        chunk_rows: int = 8192,
        init_seed: int = 0,
    ) -> None:
        super().__init__(setting)
        problem = self.applicable(setting)
        if problem:
            raise NotApplicableError(f"{self.name}: {problem}")
        n, m = setting.shape
        #: The values' unit (:attr:`Setting.value_unit`); ``init_slope`` and ``init_fee``
        #: are in value units, the network's parameters in this unit.
        self.unit = unit = setting.value_unit
        if init_slope is None:
            init_slope = 0.5 * unit
        if init_fee is None:
            init_fee = 0.5 * init_slope
        self.net = PartialGroupMaxNet(
            m,
            (n - 1) * m,
            tuple(groups),
            group_size,
            pan_hidden,
            pan_layers,
            skip,
            init_slope / unit,
            fee,
            init_fee / unit,
            init_seed,
            scale=unit,
            shift=setting.value_floor,
        )
        self.cfg: dict[str, Any] = dict(
            groups=list(groups),
            group_size=group_size,
            pan_hidden=pan_hidden,
            pan_layers=pan_layers,
            skip=skip,
            init_slope=init_slope,
            fee=fee,
            init_fee=init_fee,
            solver_steps=solver_steps,
            solver_lr=solver_lr,
            solver_tau=solver_tau,
            solver_tau_final=solver_tau_final,
            chunk_rows=chunk_rows,
            init_seed=init_seed,
        )

    @classmethod
    def applicable(cls, setting: Setting) -> str | None:
        return cost_problem(setting)

    def config(self) -> dict[str, Any]:
        return dict(self.cfg)

    # ---------------------------------------------------------------- pricing rules

    def others(self, bids: torch.Tensor) -> torch.Tensor:
        """t_-i for every bidder, in index order: (B, n, (n - 1) m)."""
        b, n, m = bids.shape
        if n == 1:
            return bids.new_zeros(b, 1, 0)
        idx = torch.tensor([[k for k in range(n) if k != i] for i in range(n)], device=bids.device)
        return bids[:, idx].reshape(b, n, (n - 1) * m)

    def prices(self, x: torch.Tensor, params) -> torch.Tensor:
        """p(x; t_-i) = f(x, t_-i) - f(0, t_-i) for x (R, S, m): (R, S)."""
        zero = x.new_zeros(x.shape[0], 1, x.shape[2])
        return self.net.evaluate(x, params) - self.net.evaluate(zero, params)

    def price_gradient(
        self, x: torch.Tensor, params, tau: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """f(x) (R, S) and its (sub)gradient in x (R, S, m), parameters held fixed
        (``tau > 0``: of the smoothed network, see :meth:`PartialGroupMaxNet.evaluate`)."""
        with torch.no_grad():
            return self.net.value_and_grad(
                x, [tuple(None if t is None else t.detach() for t in p) for p in params], tau
            )

    # ---------------------------------------------------------------- inference (Eq. 4)

    def solve(self, types: torch.Tensor, params) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's utility-maximising bundle and its price: types (R, m) -> (R, m), (R,).

        ``max_x <t, x> - f(x)`` over [0, 1]^m is a concave piecewise-linear program.  It is
        solved by smoothing continuation: accelerated projected gradient ascent (Nesterov
        momentum) on the smoothed utility, every GroupMax replaced by
        ``tau logsumexp(. / tau)``, with tau decaying geometrically from ``solver_tau`` to
        ``solver_tau_final`` and step ``solver_lr * tau`` (the smoothed gradient is
        Lipschitz with a constant of order 1 / tau).  Candidates scored with the exact
        (unsmoothed) utility: the iterates, their rounding to {0, 1}^m, the last iterate
        with coordinates within 1e-4 ... 3e-2 of a bound snapped to it, and x = 0 (u = 0).
        The best candidate is returned with its exact price, so IR and no-buy-no-pay hold
        exactly and truthfulness is lost only by the solver's suboptimality (measured
        against an exact LP in the tests).
        """
        r, m = types.shape
        steps, lr = self.cfg["solver_steps"], self.cfg["solver_lr"]
        tau0, tau1 = self.cfg["solver_tau"], self.cfg["solver_tau_final"]
        t = types.unsqueeze(1)  # (R, 1, m)
        f0 = self.net.evaluate(types.new_zeros(r, 1, m), params)  # (R, 1)
        best_x = types.new_zeros(r, 1, m)
        best_u = types.new_zeros(r, 1)

        def consider(cand: torch.Tensor) -> None:
            nonlocal best_x, best_u
            u = (t * cand).sum(-1) - (self.net.evaluate(cand, params) - f0)
            better = u > best_u
            best_u = torch.where(better, u, best_u)
            best_x = torch.where(better.unsqueeze(-1), cand, best_x)

        x = torch.full_like(t, 0.5)
        prev = x
        for s in range(steps):
            tau = tau0 * (tau1 / tau0) ** (s / max(1, steps - 1))
            look = x + (s / (s + 3)) * (x - prev)
            _, grad = self.price_gradient(look, params, tau)
            prev, x = x, (look + (lr * tau / self.unit) * (t - grad)).clamp(0.0, 1.0)
            if s % 10 == 9 or s >= steps - 5:
                consider(x)
        consider(x.round())
        for tol in (1e-4, 1e-3, 1e-2, 3e-2):
            consider(torch.where(x < tol, 0.0, torch.where(x > 1 - tol, 1.0, x)))
        consider(best_x.round())
        price = (t * best_x).sum(-1) - best_u
        return best_x.squeeze(1), price.squeeze(1)

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, m = bids.shape
        bids_d = bids.to(self.dtype)
        types = bids_d.reshape(b * n, m)
        ys = self.others(bids_d).reshape(b * n, -1)
        allocs, pays = [], []
        step = self.cfg["chunk_rows"]
        with torch.no_grad():
            for s in range(0, b * n, step):
                params = self.net.affine(ys[s : s + step])
                x, p = self.solve(types[s : s + step], params)
                allocs.append(x)
                pays.append(p)
        alloc = torch.cat(allocs).view(b, n, m).to(bids.dtype)
        pay = torch.cat(pays).view(b, n).to(bids.dtype)
        return alloc, pay

    def describe(self, values: np.ndarray) -> dict[str, Any]:
        with torch.no_grad():
            v = torch.as_tensor(values[:2048], dtype=self.dtype)
            alloc, pay = self(v)
        frac = alloc.flatten()
        return {
            "kind": self.name,
            "config": self.config(),
            "mean_allocation": float(alloc.mean()),
            "mean_payment": float(pay.mean()),
            "share_integral": float(((frac < 1e-3) | (frac > 1 - 1e-3)).double().mean()),
        }
