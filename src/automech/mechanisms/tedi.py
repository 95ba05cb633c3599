"""TEDI's menu mechanism: pricing rules from a Partial GroupMax Network
(Ma et al., "Learning Truthful Mechanisms without Discretization", AAMAS 2026).

Bidder i faces the pricing rule (Eq. 2)

    p_i(x_i; t_-i) = f(x_i, t_-i) - f(0, t_-i),      x_i in [0, 1]^m,

with f convex in x_i (Definitions 3.1-3.3), shared by all bidders, so the rule satisfies
no-buy-no-pay and partial convexity and the induced direct mechanism is DSIC and IR
(Theorem 2.9).  Inference (Eq. 4) solves each bidder's concave utility maximisation
``max_x <t_i, x> - p_i(x; t_-i)`` over the box by projected (sub)gradient ascent, batched
over profiles and bidders, keeping the best iterate and the null outcome (x = 0, u = 0),
so IR holds exactly and the only loss of truthfulness is the solver's suboptimality.
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
from automech.mechanisms.cost_baselines import cost_problem
from automech.problems.setting import Setting


def group_max(h: torch.Tensor, group: int) -> torch.Tensor:
    """GroupMax activation (Definition 3.1): (..., G * E) -> (..., G), max within groups."""
    return h.unflatten(-1, (-1, group)).amax(dim=-1)


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
    """

    def __init__(self, d_x: int, d_y: int, groups: tuple[int, ...] = (32, 32),
                 group_size: int = 4, pan_hidden: int = 64, pan_layers: int = 2,
                 skip: bool = True, init_slope: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.d_x, self.d_y, self.groups, self.group_size = d_x, d_y, tuple(groups), group_size
        self.skip = skip
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
                else:   # softplus(raw) ~ U(0, 2 / in): layer outputs stay O(1)
                    scale = 2.0 / i if k < len(self.shapes) - 1 else 0.2 / i
                    w.bias.copy_(_inv_softplus(scale * torch.rand(o * i, generator=gen)
                                               + 1e-4))
                    b.bias.zero_()
            self.w_heads.append(w)
            self.b_heads.append(b)
            if skip and k == len(self.shapes) - 1:
                d = nn.Linear(width, o * d_x)
                with torch.no_grad():
                    d.weight.mul_(0.1 / math.sqrt(width))
                    d.bias.fill_(init_slope)
                self.d_heads.append(d)

    def affine(self, y: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
        """Per-row affine maps from y (R, d_y): [(W_k, b_k, D_k or None)] for k = 0..K."""
        if self.d_y == 0:
            y = y.new_zeros(1, 1)
        h = self.trunk(y)
        params = []
        for k, (o, i) in enumerate(self.shapes):
            w = self.w_heads[k](h).view(-1, o, i)
            if k > 0:
                w = F.softplus(w)
            last = k == len(self.shapes) - 1
            d = self.d_heads[0](h).view(-1, o, self.d_x) if self.skip and last else None
            params.append((w, self.b_heads[k](h), d))
        return params

    def evaluate(self, x: torch.Tensor, params) -> torch.Tensor:
        """f(x, y) for x (R, S, d_x) (S points per row) and the rows' affine maps: (R, S).
        Maps with a leading dimension of 1 (no y: one bidder) are shared by all rows."""
        r, s_, _ = x.shape
        shared = params[0][0].shape[0] == 1
        z = x.reshape(r * s_, -1) if shared else x
        flat_x = z
        for k, (w, b, d) in enumerate(params):
            if shared:
                h = z @ w[0].T + b[0]
                if d is not None:
                    h = h + flat_x @ d[0].T
            else:
                h = torch.matmul(z, w.transpose(-1, -2)) + b.unsqueeze(1)
                if d is not None:
                    h = h + torch.matmul(flat_x, d.transpose(-1, -2))
            z = group_max(h, self.group_size) if k < len(params) - 1 else h
        return z.reshape(r, s_)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """f(x, y) for x (R, d_x), y (R, d_y): (R,)."""
        return self.evaluate(x.unsqueeze(1), self.affine(y)).squeeze(1)


class TEDIMechanism(Mechanism):
    """Menu mechanism of Partial-GroupMax pricing rules (unlimited supply, additive)."""

    name = "tedi"
    differentiable = False

    def __init__(self, setting: Setting, groups: tuple[int, ...] | list[int] = (16, 16),
                 group_size: int = 4, pan_hidden: int = 64, pan_layers: int = 2,
                 skip: bool = True, init_slope: float | None = None,
                 solver_steps: int = 100, solver_lr: float = 0.2, solver_lr_final: float = 1e-4,
                 chunk_rows: int = 8192, init_seed: int = 0) -> None:
        super().__init__(setting)
        problem = self.applicable(setting)
        if problem:
            raise NotApplicableError(f"{self.name}: {problem}")
        n, m = setting.shape
        if init_slope is None:
            init_slope = 0.5 * float(np.max(setting.prior.support()[1]))
        self.net = PartialGroupMaxNet(m, (n - 1) * m, tuple(groups), group_size, pan_hidden,
                                      pan_layers, skip, init_slope, init_seed)
        self.cfg = dict(groups=list(groups), group_size=group_size, pan_hidden=pan_hidden,
                        pan_layers=pan_layers, skip=skip, init_slope=init_slope,
                        solver_steps=solver_steps, solver_lr=solver_lr,
                        solver_lr_final=solver_lr_final, chunk_rows=chunk_rows,
                        init_seed=init_seed)

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
        idx = torch.tensor([[k for k in range(n) if k != i] for i in range(n)],
                           device=bids.device)
        return bids[:, idx].reshape(b, n, (n - 1) * m)

    def prices(self, x: torch.Tensor, params) -> torch.Tensor:
        """p(x; t_-i) = f(x, t_-i) - f(0, t_-i) for x (R, S, m): (R, S)."""
        zero = x.new_zeros(x.shape[0], 1, x.shape[2])
        return self.net.evaluate(x, params) - self.net.evaluate(zero, params)

    def price_gradient(self, x: torch.Tensor, params) -> tuple[torch.Tensor, torch.Tensor]:
        """f(x) (R, S) and its (sub)gradient in x (R, S, m), parameters held fixed."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            val = self.net.evaluate(x, [tuple(None if t is None else t.detach() for t in p)
                                        for p in params])
            (grad,) = torch.autograd.grad(val.sum(), x)
        return val.detach(), grad

    # ---------------------------------------------------------------- inference (Eq. 4)

    def solve(self, types: torch.Tensor, params) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's utility-maximising bundle and its price: types (R, m) -> (R, m), (R,).

        Projected subgradient ascent on ``<t, x> - f(x)`` from x = 1/2 with a geometrically
        decaying step, keeping the best iterate; x = 0 (utility 0) and the rounding of the
        best iterate to {0, 1}^m are candidates too.
        """
        r, m = types.shape
        steps, lr0, lr1 = (self.cfg["solver_steps"], self.cfg["solver_lr"],
                           self.cfg["solver_lr_final"])
        t = types.unsqueeze(1)                                            # (R, 1, m)
        f0 = self.net.evaluate(types.new_zeros(r, 1, m), params)          # (R, 1)
        best_x = types.new_zeros(r, 1, m)
        best_u = types.new_zeros(r, 1)
        x = torch.full_like(t, 0.5)
        for s in range(steps + 1):
            val, grad = self.price_gradient(x, params)
            u = (t * x).sum(-1) - (val - f0)
            better = u > best_u
            best_u = torch.where(better, u, best_u)
            best_x = torch.where(better.unsqueeze(-1), x, best_x)
            if s == steps:
                break
            lr = lr0 * (lr1 / lr0) ** (s / max(1, steps - 1))
            x = (x + lr * (t - grad)).clamp(0.0, 1.0)
        for cand in (best_x.round(), (best_x > 0.99).to(types.dtype)):
            u = (t * cand).sum(-1) - (self.net.evaluate(cand, params) - f0)
            better = u > best_u
            best_u = torch.where(better, u, best_u)
            best_x = torch.where(better.unsqueeze(-1), cand, best_x)
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
                params = self.net.affine(ys[s:s + step])
                x, p = self.solve(types[s:s + step], params)
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
        return {"kind": self.name, "config": self.config(),
                "mean_allocation": float(alloc.mean()), "mean_payment": float(pay.mean()),
                "share_integral": float(((frac < 1e-3) | (frac > 1 - 1e-3)).double().mean())}
