"""Affine maximizer auctions (AMAs), deterministic and with learned lotteries.

Curry, Sandholm and Dickerson, "Differentiable Economics for Randomized Affine Maximizer
Auctions" (``shared/papers/lottery-affine-maximizer-auctions.txt``), Sections 4-5.

An AMA has bidder weights ``w_i > 0``, a finite set of allocations ``a_k`` (each a
feasible (n, m) matrix, possibly a lottery) and a boost ``lambda_k`` per allocation.
On bids v it chooses (Eq. 1)

    k* = argmax_k  s_k(v),        s_k(v) = sum_i w_i v_i . a_ki + lambda_k,

and bidder i pays the weighted externality it imposes on the others (Eq. 2)

    p_i = (1 / w_i) [ max_k s^{-i}_k(v) - s^{-i}_{k*}(v) ],
    s^{-i}_k(v) = s_k(v) - w_i v_i . a_ki.

It is DSIC and IR for every parameter value.  If bidder i reports b_i and allocation k
is chosen, its utility is ``(1 / w_i) [w_i v_i . a_ki + s^{-i}_k - max_l s^{-i}_l]``: the
last term does not depend on b_i, and the truthful report makes the mechanism pick the k
maximising the first two (that is Eq. 1 at the true values), so no report does better.
At the truth the utility is ``(1 / w_i) [max_k s_k - max_k s^{-i}_k] >= 0`` since
``s_k >= s^{-i}_k`` for non-negative values.  Both arguments hold for any finite set of
allocations, so removing allocations (pruning, below) keeps DSIC and IR.

As in the paper, the empty allocation (nothing sold, nobody pays) is always in the set;
its boost is fixed at 0 (boosts matter only up to a common shift, so this loses nothing).

Two classes share the code:

* :class:`LotteryAMA`: ``allocations`` learned allocations, parameterised so that they are
  always feasible (Section 5): unit supply, additive: per item a softmax over the bidders
  and a dummy "nobody" row, dummy dropped; unit supply, unit-demand: the minimum of two
  softplus matrices, one normalised per item over bidders (+ dummy bidder), one normalised
  per bidder over items (+ dummy item) (the paper's unit-demand construction, with the
  dummies of Duetting et al.'s unit-demand RegretNet so that partial allocations are
  representable); unlimited supply (no constraint across bidders): additive a per-entry
  sigmoid, unit-demand a per-bidder softmax over items and a dummy.
* :class:`DeterministicAMA`: every feasible deterministic allocation
  (:func:`~automech.mechanisms.welfare.deterministic_allocations`), only weights and
  boosts learned; not applicable where they are too many to enumerate (3x10: 4^10).

Training uses the paper's softmax surrogate (:meth:`relaxed`): the argmax in Eq. (1) is
replaced by softmax weights ``softmax(T s)`` over the allocations and each max in Eq. (2)
by the softmax-weighted mean of ``s^{-i}``; it runs through :class:`SoftmaxSurrogate`, a
hand-written backward that makes a few passes over the (profiles x bidders x allocations)
tensors instead of autograd's many.  The exact mechanism (:meth:`forward`, used for
validation and evaluation) takes the true maxima, in float64, ties broken towards the
empty allocation and then the lowest index.

Units: the ``boosts`` parameter and the surrogate's scores are in the values' unit
(:attr:`~automech.problems.Setting.value_unit`), so the paper's temperature and step sizes
mean the same on U[0, 100] as on U[0, 1].

Starting boosts: :meth:`reset_boosts` sets ``lambda_k = -r * sum(a_k)``, a per-unit reserve
r (with weights 1 and all deterministic allocations this is VCG with reserve r per item,
i.e. separate Myerson for r = 1/2 on U[0, 1]); :meth:`tune_reserve` picks r on a sample.

Pruning: the persistent buffer ``active`` marks the allocations in use.  :meth:`prune`
drops those that carry no softmax mass (neither in the choice nor in any bidder's
counterfactual choice) on a sample of profiles; the mechanism is then the AMA over the
remaining set, still exactly DSIC and IR, and every computation is restricted to it.
Parameters of dropped allocations stay in the state dict, so checkpoints keep one shape.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from automech.errors import NotApplicableError
from automech.mechanisms.base import Mechanism
from automech.mechanisms.welfare import (
    MAX_ENUMERATED_ALLOCATIONS,
    count_deterministic_allocations,
    deterministic_allocations,
)
from automech.problems.setting import Setting

#: Elements of the (profiles x bidders x allocations) score tensor per chunk in the
#: exact forward (float64): bounds its memory (2^22 doubles = 32 MB per temporary).
EXACT_CHUNK_ELEMENTS = 2**22

#: An allocation counts as a lottery in :meth:`AffineMaximizer.describe` when some entry
#: is farther than this from both 0 and 1.
LOTTERY_TOLERANCE = 0.05


def symmetric_prior(setting: Setting) -> bool:
    """True when every bidder's prior has the same support box (and the same atoms for a
    discrete prior): the heuristic behind ``learn_weights="auto"``."""
    low, high = setting.prior.support()
    if not (np.allclose(low, low[:1]) and np.allclose(high, high[:1])):
        return False
    first = setting.prior.atoms(0)
    for i in range(1, setting.num_bidders):
        other = setting.prior.atoms(i)
        if (first is None) != (other is None):
            return False
        if (
            first is not None
            and other is not None
            and (first.shape != other.shape or not np.allclose(first, other))
        ):
            return False
    return True


def nonempty_deterministic_allocations(setting: Setting) -> torch.Tensor:
    """Every feasible deterministic allocation except the empty one: (D, n, m)."""
    det = torch.as_tensor(deterministic_allocations(setting), dtype=torch.float32)
    return det[det.flatten(1).sum(dim=1) > 0]


class SoftmaxSurrogate(torch.autograd.Function):
    """The softmax surrogate of Eq. (1)-(2) with a hand-written backward.

    Same values as the plain autograd version (:meth:`AffineMaximizer.relaxed` with
    ``fused=False``) but far fewer passes over the (profiles x bidders x allocations)
    tensors, and only two of them kept for the backward: the counterfactual scores
    ``x = s^{-i}`` and their softmax ``beta``.  With ``c_i = dL/dp_i / w_i``,
    ``F_i = sum_k beta_ik x_ik`` and ``alpha = softmax(T s)``:

        dL/dx_ik = c_i [beta_ik (1 + T (x_ik - F_i)) - alpha_k],
        dL/ds_k  = T alpha_k (d_k - sum_l alpha_l d_l) + sum_i dL/dx_ik,
                   d_k = -sum_i c_i x_ik + <dL/d alloc, a_k>,

    and ``s_k = sum_i w_i v_i . a_ki + lambda_k``, ``x_ik = s_k - w_i v_i . a_ki``.
    """

    @staticmethod
    def forward(ctx, bids, alloc, boosts, w, temperature):
        B, n, m = bids.shape
        K = alloc.shape[0]
        wb = bids * w[:, None]  # (B, n, m)
        # wu[b, i, k] = w_i v_bi . a_ki, batched over bidders: (B, n, K)
        x = torch.bmm(wb.transpose(0, 1), alloc.permute(1, 2, 0)).transpose(0, 1).contiguous()
        s = x.sum(dim=1).add_(boosts)  # (B, K)
        torch.sub(s.unsqueeze(1), x, out=x)  # x = s^{-i}
        beta = torch.softmax(x * temperature, dim=2)  # (B, n, K)
        F = torch.linalg.vecdot(beta, x, dim=2)  # (B, n)
        alpha = torch.softmax(s * temperature, dim=1)  # (B, K)
        G = torch.bmm(x, alpha.unsqueeze(2)).squeeze(2)  # (B, n): E_alpha x
        pay = (F - G) / w
        out_alloc = (alpha @ alloc.reshape(K, n * m)).view(B, n, m)
        ctx.save_for_backward(wb, bids, alloc, w, x, beta, alpha, F, pay)
        ctx.temperature = temperature
        ctx.used = False
        return out_alloc, pay

    @staticmethod
    def backward(ctx, g_alloc, g_pay):
        if ctx.used:  # x is overwritten below: one backward only
            raise RuntimeError("SoftmaxSurrogate supports a single backward pass")
        ctx.used = True
        wb, bids, alloc, w, x, beta, alpha, F, pay = ctx.saved_tensors
        T = ctx.temperature
        need_alloc, need_boosts, need_w = ctx.needs_input_grad[1:4]
        B, n, m = bids.shape
        K = alloc.shape[0]
        if g_pay is None:
            g_pay = pay.new_zeros(B, n)
        c = g_pay / w  # (B, n)
        # d/d alpha: from G (-sum_i c_i x_ik) and from the allocation output
        d_alpha = -torch.bmm(c.unsqueeze(1), x).squeeze(1)  # (B, K)
        if g_alloc is not None:
            d_alpha += g_alloc.reshape(B, n * m) @ alloc.reshape(K, n * m).T
        d_s = alpha * (d_alpha - (alpha * d_alpha).sum(dim=1, keepdim=True)) * T  # (B, K)
        # d/dx = c_i [beta (1 + T (x - F)) - alpha]
        dx = x.mul_(T).add_((1 - T * F).unsqueeze(2)).mul_(beta).sub_(alpha.unsqueeze(1))
        dx.mul_(c.unsqueeze(2))
        d_s += dx.sum(dim=1)  # D_k
        torch.sub(d_s.unsqueeze(1), dx, out=dx)  # d wu = D - dx
        g_boosts = d_s.sum(dim=0) if need_boosts else None
        g_alloc_param = g_w = None
        if need_alloc:
            # wu = wb . alloc: (n, B, K)^T (n, B, m) -> (n, K, m)
            g_alloc_param = torch.bmm(dx.transpose(0, 1).transpose(1, 2), wb.transpose(0, 1))
            g_alloc_param = g_alloc_param.permute(1, 0, 2)  # (K, n, m)
            if g_alloc is not None:
                g_alloc_param = g_alloc_param + (alpha.T @ g_alloc.reshape(B, n * m)).view(K, n, m)
        if need_w:
            # through wb (v_i . a_ki * dwu) and through 1/w in the payments
            g_wb = torch.bmm(dx.transpose(0, 1), alloc.permute(1, 0, 2)).transpose(0, 1)
            g_w = (g_wb * bids).sum(dim=(0, 2)) - (g_pay * pay).sum(dim=0) / w
        return None, g_alloc_param, g_boosts, g_w, None


class AffineMaximizer(Mechanism):
    """Shared AMA code; use :class:`LotteryAMA` or :class:`DeterministicAMA`."""

    name: ClassVar[str] = "affine-maximizer"
    log_weights: torch.Tensor  # a parameter or a buffer
    active: torch.Tensor  # registered by the subclasses, as are the boosts
    boosts: torch.Tensor

    def __init__(self, setting: Setting, learn_weights: bool = False) -> None:
        super().__init__(setting)
        problem = self.applicable(setting)
        if problem:
            raise NotApplicableError(f"{self.name}: {problem}")
        self.learn_weights = bool(learn_weights)
        #: The values' unit (:attr:`Setting.value_unit`): the ``boosts`` parameter holds
        #: boosts in it and the surrogate's softmax sees scores in it (temperature / unit),
        #: so values scaled by c train along the same path and end with c times the boosts.
        self.unit = setting.value_unit
        log_w = torch.zeros(setting.num_bidders)
        if self.learn_weights:
            self.log_weights = torch.nn.Parameter(log_w)
        else:
            self.register_buffer("log_weights", log_w)

    # ------------------------------------------------------------ parameters -> AMA

    @property
    def num_allocations(self) -> int:
        """Allocations in the parameterised set, active or not (the empty one excluded)."""
        return len(self.active)

    def weights(self) -> torch.Tensor:
        """Bidder weights ``w_i = exp(log_weights_i) > 0``: (n,)."""
        return self.log_weights.exp()

    def allocations(self, index: torch.Tensor | None = None) -> torch.Tensor:
        """Allocations ``index`` (default: all) of the parameterised set: (K, n, m)."""
        raise NotImplementedError

    def table(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The AMA in use: allocations (K' + 1, n, m), boosts (K' + 1,), and the index of
        each in the full set (-1 for the empty allocation, which comes first)."""
        index = torch.nonzero(self.active).flatten()
        alloc = self.allocations(index)
        boosts = self.boosts[index] * self.unit
        empty = alloc.new_zeros(1, *alloc.shape[1:])
        return (
            torch.cat([empty, alloc]),
            torch.cat([boosts.new_zeros(1), boosts]),
            torch.cat([index.new_full((1,), -1), index]),
        )

    @staticmethod
    def _scores(bids, alloc, boosts, weights):
        """Per-bidder weighted values ``w_i v_i . a_ki`` (B, n, K), scores s (B, K) and
        the scores without each bidder ``s^{-i}`` (B, n, K)."""
        wu = torch.einsum("bnm,knm->bnk", bids, alloc) * weights[:, None]
        s = wu.sum(dim=1) + boosts
        return wu, s, s.unsqueeze(1) - wu

    @torch.no_grad()
    def reset_boosts(self, reserve: float) -> None:
        """Boosts ``-reserve * (total quantity allocated by a_k)``: with weights 1 and
        every deterministic allocation this is VCG with a per-item reserve price."""
        self.boosts.copy_(-(reserve / self.unit) * self.allocations().sum(dim=(1, 2)))

    @torch.no_grad()
    def tune_reserve(self, bids: torch.Tensor, points: int = 21, tolerance: float = 0.05) -> float:
        """Set the boosts by :meth:`reset_boosts` with a reserve chosen among ``points``
        values from 0 to the largest value the prior can draw: the smallest one whose
        exact revenue on ``bids`` is within ``tolerance`` (relative) of the best.  Among
        near-equal starts the lowest reserve keeps the most profiles trading, which is
        where the training signal comes from.  Returns the reserve."""
        top = float(np.max(self.setting.prior.support()[1]))
        grid = np.linspace(0.0, top, points)
        revenues = []
        for r in grid:
            self.reset_boosts(float(r))
            revenues.append(float(self(bids)[1].sum(dim=1).mean()))
        best = max(revenues)
        chosen = float(
            next(r for r, rev in zip(grid, revenues) if rev >= best - tolerance * abs(best))
        )
        self.reset_boosts(chosen)
        return chosen

    # ------------------------------------------------------------ exact mechanism

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alloc, boosts = self._exact_table()
        return self._exact(bids, alloc, boosts)[:2]

    def _exact_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`table`'s allocations and boosts, detached, in float64 (what
        :meth:`_exact` uses), rebuilt only when a parameter or buffer changed (their
        version counters), so a served AMA does not rebuild its table per auction."""
        key = tuple((id(t), t._version) for t in (*self.parameters(), *self.buffers()))
        cached = self.__dict__.get("_table_cache")
        if cached is None or cached[0] != key:
            alloc, boosts, _ = self.table()
            value = (alloc.detach().to(torch.float64), boosts.detach().to(torch.float64))
            self.__dict__["_table_cache"] = cached = (key, value)
        return cached[1]

    def choices(self, bids: torch.Tensor) -> torch.Tensor:
        """Index into :meth:`table`'s allocations of the one chosen for each profile (B,)."""
        alloc, boosts, _ = self.table()
        return self._exact(bids, alloc, boosts)[2]

    def menus(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The menu this AMA offers each bidder (Eq. 2 read bidder by bidder): entry k of
        :meth:`table` gives bidder i its share ``a_ki`` at price
        ``(max_l s^{-i}_l - s^{-i}_k) / w_i``, with ``s^{-i}_k`` allocation k's affine score
        without bidder i -- a function of ``v_-i`` only, so every AMA is a menu mechanism.
        Returns the allocations (K'+1, n, m) and the prices (B, n, K'+1) at ``bids``."""
        alloc, boosts, _ = self.table()
        alloc, boosts, weights = alloc.detach(), boosts.detach(), self.weights().detach()
        _, _, s_minus = self._scores(bids, alloc, boosts, weights)
        return alloc, (s_minus.amax(dim=2, keepdim=True) - s_minus) / weights[:, None]

    def _exact(self, bids, alloc, boosts):
        """Exact Eq. (1)-(2), in float64 and in chunks: allocation (B, n, m), payments
        (B, n) in the bids' dtype, and the chosen index into ``alloc`` (B,)."""
        dt = torch.float64
        a64, b64, w64 = (
            alloc.detach().to(dt),
            boosts.detach().to(dt),
            self.weights().detach().to(dt),
        )
        n, k = bids.shape[1], len(alloc)
        rows = max(1, EXACT_CHUNK_ELEMENTS // (n * k))
        allocs, pays, choices = [], [], []
        for s0 in range(0, len(bids), rows):
            v = bids[s0 : s0 + rows].detach().to(dt)
            wu, s, s_minus = self._scores(v, a64, b64, w64)
            choice = s.argmax(dim=1)  # first max: empty wins ties
            at_choice = s_minus.gather(2, choice.view(-1, 1, 1).expand(-1, n, 1)).squeeze(2)
            pay = (s_minus.amax(dim=2) - at_choice) / w64
            allocs.append(a64[choice])
            pays.append(pay.clamp_min(0.0))
            choices.append(choice)
        return (
            torch.cat(allocs).to(bids.dtype),
            torch.cat(pays).to(bids.dtype),
            torch.cat(choices),
        )

    # ------------------------------------------------------------ training surrogate

    def relaxed(
        self,
        bids: torch.Tensor,
        temperature: float,
        *,
        softmax_gap: float = 0.0,
        fused: bool = True,
    ):
        """The paper's softmax surrogate: allocation ``sum_k softmax(T s)_k a_k`` and
        payments ``(1/w_i) sum_k (softmax(T s^{-i})_k - softmax(T s)_k) s^{-i}_k``.

        ``fused``: through :class:`SoftmaxSurrogate` (hand-written backward) rather than
        plain autograd; same values.  ``softmax_gap = c > 0`` (0: off, the paper's
        surrogate) restricts the batch to the allocations that carry softmax weight in
        it: the scores of all allocations are first computed without autograd and the
        differentiable part runs over the allocations within ``c / T`` of some row
        maximum (in the choice or in a bidder's counterfactual choice) in this batch
        only; what is left out has softmax weight below ``exp(-c)`` everywhere in the
        batch.  Both are training switches of the method, not part of the mechanism.
        """
        alloc, boosts, _ = self.table()
        w = self.weights()
        temperature = temperature / self.unit  # the temperature applies to scores in units
        if softmax_gap > 0 and len(alloc) > 1:
            keep = self._within_gap(bids, alloc, boosts, w, softmax_gap / temperature)
            alloc, boosts = alloc[keep], boosts[keep]
        if fused:
            return SoftmaxSurrogate.apply(bids, alloc, boosts, w, float(temperature))
        wu, s, s_minus = self._scores(bids, alloc, boosts, w)
        chosen = torch.softmax(temperature * s, dim=1)  # (B, K)
        without = torch.softmax(temperature * s_minus, dim=2)  # (B, n, K)
        pay = ((without - chosen.unsqueeze(1)) * s_minus).sum(dim=2) / w
        return torch.einsum("bk,knm->bnm", chosen, alloc), pay

    @torch.no_grad()
    def _within_gap(self, bids, alloc, boosts, w, gap: float) -> torch.Tensor:
        """Indices of the allocations within ``gap`` of a row maximum on ``bids``."""
        _, s, s_minus = self._scores(bids, alloc.detach(), boosts.detach(), w.detach())
        near = (s >= s.amax(dim=1, keepdim=True) - gap).any(dim=0)
        s_minus -= s_minus.amax(dim=2, keepdim=True) - gap
        near |= (s_minus >= 0).flatten(0, 1).any(dim=0)
        return torch.nonzero(near).flatten()

    # ------------------------------------------------------------ pruning

    @torch.no_grad()
    def softmax_mass(
        self, bids: torch.Tensor, temperature: float, chunk: int = 4096
    ) -> torch.Tensor:
        """Largest softmax weight each active allocation gets on ``bids``, in the choice
        or in any bidder's counterfactual choice: (K',) in the order of :meth:`table`
        without the empty allocation."""
        alloc, boosts, _ = self.table()
        w = self.weights()
        temperature = temperature / self.unit
        mass = alloc.new_zeros(len(alloc))
        for s0 in range(0, len(bids), chunk):
            _, s, s_minus = self._scores(bids[s0 : s0 + chunk], alloc, boosts, w)
            chosen = torch.softmax(temperature * s, dim=1).amax(dim=0)
            without = torch.softmax(temperature * s_minus, dim=2).amax(dim=(0, 1))
            mass = torch.maximum(mass, torch.maximum(chosen, without))
        return mass[1:]

    @torch.no_grad()
    def prune(self, bids: torch.Tensor, temperature: float, threshold: float) -> int:
        """Deactivate allocations whose softmax mass on ``bids`` stays below
        ``threshold``; returns how many remain active."""
        index = torch.nonzero(self.active).flatten()
        if len(index) == 0:
            return 0
        keep = self.softmax_mass(bids, temperature) >= threshold
        self.active[index[~keep]] = False
        return int(self.active.sum())

    # ------------------------------------------------------------ interpretability

    @torch.no_grad()
    def describe(self, values: np.ndarray) -> dict[str, Any]:
        """The allocations chosen on ``values`` (B, n, m), most frequent first, with their
        boosts, how often each is chosen and the mean revenue when it is."""
        bids = torch.as_tensor(values, dtype=self.dtype, device=self.device)
        alloc, boosts, index = self.table()
        _, pay, choice = self._exact(bids, alloc, boosts)
        counts = torch.bincount(choice, minlength=len(alloc))
        revenue = torch.zeros(len(alloc), dtype=torch.float64).index_add_(
            0, choice.cpu(), pay.sum(dim=1).double().cpu()
        )
        used = sorted(torch.nonzero(counts).flatten().tolist(), key=lambda k: -int(counts[k]))
        entries = []
        for k in used:
            a = alloc[k].double()
            entries.append(
                {
                    "entry": int(index[k]),
                    "allocation": [[round(float(x), 4) for x in row] for row in a],
                    "boost": float(boosts[k]),
                    "share": float(counts[k]) / len(values),
                    "lottery": bool(torch.minimum(a, 1 - a).max() > LOTTERY_TOLERANCE),
                    "mean_revenue": float(revenue[k]) / int(counts[k]),
                }
            )
        return {
            "kind": self.name,
            "weights": self.weights().tolist(),
            "allocations_parameterised": self.num_allocations,
            "allocations_active": int(self.active.sum()) + 1,
            "allocations_used": len(used),
            "lotteries_used": sum(e["lottery"] for e in entries),
            "entries": entries,
        }


class LotteryAMA(AffineMaximizer):
    """Lottery AMA: ``allocations`` learned (randomised) allocations plus the empty one.

    Args:
        allocations: size K of the learned set.
        learn_weights: learn the bidder weights (else fixed at 1, as in the paper's
            symmetric experiments).
        init_seed: seed of the random initial parameters.
        init: ``"random"`` (the paper: every logit standard normal times ``init_scale``)
            or ``"deterministic"``: the first allocations start at (close to) every
            feasible deterministic allocation when they can be enumerated and fit in K,
            otherwise at random deterministic ones (each item to a uniformly random
            bidder or nobody); half of the set stays random when the deterministic
            ones do not fill it.
        init_scale: standard deviation of the random logits.
        init_sharpness: logit margin of the deterministic starting allocations (5 gives
            about 0.99 for a 0/1 entry).
    """

    name = "lottery-ama"

    def __init__(
        self,
        setting: Setting,
        allocations: int = 1024,
        learn_weights: bool = False,
        init_seed: int = 0,
        init: str = "deterministic",
        init_scale: float = 1.0,
        init_sharpness: float = 5.0,
    ) -> None:
        super().__init__(setting, learn_weights)
        if init not in ("random", "deterministic"):
            raise NotApplicableError(
                f"{self.name}: init must be 'random' or 'deterministic', got {init!r}"
            )
        if allocations < 1:
            raise NotApplicableError(f"{self.name}: allocations must be >= 1")
        self.config_ = {
            "allocations": int(allocations),
            "learn_weights": self.learn_weights,
            "init_seed": int(init_seed),
            "init": init,
            "init_scale": float(init_scale),
            "init_sharpness": float(init_sharpness),
        }
        n, m = setting.shape
        k = int(allocations)
        gen = torch.Generator().manual_seed(init_seed)
        shapes = self._logit_shapes(n, m)
        logits = [torch.randn(k, *shape, generator=gen) * init_scale for shape in shapes]
        if init == "deterministic":
            det = self._starting_deterministic(k, gen)
            for dst, src in zip(logits, self._logits_for(det, init_sharpness)):
                dst[: len(det)] = src
        self.logits = torch.nn.ParameterList([torch.nn.Parameter(t) for t in logits])
        self.boosts = torch.nn.Parameter(torch.zeros(k))
        self.register_buffer("active", torch.ones(k, dtype=torch.bool))

    def config(self) -> dict[str, Any]:
        return dict(self.config_)

    # ---- parameterisation

    def _logit_shapes(self, n: int, m: int) -> list[tuple[int, int]]:
        s = self.setting
        if s.unit_supply and not s.unit_demand:
            return [(n + 1, m)]
        if s.unit_supply:
            return [(n + 1, m), (n, m + 1)]
        if not s.unit_demand:
            return [(n, m)]
        return [(n, m + 1)]

    def allocations(self, index: torch.Tensor | None = None) -> torch.Tensor:
        s = self.setting
        logits = [t if index is None else t[index] for t in self.logits]
        if s.unit_supply and not s.unit_demand:
            return torch.softmax(logits[0], dim=1)[:, :-1]  # per item over bidders+nobody
        if s.unit_supply:
            per_item = F.softplus(logits[0])
            per_item = per_item / per_item.sum(dim=1, keepdim=True)
            per_bidder = F.softplus(logits[1])
            per_bidder = per_bidder / per_bidder.sum(dim=2, keepdim=True)
            return torch.minimum(per_item[:, :-1], per_bidder[..., :-1])
        if not s.unit_demand:
            return torch.sigmoid(logits[0])
        return torch.softmax(logits[0], dim=2)[..., :-1]

    def _logits_for(self, det: torch.Tensor, c: float) -> list[torch.Tensor]:
        """Logits whose allocations are close to the 0/1 allocations ``det`` (D, n, m)."""
        s = self.setting
        if s.unit_supply:
            nobody = 1.0 - det.sum(dim=1, keepdim=True)  # (D, 1, m)
            per_item = (torch.cat([det, nobody], dim=1) * 2 - 1) * c  # (D, n + 1, m)
            if not s.unit_demand:
                return [per_item]
        if s.unit_demand:
            nothing = 1.0 - det.sum(dim=2, keepdim=True)  # (D, n, 1)
            per_bidder = (torch.cat([det, nothing], dim=2) * 2 - 1) * c
            return [per_item, per_bidder] if s.unit_supply else [per_bidder]
        return [(det * 2 - 1) * c]

    def _starting_deterministic(self, k: int, gen: torch.Generator) -> torch.Tensor:
        """The deterministic allocations the first logits start at (D <= k, n, m)."""
        try:
            det = nonempty_deterministic_allocations(self.setting)
            if len(det) <= k:
                return det
        except NotApplicableError:
            pass
        n, m = self.setting.shape
        count = k // 2
        if self.setting.unit_supply:
            owners = torch.randint(0, n + 1, (count, m), generator=gen)
            det = (owners.unsqueeze(1) == torch.arange(n).view(1, n, 1)).float()
        else:
            det = (torch.rand(count, n, m, generator=gen) < 0.5).float()
        if self.setting.unit_demand:  # at most one item each
            first = det.cumsum(dim=2) <= 1
            det = det * first
        return det


class DeterministicAMA(AffineMaximizer):
    """AMA over every feasible deterministic allocation; weights and boosts learned."""

    name = "deterministic-ama"
    fixed_allocations: torch.Tensor

    def __init__(self, setting: Setting, learn_weights: bool = False) -> None:
        super().__init__(setting, learn_weights)
        det = nonempty_deterministic_allocations(setting)
        self.register_buffer("fixed_allocations", det, persistent=False)
        self.boosts = torch.nn.Parameter(torch.zeros(len(det)))
        self.register_buffer("active", torch.ones(len(det), dtype=torch.bool))

    @classmethod
    def applicable(cls, setting: Setting) -> str | None:
        count = count_deterministic_allocations(setting)
        if count > MAX_ENUMERATED_ALLOCATIONS:
            n, m = setting.shape
            return (
                f"{count} deterministic allocations for {n} bidders x {m} items: too "
                f"many to enumerate (limit {MAX_ENUMERATED_ALLOCATIONS}); use lottery-ama"
            )
        return None

    def config(self) -> dict[str, Any]:
        return {"learn_weights": self.learn_weights}

    def allocations(self, index: torch.Tensor | None = None) -> torch.Tensor:
        return self.fixed_allocations if index is None else self.fixed_allocations[index]
