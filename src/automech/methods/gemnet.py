"""GemNet: train menu networks on revenue plus menu incompatibility, then adjust prices.

Wang, Jiang and Parkes (2024); survey Section 5.3.  The mechanism is
:class:`~automech.mechanisms.gemnet.GemNetMechanism`.  Each step minimises, on fresh
profiles and the softmax relaxation of every bidder's choice (weights
``softmax(T u_i)`` over its K + 1 entries, expected allocation ``x_i`` and payment),

    L = - objective(x, p) + lambda_t * sum_j max(0, sum_i x_ij - 1),

the second term being the menu-incompatibility loss: over-allocation when every bidder
picks from its own menu.  ``lambda_t`` grows geometrically from ``penalty`` to
``penalty_final`` (our choice of schedule; the paper tunes a fixed weight per setting),
the temperature from ``temperature`` to ``temperature_final``.

With ``adjust`` (the default) the trained network then goes through the MILP price
adjustment of :mod:`automech.methods.menu_compatibility` on a grid of ``grid`` cells per
coordinate (0: about 400 opponent cells), which returns the certified, exactly feasible
mechanism; its report is written to ``adjustment.json`` in the run directory, and the
network before adjustment is evaluated with the same protocol into ``unadjusted.json``.
"""

from __future__ import annotations

from typing import Any

import torch

from automech.errors import AutomechError
from automech.evaluation import RegretSearch, evaluate
from automech.mechanisms.base import Mechanism
from automech.mechanisms.gemnet import GemNetMechanism
from automech.methods.menu_compatibility import adjust, auto_grid
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


class GemNet(GradientMethod):
    name = "gemnet"
    defaults = {
        **GradientMethod.defaults,
        "menu_size": 32,          # K entries per menu (plus the null entry)
        "hidden": 128,            # width of each hidden layer
        "layers": 2,              # hidden layers
        "steps": 3000,
        "batch_size": 4096,
        "lr": 3e-3,
        "lr_final": 1e-4,
        "temperature": 20.0,
        "temperature_final": 500.0,
        "penalty": 1.0,           # incompatibility weight at step 0
        "penalty_final": 100.0,   # ... and at the last step (geometric schedule)
        "penalty_temperature": 25.0,  # softmax temperature of the incompatibility term
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
        menu_alloc, menu_price = mechanism.network_menus(mechanism.opponent_features(values))
        util = (values.unsqueeze(2) * menu_alloc).sum(-1) - menu_price
        weights = torch.softmax(temperature * util, dim=-1)
        alloc = (weights.unsqueeze(-1) * menu_alloc).sum(2)
        objective = mechanism.setting.objective.value(values, alloc, (weights * menu_price)
                                                      .sum(-1)).mean()
        part = slice(0, options["penalty_batch"] or len(values))
        over = incompatibility(menu_alloc[part], util[part],
                               options["penalty_temperature"] or temperature)
        weight = schedule("exponential", options["penalty"], options["penalty_final"], step,
                          options["steps"])
        return -objective + weight * over, {"train_objective": float(objective.detach()),
                                            "incompatibility": float(over.detach())}

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
        if options["adjust"] and setting.num_bidders != 2:
            raise AutomechError(f"GemNet's price adjustment is implemented for two bidders; "
                                f"this setting has {setting.num_bidders} (use --set "
                                "adjust=false to train the network alone)")
        if (run.path / CHECKPOINT).exists():          # a finished, adjusted run: reuse it
            saved = run.checkpoint()
            if saved.get("config", {}).get("grid") and \
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
