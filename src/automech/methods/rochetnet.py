"""RochetNet / MenuNet: learn a single bidder's menu by gradient ascent on revenue.

Duetting et al. (2019), Section 3.2; Shen, Tang and Zuo (2019).  The menu
(:class:`~automech.mechanisms.learned.menu.MenuMechanism`) is exactly DSIC and IR for any
parameters; training maximises the objective of its softmax relaxation, with the
temperature raised over training so the relaxation approaches the argmax.

On a finite prior the relaxation leaves every price about ``unit * log(K) / T`` below the
value of the types it serves (the softmax needs a margin to put its weight on an entry),
which the exact menu then gives away. :func:`polish_prices` takes it back: with the
trained allocations and each type's chosen entry fixed, the prices that maximise expected
revenue subject to every type still strictly preferring its entry (by :data:`MARGIN`
value units) and IR form a small LP (HiGHS), whose solution is again a menu: exactly DSIC
and IR, and at least as good as the trained prices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import linprog

from automech.mechanisms.learned.menu import MenuMechanism
from automech.problems.finite_types import enumerate_support
from automech.problems.setting import Setting
from automech.training import FitContext, GradientMethod, SoftmaxOptions, TrainerOptions, option

#: Strict preference, in value units, that polished prices leave each type for its entry
#: over every other (and over the null entry): above float32 rounding of the utilities, so
#: the exact argmax picks the entry the LP priced.
MARGIN = 1e-5
#: Additive entries' allocations this close to 0 or 1 are snapped to it before the LP
#: (a sigmoid never reaches 1: the grand bundle as 0.9998 of each item is worth less).
SNAP = 1e-3
#: Logit whose sigmoid is 0 or 1 in float32.
SNAPPED_LOGIT = 30.0
#: Largest (types x entries) LP the polish builds.
MAX_POLISH_ROWS = 2_000_000


def polish_prices(mech: MenuMechanism, types: np.ndarray, probs: np.ndarray) -> float | None:
    """Re-price ``mech``'s entries by the LP of the module docstring on the finite prior's
    ``types`` (T, 1, m) with probabilities ``probs`` (T,), in place, after snapping
    additive allocations within :data:`SNAP` of 0 or 1.  Returns the expected revenue
    gained over the snapped menu at its trained prices, or None when the LP is too large
    or infeasible (a type nearly indifferent between entries) and the prices are kept."""
    with torch.no_grad():
        if not mech.setting.unit_demand:
            frac = torch.sigmoid(mech.logits)
            mech.logits[frac > 1 - SNAP] = SNAPPED_LOGIT
            mech.logits[frac < SNAP] = -SNAPPED_LOGIT
        alloc, prices = mech.entries()
    a = alloc[1:].double().cpu().numpy()  # (K, m), null entry dropped
    k = len(a)
    v = types[:, 0].astype(np.float64) @ a.T  # (T, K): each type's value of each entry
    t = len(v)
    if t * k > MAX_POLISH_ROWS:
        return None
    current = prices[1:].double().cpu().numpy()
    util = v - current
    choice = np.where(util.max(axis=1) > 0, util.argmax(axis=1), -1)  # -1: the null entry
    delta = MARGIN * mech.price_scale
    rows, cols, vals, rhs = [], [], [], []
    r = 0
    for s in range(t):  # a loop over types (T small: a finite prior) builds the rows
        c = int(choice[s])
        for j in range(k):
            if c < 0:  # v_sj - p_j <= -delta
                rows += [r]
                cols += [j]
                vals += [-1.0]
                rhs.append(-v[s, j] - delta)
            elif j == c:  # IR: v_sc - p_c >= delta
                rows += [r]
                cols += [c]
                vals += [1.0]
                rhs.append(v[s, c] - delta)
            else:  # v_sc - p_c >= v_sj - p_j + delta
                rows += [r, r]
                cols += [c, j]
                vals += [1.0, -1.0]
                rhs.append(v[s, c] - v[s, j] - delta)
            r += 1
    gain = np.zeros(k)
    np.add.at(gain, choice[choice >= 0], probs[choice >= 0])
    cap = v.max(axis=0) + mech.price_scale  # an entry nobody takes is priced out of reach
    res = linprog(
        -gain,
        A_ub=sp.csr_matrix((vals, (rows, cols)), shape=(r, k)),
        b_ub=np.asarray(rhs),
        bounds=list(zip(np.minimum(current, cap) - cap - mech.price_scale, cap)),
        method="highs",
    )
    if res.status != 0 or float(-res.fun) < float(gain @ current):
        return None
    with torch.no_grad():
        floor = alloc[1:].double() @ torch.as_tensor(mech.setting.value_floor)
        unit = (torch.as_tensor(res.x) - floor) / mech.price_scale
        mech.unit_prices.copy_(unit.to(mech.unit_prices.dtype))
    return float(-res.fun) - float(gain @ current)


@dataclass(frozen=True)
class RochetNetOptions(TrainerOptions, SoftmaxOptions):
    """RochetNet's options.  The defaults are measured on 1x2-uniform
    (``bench/rochetnet.py``; ``docs/results.md``): the batch matters more than the menu
    or the step count."""

    method = "rochetnet"
    menu_size: int = option(64, "menu entries besides the null entry", low=1)
    steps: int = 500
    batch_size: int = 16384
    lr: float = 0.05
    lr_final: float = 0.002
    temperature: float = 20.0
    temperature_final: float = 1000.0
    validate_every: int = 100
    checkpoint_every: int = 250


class RochetNet(GradientMethod):
    """RochetNet / MenuNet: a single bidder's menu of lotteries (Duetting et al. 2019, 3.2)."""

    name = "rochetnet"
    Options = RochetNetOptions
    mechanism = MenuMechanism

    def applicable(self, setting: Setting) -> str | None:
        return MenuMechanism.applicable(setting)

    def build(self, ctx: FitContext) -> MenuMechanism:
        return MenuMechanism(ctx.setting, menu_size=ctx.options.menu_size, init_seed=ctx.seed)

    def fit(self, ctx: FitContext) -> MenuMechanism:
        """The shared loop, then, on a finite prior, :func:`polish_prices`."""
        mech = super().fit(ctx)
        assert isinstance(mech, MenuMechanism)
        support = enumerate_support(ctx.setting.prior, limit=MAX_POLISH_ROWS)
        if support is not None:
            gained = polish_prices(mech, *support)
            ctx.run.log({"price_polish_gain": gained})
        return mech
