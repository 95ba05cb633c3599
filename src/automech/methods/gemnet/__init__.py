"""GemNet: menu networks trained on revenue plus menu incompatibility, then price-adjusted.

Wang, Jiang and Parkes (2024); survey Section 5.3.  The mechanism is
:class:`~automech.mechanisms.learned.gemnet.GemNetMechanism`, trained on the grid of opponent
cells it will be deployed on.

1. **Start** (``init``): from random weights, or from an affine maximizer's menus
   (:func:`distil`): every AMA is a menu mechanism (``AffineMaximizer.menus``), so GemNet can start
   as a copy of one and move beyond it.  ``auto`` trains the deterministic AMA (its
   defaults, into ``RUN/init-ama``) where it applies -- our choice; the paper starts from
   random weights, which on this CPU budget ends well below the AMA (see the README).
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

from typing import Any

import numpy as np
import torch

from automech.errors import AutomechError
from automech.evaluation import RegretSearch, evaluate
from automech.mechanisms.learned.affine_maximizer import AffineMaximizer, DeterministicAMA
from automech.mechanisms.base import Mechanism
from automech.mechanisms.learned.gemnet import GemNetMechanism
from automech.methods.ama import DeterministicAMAMethod, LotteryAMAMethod
from automech.methods.gemnet.compatibility import (adjust, adjustable, auto_grid,
                                                 cheapest_share_prices)
from automech.problems.setting import Setting
from automech.runs import CHECKPOINT, Run, load
from automech.training.trainer import GradientMethod, schedule

#: Profiles the unadjusted network is scored on before adjustment (revenue, over-allocation).
UNADJUSTED_SAMPLES = 100_000


def incompatibility(alloc: torch.Tensor, util: torch.Tensor, temperature: float) -> torch.Tensor:
    """Menu-incompatibility loss: expected over-allocation ``sum_j max(0, sum_i a_ij - 1)``
    when every bidder draws its entry independently from ``softmax(temperature * u_i)``,
    for menus ``alloc`` (B, n, K+1, m) with utilities ``util`` (B, n, K+1).

    Two bidders: the exact expectation over entry pairs (an average of allocations would
    let near-ties between conflicting entries hide an over-allocation: two bidders each
    half-choosing item 1 average to a feasible 1).  More bidders: the over-allocation of
    the expected allocations (a lower bound)."""
    weights = torch.softmax(temperature * util, dim=-1)                # (B, n, K + 1)
    if alloc.shape[1] != 2:
        expected = (weights.unsqueeze(-1) * alloc).sum(2)
        return (expected.sum(dim=1) - 1).clamp_min(0).sum(dim=-1).mean()
    pair = (alloc[:, 0, :, None, :] + alloc[:, 1, None, :, :] - 1).clamp_min(0).sum(-1)
    return torch.einsum("bk,bkl,bl->b", weights[:, 0], pair, weights[:, 1]).mean()


def distil(mechanism: GemNetMechanism, ama: AffineMaximizer, steps: int, batch_size: int,
           lr: float, rng: np.random.Generator, snap: float = 0.01,
           usage_samples: int = 2**16) -> float:
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
            raise AutomechError(f"the affine maximizer allocates nothing to bidder {i}; "
                                "there is no menu to start from")
        shares = sorted(usage, key=lambda sh: -usage[sh])[:k]
        rows = torch.tensor([shares[d % len(shares)] for d in range(k)], dtype=torch.float64)
        groups.append(rows)
        members.append(torch.stack([(snapped[:, i] == row).all(dim=1)
                                    & torch.isin(torch.arange(len(alloc)), used)
                                    for row in rows]))                  # (K, K')
    with torch.no_grad():
        last_w, last_b = mechanism.weights[-1], mechanism.biases[-1]
        last_w[:, :, :k * width] = 0.0
        for i, rows in enumerate(groups):
            p = rows.clamp(1e-4, 1 - 1e-4)
            if setting.unit_demand:
                rest = (1 - rows.sum(dim=1, keepdim=True)).clamp(1e-4, 1)
                logits = torch.cat([p.log(), rest.log()], dim=1)
            else:
                logits = (p / (1 - p)).log()
            last_b[i, :k * width] = logits.reshape(-1).to(last_b.dtype)
    optimizer = torch.optim.Adam(mechanism.parameters(), lr=lr)
    error = float("nan")
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = schedule("cosine", lr, lr / 30, step, steps)
        values = torch.as_tensor(setting.sample(batch_size, rng), dtype=mechanism.dtype)
        with torch.no_grad():
            _, ama_price = ama.menus(values.double())
            target = torch.stack([cheapest_share_prices(ama_price[:, i], members[i])
                                  for i in range(n)], dim=1).to(values.dtype)  # (B, n, K)
        _, price = mechanism.network_menus(mechanism.opponent_features(values))
        loss = ((price[..., 1:] - target) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            mechanism.weights[-1].grad[:, :, :k * width] = 0.0      # allocations stay fixed
            mechanism.biases[-1].grad[:, :k * width] = 0.0
        optimizer.step()
        error = float(loss.detach().sqrt())
    return error


class GemNet(GradientMethod):
    name = "gemnet"
    defaults = {
        **GradientMethod.defaults,
        "menu_size": 16,          # K entries per menu (plus the null entry)
        "hidden": 64,             # width of each hidden layer
        "layers": 2,              # hidden layers
        "init": "auto",           # "random", an AMA method name, or an AMA run directory
        "init_steps": 1500,       # distillation steps when starting from an AMA
        "init_lr": 3e-3,          # ... and their Adam step size (cosine to 1/30 of it)
        "steps": 1000,            # revenue steps after the start
        "batch_size": 4096,
        "lr": 3e-5,               # small: from an AMA start, larger steps lose revenue
        "lr_final": 3e-6,
        "temperature": 200.0,
        "temperature_final": 1000.0,
        "penalty": 1.0,           # incompatibility weight at step 0
        "penalty_final": 10.0,    # ... and at the last step (geometric schedule)
        "penalty_temperature": 0.0,  # softmax temperature of that term (0: the training one)
        "penalty_batch": 1024,    # profiles of each batch it is computed on (0: all)
        "adjust": True,           # run the MILP price adjustment after training
        "grid": 0,                # cells per coordinate of the other bid (0: automatic)
        "snap": 0.01,             # allocations this close to 0 or 1 are rounded to it
        "validate_every": 250,
    }

    def applicable(self, setting: Setting) -> str | None:
        return GemNetMechanism.applicable(setting)

    def build(self, setting: Setting, options: dict[str, Any], seed: int) -> GemNetMechanism:
        grid = (options["grid"] or auto_grid(setting)) if options["adjust"] else options["grid"]
        return GemNetMechanism(setting, menu_size=options["menu_size"],
                               hidden=(options["hidden"],) * options["layers"], init_seed=seed,
                               grid=grid)

    def loss(self, mechanism: Mechanism, values: torch.Tensor, options: dict[str, Any],
             temperature: float, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        menu_alloc, menu_price, util = mechanism.network_utilities(values)
        alloc, pay = mechanism.soft_choice(menu_alloc, menu_price, util, temperature)
        objective = mechanism.setting.objective.value(values, alloc, pay).mean()
        part = slice(0, options["penalty_batch"] or len(values))
        over = incompatibility(menu_alloc[part], util[part],
                               options["penalty_temperature"] or temperature)
        weight = schedule("exponential", options["penalty"], options["penalty_final"], step,
                          options["steps"])
        return -objective + weight * over, {"train_objective": float(objective.detach()),
                                            "incompatibility": float(over.detach())}

    def initialise(self, mechanism: Mechanism, setting: Setting, options: dict[str, Any],
                   seed: int, run: Run, progress: bool = False) -> None:
        """Start from an affine maximizer's menus (see :func:`distil`) unless ``init`` is
        ``random``.  ``auto``: the deterministic AMA where it applies (it enumerates the
        deterministic allocations, so small settings), else random."""
        init = options["init"]
        if init == "auto":
            init = "random" if DeterministicAMA.applicable(setting) else "deterministic-ama"
        if init == "random":
            return
        from automech.experiment import train      # a method module must not import it at top
        from automech.methods import METHODS
        if init in METHODS:
            if not isinstance(METHODS[init], (LotteryAMAMethod, DeterministicAMAMethod)):
                raise AutomechError(f"GemNet can start from an affine maximizer "
                                    f"(lottery-ama, deterministic-ama), not {init!r}")
            ama, _ = train(setting, init, {}, seed=seed, out=run.path / "init-ama",
                           search=None, eval_samples=10_000, progress=progress)
        else:
            ama = load(init)
            if not isinstance(ama, AffineMaximizer):
                raise AutomechError(f"init run {init!r} holds a {ama.name}, not an affine "
                                    "maximizer")
        error = distil(mechanism, ama.double(), options["init_steps"], options["batch_size"],
                       lr=options["init_lr"], rng=np.random.default_rng([seed, 2]),
                       snap=options["snap"])
        run.write_json("init.json", {"init": init, "price_rmse": error,
                                     "steps": options["init_steps"]})

    @staticmethod
    def validate(mechanism: Mechanism, values: torch.Tensor) -> dict[str, float]:
        """The trainer's validation plus the share of over-allocating profiles."""
        record = GradientMethod.validate(mechanism, values)
        with torch.no_grad():
            alloc, _ = mechanism(values)
            record["val_infeasible"] = float((mechanism.setting.infeasibility(alloc) > 1e-6)
                                             .double().mean())
        return record

    def fit(self, setting: Setting, options: dict[str, Any], seed: int, run: Run,
            progress: bool = False) -> Mechanism:
        problem = adjustable(setting) if options["adjust"] else None
        if problem:                                   # fail before training, not after
            raise AutomechError(problem)
        if (run.path / CHECKPOINT).exists():          # a finished, adjusted run: reuse it
            saved = run.checkpoint()
            if saved.get("config", {}).get("adjusted") and \
                    (saved.get("training_state") or {}).get("finished"):
                return load(run.path)
        network = super().fit(setting, options, seed, run, progress)
        if not options["adjust"]:
            return network
        before = evaluate(network, setting, samples=UNADJUSTED_SAMPLES,
                          search=RegretSearch(profiles=1000))
        run.write_json("unadjusted.json", before.to_dict())
        adjusted, report = adjust(network, grid=options["grid"], snap=options["snap"])
        run.write_json("adjustment.json", report.to_dict())
        return adjusted
