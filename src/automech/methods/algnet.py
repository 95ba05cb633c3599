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

       L(w) = -( sqrt(P) - sqrt(R) ) + R,     (P and R in the values' unit)

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

``chunk_size`` (profiles per forward/backward) gives the same step as the whole batch,
up to float rounding: :meth:`ALGNet.step` trains the misreporter with its gradients
accumulated over the chunks (its objective is a mean over profiles), computes the
(refined) reports chunk by chunk (they are per profile) and keeps them as the step's pool
(``sample`` returns the batch's rows); ``L`` is not a mean over profiles, so a chunk's
loss is ``L`` linearised at the batch's P and R (computed without gradient between the
passes), whose chunk-weighted sum has the value and the gradient of ``L``.

The misreporter, its optimiser and counters are the run state (:class:`ALGNetTrainingState`,
``ctx.state``; a re-initialisation replaces it) and go into checkpoints through the
``training_state`` hook.  At the end of a fit the final misreporter is written to
``misreporter.pt`` in the run directory (:func:`load_misreporter`), for
:func:`misreporter_regret`.  Regret of the result is always measured by the shared
protocol (:mod:`automech.evaluation`), never by this misreporter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from automech.errors import AutomechError
from automech.mechanisms.base import Mechanism
from automech.mechanisms.learned.regretnet import ALGNetMechanism, misreport_utilities, mlp
from automech.methods.regretnet import (
    activation_option,
    allocation_option,
    ascend,
    attack_ascent,
    box,
    build_networks,
    chunks,
    compile_option,
    compiles,
    frozen,
    regrets,
    train_regrets,
)
from automech.problems.setting import Setting
from automech.runs import read_data
from automech.training import FitContext, GradientMethod, TrainerOptions, option

#: The final misreporter of a fit, in its run directory.
MISREPORTER = "misreporter.pt"
#: Floor of P and R under the square roots (as in the loss).
FLOOR = 1e-12


class Misreporter(torch.nn.Module):
    """Profile (B, n, m) -> one misreport per bidder (B, n, m) inside the support box."""

    low: torch.Tensor
    high: torch.Tensor

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


@dataclass(frozen=True)
class ALGNetOptions(TrainerOptions):
    """ALGNet's options."""

    method = "algnet"
    hidden: int = option(100, "auctioneer units per hidden layer", low=1)
    layers: int = option(2, "auctioneer hidden layers", low=1)
    activation: Literal["tanh", "relu"] = activation_option()
    allocation: Literal["softmax", "sparsemax"] = allocation_option()
    compile: Literal["auto", "on", "off"] = compile_option()
    misreporter_hidden: int = option(100, "misreporter units per hidden layer", low=1)
    misreporter_layers: int = option(2, "misreporter hidden layers", low=1)
    misreporter_lr: float = option(1e-3, "misreporter Adam step size", low=0, low_open=True)
    misreporter_steps: int = option(5, "misreporter Adam steps per auctioneer step", low=0)
    reset_every: int = option(
        1_000, "steps between misreporter re-initialisations (0: never)", low=0
    )
    refine_steps: int = option(10, "Adam steps on the reports themselves (0: the paper)", low=0)
    refine_lr: float = option(
        0.05, "their step size, times the support width", low=0, low_open=True
    )
    steps: int = 4_000
    #: no stopping rule: the validated revenue ignores regret (see RegretNetOptions)
    patience: int = 0
    batch_size: int = 256
    lr: float = 2e-3
    lr_final: float = 1e-4
    validate_every: int = 500
    checkpoint_every: int = 500
    log_every: int = 50


@dataclass
class ALGNetTrainingState:
    """ALGNet's run state (``ctx.state``)."""

    misreporter: Misreporter
    optimizer: torch.optim.Optimizer
    seed: int
    resets: int = 0
    step: int = 0
    updates: int = 0  # misreporter updates made (0: untrained)
    #: the step's (refined) reports, (B, n, m): the pool ``ctx.indices`` index
    reports: torch.Tensor | None = None
    #: (P, R) of the whole batch when the step is chunked (None: one chunk)
    totals: tuple[float, float] | None = None
    compiled: bool = False  # the refinement and the loss run compiled (compiled_or_eager)
    compile_proven: set[str] = field(default_factory=set)  # compiled calls that succeeded

    def to_dict(self) -> dict[str, Any]:
        return {
            "misreporter": self.misreporter.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "resets": self.resets,
            "step": self.step,
            "updates": self.updates,
        }

    def load(self, saved: dict[str, Any]) -> None:
        self.misreporter.load_state_dict(saved["misreporter"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.resets, self.step = int(saved["resets"]), int(saved["step"])
        self.updates = int(saved.get("updates", 0))


def fresh_misreporter(
    setting: Setting,
    hidden: int,
    layers: int,
    lr: float,
    seed: int,
    resets: int,
    device: Any = None,
) -> ALGNetTrainingState:
    """The misreporter (seeded by the run seed and the reset count) and its optimiser."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 1_000_003 + 7919 * (resets + 1))
        net = Misreporter(setting, hidden, layers)
    net = net.to(device) if device is not None else net
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    return ALGNetTrainingState(net, opt, seed=seed, resets=resets)


def _weights(total: int, chunk_size: int) -> list[tuple[slice, float]]:
    return [(p, (min(p.stop, total) - p.start) / total) for p in chunks(total, chunk_size)]


class ALGNet(GradientMethod):
    """ALGNet: auctioneer vs misreporter network, loss -(sqrt P - sqrt R) + R."""

    name = "algnet"
    Options = ALGNetOptions
    mechanism = ALGNetMechanism

    def applicable(self, setting: Setting) -> str | None:
        return ALGNetMechanism.applicable(setting)

    def build(self, ctx: FitContext) -> ALGNetMechanism:
        return build_networks(ALGNetMechanism, ctx)

    def _fresh(self, mechanism: Mechanism, ctx: FitContext, resets: int) -> ALGNetTrainingState:
        """A new misreporter; whether the refinement runs compiled carries over."""
        o = ctx.options
        old: ALGNetTrainingState | None = ctx.state
        state = fresh_misreporter(
            ctx.setting,
            o.misreporter_hidden,
            o.misreporter_layers,
            o.misreporter_lr,
            ctx.seed,
            resets,
            mechanism.device,
        )
        if old is None:
            state.compiled = compiles(o)
        else:
            state.compiled, state.compile_proven = old.compiled, old.compile_proven
        return state

    def start(self, mechanism: Mechanism, ctx: FitContext) -> ALGNetTrainingState:
        return self._fresh(mechanism, ctx, resets=0)

    def fit(self, ctx: FitContext) -> Mechanism:
        """The shared loop, then the final misreporter saved to ``misreporter.pt``
        (not when a finished run is reused: its file stays)."""
        mechanism = super().fit(ctx)
        state: ALGNetTrainingState = ctx.state
        if state is not None and state.updates:
            o = ctx.options
            torch.save(
                {
                    "hidden": o.misreporter_hidden,
                    "layers": o.misreporter_layers,
                    "lr": o.misreporter_lr,
                    "seed": ctx.seed,
                    **state.to_dict(),
                },
                ctx.run.path / MISREPORTER,
            )
        return mechanism

    def sample(self, mechanism: Mechanism, ctx: FitContext) -> tuple[torch.Tensor, torch.Tensor]:
        """Fresh prior profiles; their rows index the step's pool of reports."""
        values, _ = super().sample(mechanism, ctx)
        return values, torch.arange(len(values), device=values.device)

    def step(
        self,
        mechanism: Mechanism,
        optimizer: torch.optim.Optimizer,
        values: torch.Tensor,
        indices: torch.Tensor | None,
        ctx: FitContext,
    ) -> dict[str, float]:
        """Re-initialise the misreporter when due, train it and compute the batch's
        reports (:meth:`misreports`), then the trainer's auctioneer step."""
        o = ctx.options
        if o.reset_every and ctx.step // o.reset_every > ctx.state.resets:
            ctx.state = self._fresh(mechanism, ctx, ctx.step // o.reset_every)
        ctx.state.step = ctx.step
        self.misreports(mechanism, values, ctx)
        if indices is None:
            indices = torch.arange(len(values), device=values.device)
        return super().step(mechanism, optimizer, values, indices, ctx)

    def misreports(
        self, mechanism: Mechanism, values: torch.Tensor, ctx: FitContext
    ) -> torch.Tensor:
        """Train the misreporter on ``values`` (gradients accumulated over chunks) and
        set ``ctx.state.reports`` to its refined reports (and ``totals`` when chunked)."""
        state: ALGNetTrainingState = ctx.state
        o = ctx.options
        net = state.misreporter
        parts = _weights(len(values), o.chunk_size)
        with frozen(mechanism):
            for _ in range(o.misreporter_steps):
                state.optimizer.zero_grad(set_to_none=True)
                for part, weight in parts:
                    v = values[part]
                    gain = misreport_utilities(mechanism, v, net(v)).sum(dim=1).mean()
                    (-gain if len(parts) == 1 else -gain * weight).backward()
                state.optimizer.step()
                state.updates += 1
        low, high = box(mechanism.setting, values)
        reports = []
        for part, _ in parts:
            v = values[part]
            with torch.no_grad():
                r = net(v)
            if o.refine_steps:
                r = attack_ascent(mechanism, v, r, o.refine_steps, o.refine_lr, ctx)
            reports.append(torch.minimum(torch.maximum(r, low), high))
        pool = reports[0] if len(parts) == 1 else torch.cat(reports)
        state.reports, state.totals = pool, None
        if len(parts) > 1:
            with torch.no_grad():
                revenue = regret = 0.0
                for part, weight in parts:
                    rgt, pay = regrets(mechanism, values[part], pool[part])
                    revenue += weight * float(pay.sum(dim=-1).mean())
                    regret += weight * float(rgt.sum(dim=-1).mean())
            unit = mechanism.setting.value_unit
            state.totals = (revenue / unit, regret / unit)
        return pool

    def loss(
        self, mechanism: Mechanism, values: torch.Tensor, ctx: FitContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``L`` on the chunk (rows ``ctx.indices`` of the step's reports); with a
        chunked batch, ``L`` linearised at the batch's P and R."""
        state: ALGNetTrainingState = ctx.state
        if state.reports is None:
            raise AutomechError(f"{self.name}: loss called before step computed the reports")
        reports = state.reports if ctx.indices is None else state.reports[ctx.indices]
        rgt, pay = train_regrets(mechanism, values, reports, ctx)  # (B, n)
        # P and R in the values' unit: L mixes sqrt(P) with R, so only in a fixed unit
        # does it weigh revenue against regret the same way in every currency
        unit = mechanism.setting.value_unit
        revenue = pay.sum(dim=-1).mean() / unit
        regret = rgt.sum(dim=-1).mean() / unit
        if state.totals is None:
            loss = -(revenue.clamp_min(FLOOR).sqrt() - regret.clamp_min(FLOOR).sqrt()) + regret
        else:
            P, R = state.totals
            value = -(max(P, FLOOR) ** 0.5 - max(R, FLOOR) ** 0.5) + R
            d_p = -0.5 / P**0.5 if P > FLOOR else 0.0
            d_r = (0.5 / R**0.5 if R > FLOOR else 0.0) + 1.0
            loss = d_p * revenue + d_r * regret + (value - d_p * P - d_r * R)
        return loss, {
            "train_revenue": float(revenue.detach()) * unit,
            "train_regret": float(regret.detach()) * unit / mechanism.setting.num_bidders,
            "misreporter_resets": state.resets,
        }

    def training_state(self, ctx: FitContext) -> dict[str, Any]:
        return ctx.state.to_dict()

    def load_training_state(self, ctx: FitContext, saved: dict[str, Any]) -> None:
        ctx.state.load(saved)


def load_misreporter(run_dir: str | Path, setting: Setting) -> ALGNetTrainingState | None:
    """The final misreporter of the ALGNet fit in ``run_dir`` (its ``misreporter.pt``) as
    a training state; None when the directory has none (e.g. :func:`automech.save`)."""
    path = Path(run_dir) / MISREPORTER
    if not path.is_file():
        return None
    saved = read_data(path)
    state = fresh_misreporter(
        setting, saved["hidden"], saved["layers"], saved["lr"], saved["seed"], int(saved["resets"])
    )
    state.load(saved)
    return state


def misreporter_regret(
    mechanism: Mechanism,
    values: torch.Tensor,
    misreporter: ALGNetTrainingState | str | Path | None,
    refine_steps: int = 0,
    refine_lr: float = 0.05,
) -> torch.Tensor | None:
    """Regret (P, n) of ``mechanism`` on ``values`` against a training misreporter, its
    reports refined by ``refine_steps`` Adam steps as in training.

    ``misreporter`` is an ALGNet training state, or a run directory of an ALGNet fit
    (its ``misreporter.pt``, see :func:`load_misreporter`).  None when there is no
    trained misreporter (None given, a directory without one, or no update made).
    """
    if isinstance(misreporter, (str, Path)):
        misreporter = load_misreporter(misreporter, mechanism.setting)
    if misreporter is None or misreporter.updates == 0:
        return None
    with torch.no_grad():
        reports = misreporter.misreporter.to(values.device)(values)
    if refine_steps:
        reports = ascend(mechanism, values, reports, refine_steps, refine_lr)
    with torch.no_grad():
        return regrets(mechanism, values, reports)[0]
