"""ALGNet: the auctioneer trained against a misreporter network (a two-player game).

Rahme, Jelassi and Weinberg, "Auction Learning as a Two-Player Game" (ICLR 2021),
Sections 3-4. The auctioneer is the RegretNet architecture
(:class:`~automech.mechanisms.learned.regretnet.ALGNetMechanism`: feasible and IR by
construction). The misreporter is a network M_phi mapping a profile v (n x m) to one
misreport per bidder, ``M_phi(v)_i = low + (high - low) * sigmoid(.)`` in the support box.

Each training step, on a batch of fresh prior profiles:

1. the misreporter takes ``misreporter_steps`` Adam steps on
   ``-(1/B) sum_b sum_i u_i(v_i; (M_phi(v)_i, v_-i))`` (the auctioneer frozen);
2. the auctioneer takes one Adam step on the hyperparameter-free loss

       L(w) = -( sqrt(P) - sqrt(R) ) + R,

   with ``P = (1/B) sum_b sum_i p_i(v)`` the revenue and
   ``R = (1/B) sum_b sum_i max(0, u_i(v_i; (M_phi(v)_i, v_-i)) - u_i(v_i; v))`` the total
   regret against the misreporter's reports (Section 3.1: a mechanism with revenue P and
   regret R can be turned into one with revenue about (sqrt P - sqrt R)^2 and no regret;
   the extra R term makes training reach near-zero regret more reliably);
3. every ``reset_every`` steps the misreporter is re-initialised (and its optimiser),
   so that it does not stay stuck in a poor local optimum the auctioneer has learnt to
   beat.

``refine_steps`` > 0 (not in the paper) refines the misreporter's reports by that many
projected Adam steps on the misreports themselves (the RegretNet attacker) before
the regret R is computed: the paper's misreporter alone underestimates regret, and the
shared evaluation protocol measures what remains.

The misreporter, its optimiser and counters live on the mechanism during training (not
in its ``state_dict``) and go into checkpoints through the trainer's ``training_state``
hook. Regret of the result is always measured by the shared protocol
(:mod:`automech.evaluation`), never by this misreporter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from automech.mechanisms.base import Mechanism
from automech.mechanisms.learned.regretnet import ALGNetMechanism, misreport_utilities, mlp
from automech.methods.regretnet import ascend, box, frozen, regrets
from automech.problems.setting import Setting
from automech.training.trainer import GradientMethod

STATE_ATTR = "_algnet_training"


class Misreporter(torch.nn.Module):
    """Profile (B, n, m) -> one misreport per bidder (B, n, m) inside the support box."""

    def __init__(self, setting: Setting, hidden: int, layers: int) -> None:
        super().__init__()
        n, m = setting.shape
        self.net = mlp(n * m, n * m, hidden, layers)
        low, high = setting.prior.support()
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        b, n, m = values.shape
        width = (self.high - self.low).to(values.dtype)
        x = ((values - self.low) / width.clamp_min(1e-12)).reshape(b, n * m)
        return self.low + width * torch.sigmoid(self.net(x).view(b, n, m))


@dataclass
class ALGNetTrainingState:
    misreporter: Misreporter
    optimizer: torch.optim.Optimizer
    seed: int
    resets: int = 0
    step: int = 0
    updates: int = 0          # misreporter updates made (0: untrained, e.g. after a reload)


class ALGNet(GradientMethod):
    """ALGNet: auctioneer vs misreporter network, loss -(sqrt P - sqrt R) + R."""

    name = "algnet"
    defaults = {
        **GradientMethod.defaults,
        "hidden": 100,               # auctioneer units per hidden layer
        "layers": 2,                 # auctioneer hidden layers
        "misreporter_hidden": 100,
        "misreporter_layers": 2,
        "misreporter_lr": 1e-3,
        "misreporter_steps": 5,      # misreporter Adam steps per auctioneer step
        "reset_every": 1_000,        # steps between misreporter re-initialisations (0: never)
        "refine_steps": 10,          # Adam steps on the reports themselves (0: the paper)
        "refine_lr": 0.05,           # their step size, times the support width
        "steps": 4_000,
        "batch_size": 256,
        "lr": 2e-3,
        "lr_final": 1e-4,
        "lr_schedule": "cosine",
        "validate_every": 500,
        "checkpoint_every": 500,
        "log_every": 50,
    }

    def applicable(self, setting: Setting) -> str | None:
        return ALGNetMechanism.applicable(setting)

    def build(self, setting: Setting, options: dict[str, Any], seed: int) -> ALGNetMechanism:
        mech = ALGNetMechanism(setting, hidden=options["hidden"], layers=options["layers"],
                               init_seed=seed)
        object.__setattr__(mech, STATE_ATTR, self._fresh(setting, options, seed, resets=0))
        return mech

    def _fresh(self, setting, options, seed, resets) -> ALGNetTrainingState:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1_000_003 + 7919 * (resets + 1))
            net = Misreporter(setting, options["misreporter_hidden"],
                              options["misreporter_layers"])
        opt = torch.optim.Adam(net.parameters(), lr=options["misreporter_lr"])
        return ALGNetTrainingState(net, opt, seed=seed, resets=resets)

    @staticmethod
    def state(mechanism: Mechanism) -> ALGNetTrainingState:
        return getattr(mechanism, STATE_ATTR)

    def misreports(self, mechanism: Mechanism, values: torch.Tensor,
                   options: dict[str, Any]) -> torch.Tensor:
        """Train the misreporter on ``values`` and return its (refined) reports."""
        state = self.state(mechanism)
        net = state.misreporter.to(values.device)
        with frozen(mechanism):
            for _ in range(options["misreporter_steps"]):
                gain = misreport_utilities(mechanism, values, net(values)).sum(dim=1).mean()
                state.optimizer.zero_grad(set_to_none=True)
                (-gain).backward()
                state.optimizer.step()
                state.updates += 1
        with torch.no_grad():
            reports = net(values)
        if options["refine_steps"]:
            reports = ascend(mechanism, values, reports, options["refine_steps"],
                             options["refine_lr"])
        low, high = box(mechanism.setting, values)
        return torch.minimum(torch.maximum(reports, low), high)

    def loss(self, mechanism, values, options, temperature, step):
        state = self.state(mechanism)
        state.step = step
        if options["reset_every"] and step // options["reset_every"] > state.resets:
            fresh = self._fresh(mechanism.setting, options, state.seed,
                                step // options["reset_every"])
            object.__setattr__(mechanism, STATE_ATTR, fresh)
            state = fresh
            state.step = step
        reports = self.misreports(mechanism, values, options)
        rgt, pay = regrets(mechanism, values, reports)                 # (B, n)
        revenue = pay.sum(dim=-1).mean()
        regret = rgt.sum(dim=-1).mean()
        loss = -(revenue.clamp_min(1e-12).sqrt() - regret.clamp_min(1e-12).sqrt()) + regret
        return loss, {"train_revenue": float(revenue.detach()),
                      "train_regret": float(regret.detach()) / mechanism.setting.num_bidders,
                      "misreporter_resets": state.resets}

    def training_state(self, mechanism) -> dict[str, Any]:
        state = self.state(mechanism)
        return {"misreporter": state.misreporter.state_dict(),
                "optimizer": state.optimizer.state_dict(), "resets": state.resets,
                "step": state.step, "updates": state.updates}

    def load_training_state(self, mechanism, saved) -> None:
        state = self.state(mechanism)
        state.misreporter.load_state_dict(saved["misreporter"])
        state.optimizer.load_state_dict(saved["optimizer"])
        state.resets, state.step = int(saved["resets"]), int(saved["step"])
        state.updates = int(saved.get("updates", 0))


def misreporter_regret(mechanism: Mechanism, values: torch.Tensor, refine_steps: int = 0,
                       refine_lr: float = 0.05) -> torch.Tensor | None:
    """Regret (P, n) against the training misreporter left on ``mechanism``, its reports
    refined by ``refine_steps`` Adam steps as in training; None when the mechanism carries
    no trained misreporter (e.g. after :func:`automech.load` or a reused finished run)."""
    state = getattr(mechanism, STATE_ATTR, None)
    if state is None or state.updates == 0:
        return None
    with torch.no_grad():
        reports = state.misreporter.to(values.device)(values)
    if refine_steps:
        reports = ascend(mechanism, values, reports, refine_steps, refine_lr)
    with torch.no_grad():
        return regrets(mechanism, values, reports)[0]
