"""GemNet: menu networks trained on revenue plus menu incompatibility, then price-adjusted.

Wang, Jiang and Parkes (2024); survey Section 5.3.  The mechanism is
:class:`~automech.mechanisms.learned.gemnet.GemNetMechanism`, trained on the grid of opponent
cells it will be deployed on.

1. **Start** (``init``): from random weights, or from an affine maximizer's menus
   (:func:`distil`): every AMA is a menu mechanism (``AffineMaximizer.menus``), so GemNet can start
   as a copy of one and move beyond it.  ``init`` names an AMA method (trained with its
   defaults into ``RUN/init-ama``) or an AMA run directory; ``auto`` trains the
   deterministic AMA where it applies (our choice; the paper starts from random weights).
2. **Training**: each step minimises, on fresh profiles and the softmax relaxation of every
   bidder's choice (weights ``softmax(T u_i)`` over its K + 1 entries),

       L = - objective(x, p) + lambda_t * E[ sum_j max(0, sum_i a_ij - 1) ],

   the menu-incompatibility loss being the expected over-allocation when the bidders
   draw their entries independently from those weights (:func:`incompatibility`).
   ``lambda_t`` grows geometrically from ``penalty`` to ``penalty_final`` (our schedule;
   the paper tunes a fixed weight per setting), ``T`` from ``temperature`` to
   ``temperature_final``.
3. **Adjustment** (``adjust``, the default): the MILP price adjustment of
   :mod:`automech.methods.gemnet.compatibility` on ``grid`` cells per coordinate (0: about
   1,600 opponent cells) returns the certified, exactly feasible mechanism.  Its report
   goes to ``adjustment.json`` in the run directory; the network before adjustment is
   scored with the same protocol into ``unadjusted.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from automech.errors import AutomechError, OptionError
from automech.evaluation import RegretSearch, evaluate
from automech.mechanisms.base import Mechanism
from automech.mechanisms.learned.affine_maximizer import (
    AffineMaximizer,
    DeterministicAMA,
    LotteryAMA,
)
from automech.mechanisms.learned.gemnet import GemNetMechanism
from automech.methods.gemnet.compatibility import (
    adjust,
    adjustable,
    auto_grid,
    cheapest_share_prices,
)
from automech.problems.setting import Setting
from automech.runs import CHECKPOINT, rebuild
from automech.training import (
    FitContext,
    GradientMethod,
    SoftmaxOptions,
    TrainerOptions,
    option,
    schedule,
)

#: Profiles the unadjusted network is scored on before adjustment (revenue, over-allocation).
UNADJUSTED_SAMPLES = 100_000

#: The affine maximizer methods GemNet can start from, and their mechanisms.
AMA_METHODS = ("lottery-ama", "deterministic-ama")
AMA_MECHANISMS: dict[str, type[AffineMaximizer]] = {
    LotteryAMA.name: LotteryAMA,
    DeterministicAMA.name: DeterministicAMA,
}


def incompatibility(alloc: torch.Tensor, util: torch.Tensor, temperature: float) -> torch.Tensor:
    """Menu-incompatibility loss: expected over-allocation ``sum_j max(0, sum_i a_ij - 1)``
    when every bidder draws its entry independently from ``softmax(temperature * u_i)``,
    for menus ``alloc`` (B, n, K+1, m) with utilities ``util`` (B, n, K+1).

    Two bidders: the exact expectation over entry pairs (an average of allocations would
    let near-ties between conflicting entries hide an over-allocation: two bidders each
    half-choosing item 1 average to a feasible 1).  More bidders: the over-allocation of
    the expected allocations (a lower bound)."""
    weights = torch.softmax(temperature * util, dim=-1)  # (B, n, K + 1)
    if alloc.shape[1] != 2:
        expected = (weights.unsqueeze(-1) * alloc).sum(2)
        return (expected.sum(dim=1) - 1).clamp_min(0).sum(dim=-1).mean()
    pair = (alloc[:, 0, :, None, :] + alloc[:, 1, None, :, :] - 1).clamp_min(0).sum(-1)
    return torch.einsum("bk,bkl,bl->b", weights[:, 0], pair, weights[:, 1]).mean()


def distil(
    mechanism: GemNetMechanism,
    ama: AffineMaximizer,
    steps: int,
    batch_size: int,
    lr: float,
    rng: np.random.Generator,
    snap: float = 0.01,
    usage_samples: int = 2**16,
) -> float:
    """Make ``mechanism``'s menus those of ``ama``.  The AMA allocations chosen on
    ``usage_samples`` prior draws give each bidder its distinct shares (within ``snap`` of
    0 or 1 rounded; the most used first, at most ``menu_size``); entry d of bidder i's menu
    gets the d-th share (fixed, through the last layer's bias) and its price is regressed
    on the cheapest AMA price among allocations giving that share, over fresh prior draws
    of ``v_-i`` (Adam on the mean squared error, step size ``lr`` decaying to ``lr / 30``
    on a cosine).  Returns the final root-mean-square
    price error.  GemNet then starts as (a close copy of) the AMA."""
    setting = mechanism.setting
    n, m = setting.shape
    k, width = mechanism.menu_size, mechanism.width
    alloc, _, _ = ama.table()
    probe = torch.as_tensor(setting.sample(usage_samples, rng), dtype=torch.float64)
    with torch.no_grad():
        choice = ama.choices(probe)
    used, counts = torch.unique(choice, return_counts=True)
    snapped = alloc.detach().double().clone()
    snapped[snapped < snap] = 0.0
    snapped[snapped > 1 - snap] = 1.0
    snapped = snapped.round(decimals=6)
    groups, members = [], []
    for i in range(n):
        usage: dict[tuple[float, ...], int] = {}
        for a, c in zip(used.tolist(), counts.tolist()):
            share = tuple(snapped[a, i].tolist())
            if any(share):
                usage[share] = usage.get(share, 0) + c
        if not usage:
            raise AutomechError(
                f"the affine maximizer allocates nothing to bidder {i}; "
                "there is no menu to start from"
            )
        shares = sorted(usage, key=lambda sh: -usage[sh])[:k]
        rows = torch.tensor([shares[d % len(shares)] for d in range(k)], dtype=torch.float64)
        groups.append(rows)
        members.append(
            torch.stack(
                [
                    (snapped[:, i] == row).all(dim=1) & torch.isin(torch.arange(len(alloc)), used)
                    for row in rows
                ]
            )
        )  # (K, K')
    with torch.no_grad():
        last_w, last_b = mechanism.weights[-1], mechanism.biases[-1]
        last_w[:, :, : k * width] = 0.0
        for i, rows in enumerate(groups):
            p = rows.clamp(1e-4, 1 - 1e-4)
            if setting.unit_demand:
                rest = (1 - rows.sum(dim=1, keepdim=True)).clamp(1e-4, 1)
                logits = torch.cat([p.log(), rest.log()], dim=1)
            else:
                logits = (p / (1 - p)).log()
            last_b[i, : k * width] = logits.reshape(-1).to(last_b.dtype)
    optimizer = torch.optim.Adam(mechanism.parameters(), lr=lr)
    error = float("nan")
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = schedule("cosine", lr, lr / 30, step, steps)
        values = torch.as_tensor(setting.sample(batch_size, rng), dtype=mechanism.dtype)
        with torch.no_grad():
            _, ama_price = ama.menus(values.double())
            target = torch.stack(
                [cheapest_share_prices(ama_price[:, i], members[i]) for i in range(n)], dim=1
            ).to(values.dtype)  # (B, n, K)
        _, price = mechanism.network_menus(mechanism.opponent_features(values))
        loss = ((price[..., 1:] - target) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            mechanism.weights[-1].grad[:, :, : k * width] = 0.0  # allocations stay fixed
            mechanism.biases[-1].grad[:, : k * width] = 0.0
        optimizer.step()
        error = float(loss.detach().sqrt())
    return error


@dataclass(frozen=True)
class GemNetOptions(TrainerOptions, SoftmaxOptions):
    """GemNet's options.  The step size is small because from an AMA start larger steps
    lose revenue (``docs/results.md``)."""

    method = "gemnet"
    menu_size: int = option(16, "K: entries per menu (plus the null entry)", low=1)
    hidden: int = option(64, "width of each hidden layer", low=1)
    layers: int = option(2, "hidden layers", low=0)
    init: Literal["auto", "random", "lottery-ama", "deterministic-ama"] | str = option(
        "auto",
        "start: random weights, an AMA method (trained with its defaults into "
        "RUN/init-ama), an AMA run directory, or auto (deterministic-ama where it "
        "applies, else random)",
    )
    init_steps: int = option(1500, "distillation steps when starting from an AMA", low=0)
    init_lr: float = option(
        3e-3, "... and their Adam step size (cosine to 1/30 of it)", low=0, low_open=True
    )
    penalty: float = option(
        1.0,
        "incompatibility weight at step 0 (0 with penalty_final 0: no incompatibility term)",
        low=0,
    )
    penalty_final: float = option(10.0, "... and at the last step (geometric schedule)", low=0)
    penalty_temperature: float = option(
        0.0, "softmax temperature of that term (0: the training one)", low=0
    )
    penalty_batch: int = option(
        1024,
        "profiles of each batch it is computed on (0: all; "
        "with chunk_size, the same share of each chunk)",
        low=0,
    )
    adjust: bool = option(True, "run the MILP price adjustment after training")
    grid: int = option(0, "cells per coordinate of the other bid (0: automatic)", low=0)
    snap: float = option(
        0.01, "allocations this close to 0 or 1 are rounded to it", low=0, high=0.5, high_open=True
    )
    steps: int = 1000  # revenue steps after the start
    batch_size: int = 4096
    lr: float = 3e-5
    lr_final: float = 3e-6
    temperature: float = 200.0
    temperature_final: float = 1000.0
    validate_every: int = 250

    def validate(self) -> None:
        if (self.penalty == 0) != (self.penalty_final == 0):
            raise OptionError(
                "gemnet: options 'penalty' and 'penalty_final' must both be "
                "0 (no incompatibility term) or both > 0 (a geometric "
                f"schedule), got {self.penalty} and {self.penalty_final}"
            )
        if not self.init:
            raise OptionError("gemnet: option 'init' must not be empty")


def _ama_class(name: str, method: str | None) -> type[AffineMaximizer]:
    """The lookup of :func:`automech.runs.rebuild` for an AMA start."""
    if name not in AMA_MECHANISMS:
        raise AutomechError(
            f"GemNet can start from an affine maximizer, but the init run "
            f"holds a {name!r} mechanism"
        )
    return AMA_MECHANISMS[name]


def _gemnet_class(name: str, method: str | None) -> type[GemNetMechanism] | None:
    return GemNetMechanism if name == GemNetMechanism.name else None


class GemNet(GradientMethod):
    """GemNet: menu networks, menu-incompatibility loss, MILP price adjustment (5.3)."""

    name = "gemnet"
    Options = GemNetOptions
    mechanism = GemNetMechanism

    def applicable(self, setting: Setting) -> str | None:
        return GemNetMechanism.applicable(setting)

    def build(self, ctx: FitContext) -> GemNetMechanism:
        o = ctx.options
        grid = (o.grid or auto_grid(ctx.setting)) if o.adjust else o.grid
        return GemNetMechanism(
            ctx.setting,
            menu_size=o.menu_size,
            hidden=(o.hidden,) * o.layers,
            init_seed=ctx.seed,
            grid=grid,
        )

    def loss(
        self, mechanism: Mechanism, values: torch.Tensor, ctx: FitContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Minus the relaxed objective plus the scheduled incompatibility penalty, the
        latter on the first ``penalty_batch`` profiles (the same share of a chunk)."""
        assert isinstance(mechanism, GemNetMechanism)
        o = ctx.options
        menu_alloc, menu_price, util = mechanism.network_utilities(values)
        # utilities and the objective in the values' unit: the temperatures and the
        # penalty weight (a probability) mean the same in any currency
        util = util / mechanism.unit
        alloc, pay = mechanism.soft_choice(menu_alloc, menu_price, util, ctx.temperature)
        objective = ctx.setting.objective.value(values, alloc, pay).mean() / mechanism.unit
        rows = len(values)
        if o.penalty_batch:
            rows = min(rows, -(-o.penalty_batch * len(values) // o.batch_size))  # ceil
        over = incompatibility(
            menu_alloc[:rows], util[:rows], o.penalty_temperature or ctx.temperature
        )
        weight = (
            schedule("exponential", o.penalty, o.penalty_final, ctx.step, o.steps)
            if o.penalty
            else 0.0
        )
        return -objective + weight * over, {
            "train_objective": float(objective.detach()) * mechanism.unit,
            "incompatibility": float(over.detach()),
        }

    def initialise(self, mechanism: Mechanism, ctx: FitContext) -> None:
        """Start from an affine maximizer's menus (see :func:`distil`) unless ``init`` is
        ``random``."""
        assert isinstance(mechanism, GemNetMechanism)
        init = self._init(ctx.setting, ctx.options.init)
        if init == "random":
            return
        ama = (
            ctx.fit_nested(init, {}, "init-ama")
            if init in AMA_METHODS
            else rebuild(init, _ama_class)
        )
        assert isinstance(ama, AffineMaximizer)
        o = ctx.options
        error = distil(
            mechanism,
            ama.double(),
            o.init_steps,
            o.batch_size,
            lr=o.init_lr,
            rng=np.random.default_rng([ctx.seed, 2]),
            snap=o.snap,
        )
        ctx.run.write_json("init.json", {"init": init, "price_rmse": error, "steps": o.init_steps})

    @staticmethod
    def _init(setting: Setting, init: str) -> str:
        """``init`` made concrete: "random", an AMA method name or an AMA run directory.
        ``auto``: the deterministic AMA where it applies (it enumerates the deterministic
        allocations, so small settings), else random."""
        if init == "auto":
            return "random" if DeterministicAMA.applicable(setting) else "deterministic-ama"
        if init == "random" or init in AMA_METHODS:
            return init
        if not (Path(init) / CHECKPOINT).is_file():
            raise AutomechError(
                f"GemNet can start from random weights or an affine "
                f"maximizer ({', '.join(AMA_METHODS)}, or the run directory "
                f"of one), not {init!r}"
            )
        return init

    def conflict(self, setting: Setting, options: GemNetOptions) -> str | None:
        return adjustable(setting) if options.adjust else None

    def validate(self, mechanism: Mechanism, values: torch.Tensor) -> dict[str, float]:
        """The trainer's validation plus the share of over-allocating profiles."""
        record = super().validate(mechanism, values)
        with torch.no_grad():
            alloc, _ = mechanism(values)
            record["val_infeasible"] = float(
                (mechanism.setting.infeasibility(alloc) > 1e-6).double().mean()
            )
        return record

    def fit(self, ctx: FitContext) -> Mechanism:
        o, run = ctx.options, ctx.run
        problem = adjustable(ctx.setting) if o.adjust else None
        if problem:  # fail before training, not after
            raise AutomechError(problem)
        if (run.path / CHECKPOINT).exists():  # a finished, adjusted run: reuse it
            saved = run.checkpoint()
            if saved.get("config", {}).get("adjusted") and (saved.get("training_state") or {}).get(
                "finished"
            ):
                reused = rebuild(run.path, _gemnet_class)
                assert isinstance(reused, GemNetMechanism)
                return reused
        else:  # a fresh run: a bad start fails now
            self._init(ctx.setting, o.init)
        network = super().fit(ctx)
        if not o.adjust:
            return network
        assert isinstance(network, GemNetMechanism)
        before = evaluate(
            network, ctx.setting, samples=UNADJUSTED_SAMPLES, search=RegretSearch(profiles=1000)
        )
        run.write_json("unadjusted.json", before.to_dict())
        adjusted, report = adjust(network, grid=o.grid, snap=o.snap)
        run.write_json("adjustment.json", report.to_dict())
        return adjusted
