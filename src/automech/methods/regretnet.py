"""RegretNet: revenue maximisation under a regret constraint, by augmented Lagrangian.

Duetting et al., "Optimal Auctions through Deep Learning" (ICML 2019 / JACM 2024),
Sections 2.3 and 5. The networks are
:class:`~automech.mechanisms.learned.regretnet.RegretNetMechanism` (feasible and IR by
construction). With ``rgt_i`` the empirical regret of bidder i on a mini-batch,

    rgt_i = (1/B) sum_b max(0, u_i(v_i; (b'_i, v_-i)) - u_i(v_i; v)),

where b'_i is the misreport found by the attacker below, each step minimises

    C_rho(w; lambda) = -(1/B) sum_b sum_i p_i(v) + sum_i lambda_i rgt_i + (rho/2) sum_i rgt_i^2

over the network weights w (Adam), and every ``lagrange_every`` steps the multipliers
move by ``lambda_i <- lambda_i + rho * rgt_i`` (rgt_i averaged over those steps); ``rho``
grows by ``rho_add`` every ``rho_every`` steps (the paper's scheme).

Training-time attacker (as in the original code): the training sample is a **fixed** set of
``train_profiles`` profiles drawn once from the prior with the run seed (the paper uses
640,000), cycled in shuffled mini-batches of ``batch_size``. Every profile keeps a cached
misreport per bidder (initialised by prior draws). Each step first compares the cached
misreport with ``misreport_candidates`` uniform points of the support box (forward passes
only; not in the paper, which restarts nothing: it lets the attack leave a local optimum
it has settled in, and set it to 0 for the paper's attacker), keeps the best, then
refines the batch's misreports by ``misreport_steps`` projected Adam steps of size
``misreport_lr`` (times the support width) on the bidders' utilities -- all bidders at
once, one forward pass over a (B, n, n, m) tensor, no Python loop over profiles or
bidders -- and writes them back, so the attack warm-starts where it stopped the last
time the profile was seen. The final regret of a trained network is never taken from this
attacker: ``automech train``/``evaluate`` use the shared protocol
(:mod:`automech.evaluation`); :func:`attacker_regret` gives this attacker's estimate on
any profiles for comparison.

``chunk_size`` (profiles per forward/backward) gives the same step as the whole batch,
up to float rounding: :meth:`RegretNet.step` first runs the attacker chunk by chunk
(misreports are per profile; the candidate draws are those of the whole batch), then the
trainer accumulates the chunks' losses.  The quadratic term is not a mean over profiles,
so a chunk's loss carries it linearised at the batch's regret ``R`` (computed without
gradient between the two passes): ``-rev_c + sum_i (lambda_i + rho R_i) rgt_c,i - (rho/2)
|R|^2``, whose chunk-weighted sum has the value and the gradient of ``C_rho``.

``activation="relu"`` with ``allocation="sparsemax"`` trains the piecewise-linear variant
of the networks (ReLU layers, sparsemax allocation, payment capped by a piecewise-linear
IR bound; see :mod:`automech.mechanisms.learned.regretnet`) whose exact regret at a
profile is a mixed-integer linear program, solved by ``automech certify``
(:mod:`automech.evaluation.certify`; Curry et al., NeurIPS 2020).

``compile`` runs the attacker (:func:`compiled_ascent`: the Adam steps in unrolled blocks,
``torch.func.grad`` through ``functional_call``), the restart candidates and the loss's
forward and backward through ``torch.compile``: the same arithmetic up to float rounding,
with the per-op overhead that bounds the eager step on a CPU fused away.  ``"auto"`` does
so for runs of :data:`COMPILE_MIN_STEPS` steps or more and falls back to eager, with a line
to the user, where compilation fails (:func:`compiled_or_eager`).

The fixed sample, the misreport cache, the multipliers and rho are the run state
(:class:`RegretTrainingState`, ``ctx.state``, built by :meth:`RegretNet.start`); the
cache, multipliers and rho go into checkpoints through the ``training_state`` hook, so a
resumed run continues exactly.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np
import torch

from automech.errors import AutomechError
from automech.mechanisms.base import Mechanism
from automech.mechanisms.learned.regretnet import RegretNetMechanism, misreport_utilities
from automech.problems.setting import Setting
from automech.training import FitContext, GradientMethod, TrainerOptions, option

T = TypeVar("T")


@contextlib.contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """Parameters excluded from autograd inside the block (the attacker differentiates
    utilities with respect to bids only)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def box(setting: Setting, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The prior's support box (n, m), low and high, as tensors like ``like``."""
    low, high = setting.prior.support()
    return (
        torch.as_tensor(low, dtype=like.dtype, device=like.device),
        torch.as_tensor(high, dtype=like.dtype, device=like.device),
    )


def ascend(
    mechanism: Mechanism,
    values: torch.Tensor,
    start: torch.Tensor,
    steps: int,
    lr: float,
    compiled: bool = False,
) -> torch.Tensor:
    """Projected Adam ascent of every bidder's misreport utility, all bidders at once.

    ``values`` and ``start`` are (B, n, m); returns the misreports after ``steps`` steps
    (detached). The step size is ``lr`` times the width of the support box.  With
    ``compiled`` the same steps run through :func:`compiled_ascent` (torch.compile, the
    same arithmetic fused into fewer kernels).
    """
    if compiled:
        return compiled_ascent(mechanism, values, start, steps, lr)
    low, high = box(mechanism.setting, values)
    size = lr * (high - low)
    b = start.detach().clone()
    m1, m2 = torch.zeros_like(b), torch.zeros_like(b)
    beta1, beta2 = 0.9, 0.999
    with frozen(mechanism):
        for t in range(1, steps + 1):
            b.requires_grad_(True)
            (grad,) = torch.autograd.grad(misreport_utilities(mechanism, values, b).sum(), b)
            with torch.no_grad():
                m1.mul_(beta1).add_(grad, alpha=1 - beta1)
                m2.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step = size * (m1 / (1 - beta1**t)) / ((m2 / (1 - beta2**t)).sqrt() + 1e-8)
                b = torch.minimum(torch.maximum(b.detach() + step, low), high)
    return b.detach()


#: Adam steps of the inner ascent unrolled into one compiled graph: 5 compiles in about a
#: fifth of the time of 25 and runs as fast (bench/regretnet_step.py).
UNROLL = 5


def _ascent_block(
    mechanism: Mechanism,
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    values: torch.Tensor,
    b: torch.Tensor,
    m1: torch.Tensor,
    m2: torch.Tensor,
    done: torch.Tensor,
    k: int,
    size: torch.Tensor,
    low: torch.Tensor,
    high: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``k`` steps of :func:`ascend`'s Adam, the ``done + 1``-th first, in functional
    form (``torch.func.grad`` of the utilities through ``functional_call``), for
    torch.compile."""

    def total(reports: torch.Tensor) -> torch.Tensor:
        def net(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.func.functional_call(mechanism, (params, buffers), (x,))

        return misreport_utilities(net, values, reports).sum()  # type: ignore[arg-type]

    gradient = torch.func.grad(total)
    beta1, beta2 = 0.9, 0.999
    for j in range(1, k + 1):
        t = done + j
        g = gradient(b)
        m1 = beta1 * m1 + (1 - beta1) * g
        m2 = beta2 * m2 + (1 - beta2) * g * g
        step = size * (m1 / (1 - beta1**t)) / ((m2 / (1 - beta2**t)).sqrt() + 1e-8)
        b = torch.minimum(torch.maximum(b + step, low), high)
    return b, m1, m2


@functools.cache
def _compiled_best_start() -> Any:
    """:func:`best_start` under torch.compile, made once per process."""
    return torch.compile(best_start, dynamic=False)


@functools.cache
def _compiled_regrets() -> Any:
    """:func:`regrets` under torch.compile (forward and backward), made once per process."""
    return torch.compile(regrets, dynamic=False)


@functools.cache
def _compiled_block() -> Any:
    """:func:`_ascent_block` under torch.compile, made once per process."""
    return torch.compile(_ascent_block, fullgraph=True, dynamic=False)


def compiled_ascent(
    mechanism: Mechanism, values: torch.Tensor, start: torch.Tensor, steps: int, lr: float
) -> torch.Tensor:
    """:func:`ascend` with its steps in compiled blocks of :data:`UNROLL` (torch.compile,
    ``fullgraph``, static shapes): the per-op overhead that bounds the eager step on a CPU
    (about 90 small ops per Adam step) becomes a few fused kernels.  One graph per batch
    shape and block length, shared by every network of the same architecture (modules are
    inlined, their weights are inputs); inductor caches it on disk, so a later process
    compiles in seconds.  The first call compiles (about a minute on this 2-core machine,
    bench/regretnet_step.py)."""
    block = _compiled_block()
    low, high = box(mechanism.setting, values)
    size = lr * (high - low)
    params = {k: p.detach() for k, p in mechanism.named_parameters()}
    buffers = dict(mechanism.named_buffers())
    b = start.detach().clone()
    m1, m2 = torch.zeros_like(b), torch.zeros_like(b)
    done = 0
    while done < steps:
        k = min(UNROLL, steps - done)
        t = torch.tensor(float(done), dtype=torch.float64, device=b.device)
        b, m1, m2 = block(
            mechanism, params, buffers, values.detach(), b, m1, m2, t, k, size, low, high
        )
        done += k
    return b.detach()


def regrets(
    mechanism: Mechanism, values: torch.Tensor, misreports: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-profile regrets max(0, u(misreport) - u(truth)) (B, n) and payments (B, n)."""
    alloc, pay = mechanism(values)
    truthful = (alloc * values).sum(dim=-1) - pay
    return (misreport_utilities(mechanism, values, misreports) - truthful).clamp_min(0), pay


def box_draws(
    setting: Setting, num: int, count: int, generator: torch.Generator, like: torch.Tensor
) -> torch.Tensor:
    """``count`` uniform points of the support box per profile and bidder,
    (num, count, n, m), like ``like``."""
    n, m = setting.shape
    low, high = box(setting, like)
    return low + (high - low) * torch.rand(
        num, count, n, m, generator=generator, dtype=like.dtype
    ).to(like.device)


def best_start(
    mechanism: Mechanism, values: torch.Tensor, cached: torch.Tensor, draws: torch.Tensor
) -> torch.Tensor:
    """Per profile and bidder, the best of the cached misreport and the candidate
    ``draws`` (B, K, n, m) of :func:`box_draws` (forward passes only): lets the
    warm-started ascent jump out of a local optimum it has settled in."""
    b, count, n, m = draws.shape
    cands = torch.cat([cached.unsqueeze(1), draws], dim=1)  # (B, 1 + K, n, m)
    with torch.no_grad():
        u = misreport_utilities(
            mechanism, values.repeat_interleave(count + 1, dim=0), cands.reshape(-1, n, m)
        ).view(b, count + 1, n)
    best = u.argmax(dim=1)  # (B, n)
    return cands.gather(1, best.view(b, 1, n, 1).expand(b, 1, n, m)).squeeze(1)


def prior_draws(setting: Setting, num: int, seed: Any, like: torch.Tensor) -> torch.Tensor:
    """``num`` profiles from the prior, clipped to the support box, as tensors like ``like``."""
    x = torch.as_tensor(
        setting.sample(num, np.random.default_rng(seed)), dtype=like.dtype, device=like.device
    )
    low, high = box(setting, x)
    return torch.minimum(torch.maximum(x, low), high)


def attacker_regret(
    mechanism: Mechanism,
    values: torch.Tensor,
    steps: int = 25,
    lr: float = 0.1,
    seed: int = 0,
    chunk: int = 4096,
) -> torch.Tensor:
    """Regret (P, n) found by the *training* attacker -- ``steps`` Adam steps from one
    prior draw, no warm start -- on ``values``: to compare with the shared protocol."""
    out = []
    for s in range(0, len(values), chunk):
        v = values[s : s + chunk]
        start = prior_draws(mechanism.setting, len(v), [seed, s], v)
        b = ascend(mechanism, v, start, steps, lr)
        with torch.no_grad():
            out.append(regrets(mechanism, v, b)[0])
    return torch.cat(out)


def chunks(total: int, chunk_size: int) -> list[slice]:
    """The consecutive slices the trainer cuts a batch of ``total`` profiles into."""
    size = chunk_size or total
    return [slice(s, s + size) for s in range(0, total, size)]


def activation_option() -> Any:
    """The networks' hidden activation (RegretNet and ALGNet)."""
    return option(
        "tanh",
        "hidden layers; relu also makes the payment piecewise linear "
        "(min(|output|, an IR cap)), as `automech certify` needs",
    )


#: ``compile="auto"`` compiles the inner ascent of runs of at least this many steps
#: (a cold compile costs about a minute: worth it from a few hundred steps of 25 inner
#: steps; bench/regretnet_step.py).
COMPILE_MIN_STEPS = 1_000


def compile_option() -> Any:
    """Whether the attacker's ascent and the loss run compiled (RegretNet and ALGNet)."""
    return option(
        "auto",
        "run the misreport ascent, restart candidates and loss through torch.compile (same "
        "arithmetic, fused kernels: a 2x2 step 1.5-1.8x faster on a CPU); auto: for runs of "
        f">= {COMPILE_MIN_STEPS:,} steps, falling back to eager where compilation fails",
    )


def compiles(options: Any) -> bool:
    """Whether a run with ``options`` starts with the compiled ascent."""
    if options.compile == "auto":
        return options.steps >= COMPILE_MIN_STEPS
    return options.compile == "on"


def compiled_or_eager(
    ctx: FitContext, name: str, fast: Callable[..., T], slow: Callable[..., T], *args: Any
) -> T:
    """``fast(*args)`` (a compiled function) when the run state says so
    (``ctx.state.compiled``), else ``slow(*args)`` (its eager twin).  If compilation fails
    on ``name``'s first call (no C++ compiler for inductor, an unsupported device),
    ``compile="on"`` raises and ``"auto"`` goes on eagerly, with a line to the user."""
    state = ctx.state
    if not state.compiled:
        return slow(*args)
    if name in state.compile_proven:
        return fast(*args)
    try:
        out = fast(*args)
    except Exception as err:  # noqa: BLE001 - a backend fails in many ways; first call only
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        reason = f"{type(err).__name__}: {first}"[:300]
        if ctx.options.compile == "on":
            raise AutomechError(
                f"compile=on: torch.compile of the {name} failed ({reason})"
            ) from err
        state.compiled = False
        if ctx.notify is not None:
            ctx.notify(f"compile=auto: torch.compile failed ({reason}); running eagerly")
        return slow(*args)
    state.compile_proven.add(name)
    return out


def attack_ascent(
    mechanism: Mechanism,
    values: torch.Tensor,
    start: torch.Tensor,
    steps: int,
    lr: float,
    ctx: FitContext,
) -> torch.Tensor:
    """The training attacker's :func:`ascend`, compiled when the run is
    (:func:`compiled_or_eager`)."""
    return compiled_or_eager(
        ctx, "misreport ascent", compiled_ascent, ascend, mechanism, values, start, steps, lr
    )


def train_regrets(
    mechanism: Mechanism, values: torch.Tensor, misreports: torch.Tensor, ctx: FitContext
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`regrets` for the training loss, its forward and backward compiled when the
    run is (:func:`compiled_or_eager`)."""
    return compiled_or_eager(
        ctx, "loss", _compiled_regrets(), regrets, mechanism, values, misreports
    )


def allocation_option() -> Any:
    """The networks' per-item allocation map (RegretNet and ALGNet)."""
    return option(
        "softmax",
        "per-item map over bidders + dummy; sparsemax is piecewise linear, "
        "as `automech certify` needs",
    )


def build_networks(cls: type[RegretNetMechanism], ctx: FitContext) -> Any:
    """The auctioneer networks ``cls`` (RegretNet's or ALGNet's) with the run's shape
    options (hidden, layers, activation, allocation), seeded by the run seed."""
    o = ctx.options
    return cls(
        ctx.setting,
        hidden=o.hidden,
        layers=o.layers,
        init_seed=ctx.seed,
        activation=o.activation,
        allocation=o.allocation,
    )


@dataclass(frozen=True)
class RegretNetOptions(TrainerOptions):
    """RegretNet's options (the paper's scheme; budgets for a few thousand steps)."""

    method = "regretnet"
    hidden: int = option(100, "units per hidden layer (both networks)", low=1)
    layers: int = option(2, "hidden layers (both networks)", low=1)
    activation: Literal["tanh", "relu"] = activation_option()
    allocation: Literal["softmax", "sparsemax"] = allocation_option()
    compile: Literal["auto", "on", "off"] = compile_option()
    train_profiles: int = option(
        128_000, "fixed training sample, cycled in shuffled batches (paper: 640,000)", low=1
    )
    misreport_steps: int = option(25, "attacker Adam steps per training step (paper: 25)", low=0)
    misreport_lr: float = option(
        0.1, "attacker step size, times the support width", low=0, low_open=True
    )
    misreport_candidates: int = option(
        16,
        "random box points tried against the cached misreport each step (0: the paper's attacker)",
        low=0,
    )
    lagrange_init: float = option(5.0, "multipliers lambda_i at step 0", low=0)
    rho: float = option(1.0, "quadratic penalty weight at step 0", low=0)
    rho_add: float = option(40.0, "added to rho every rho_every steps", low=0)
    rho_every: int = option(100, "steps between increases of rho", low=1)
    lagrange_every: int = option(25, "steps between multiplier updates", low=1)
    steps: int = 4_000  # paper: 400,000 steps of batch 128
    #: no stopping rule: the validated revenue ignores regret, which the Lagrangian
    #: trades against it late in training (revenue may fall while regret falls)
    patience: int = 0
    batch_size: int = 256
    lr: float = 2e-3
    lr_final: float = 1e-4
    validate_every: int = 500
    checkpoint_every: int = 2_000
    log_every: int = 50


@dataclass
class RegretTrainingState:
    """RegretNet's run state (``ctx.state``): everything training keeps besides the
    network weights."""

    seed: int
    values: torch.Tensor  # (N, n, m) the fixed training sample
    misreports: torch.Tensor  # (N, n, m) cached misreports, warm starts
    lagrange: torch.Tensor  # (n,) multipliers lambda_i
    rho: float
    regret_sum: torch.Tensor  # (n,) batch regret summed since the last update
    regret_count: int = 0  # steps summed in regret_sum
    step: int = 0  # the step last sampled
    #: (n,) regret of the whole batch when the step is chunked (None: one chunk)
    batch_regret: torch.Tensor | None = None
    batch_rows: int = 0  # profiles in the current batch
    epoch: int | None = None  # the epoch of ``perm``
    perm: torch.Tensor | None = None  # this epoch's shuffle of the fixed sample
    compiled: bool = False  # the ascent and the loss run compiled (:func:`compiled_or_eager`)
    compile_proven: set[str] = field(default_factory=set)  # compiled calls that succeeded

    def to_dict(self) -> dict[str, Any]:
        return {
            "misreports": self.misreports.cpu(),
            "lagrange": self.lagrange.cpu(),
            "rho": self.rho,
            "regret_sum": self.regret_sum.cpu(),
            "regret_count": self.regret_count,
            "step": self.step,
        }

    def load(self, saved: dict[str, Any]) -> None:
        dev = self.values.device
        self.misreports = saved["misreports"].to(dev, self.values.dtype)
        self.lagrange = saved["lagrange"].to(dev, self.values.dtype)
        self.rho = float(saved["rho"])
        self.regret_sum = saved["regret_sum"].to(dev, self.values.dtype)
        self.regret_count = int(saved["regret_count"])
        self.step = int(saved["step"])


def fixed_batch(state: RegretTrainingState, batch_size: int, step: int) -> torch.Tensor:
    """Rows of the fixed sample used at ``step``: a fresh permutation every epoch (seeded by
    the run seed and the epoch, so resuming reproduces it), cut into whole batches."""
    total = len(state.values)
    per_epoch = max(1, total // batch_size)
    epoch, k = divmod(step, per_epoch)
    if state.epoch != epoch or state.perm is None:
        gen = torch.Generator().manual_seed(
            int(np.random.default_rng([state.seed, 3, epoch]).integers(2**62))
        )
        state.epoch, state.perm = epoch, torch.randperm(total, generator=gen)
    return state.perm[k * batch_size : (k + 1) * batch_size].to(state.values.device)


class RegretNet(GradientMethod):
    """RegretNet trained by the augmented Lagrangian on warm-started gradient misreports."""

    name = "regretnet"
    Options = RegretNetOptions
    mechanism = RegretNetMechanism

    def applicable(self, setting: Setting) -> str | None:
        return RegretNetMechanism.applicable(setting)

    def build(self, ctx: FitContext) -> RegretNetMechanism:
        return build_networks(self.mechanism, ctx)

    def start(self, mechanism: Mechanism, ctx: FitContext) -> RegretTrainingState:
        """The fixed sample, its misreport cache (prior draws), lambda and rho at step 0."""
        o, setting = ctx.options, ctx.setting
        like = torch.empty(0, dtype=mechanism.dtype, device=mechanism.device)
        n = setting.num_bidders
        return RegretTrainingState(
            seed=ctx.seed,
            values=prior_draws(setting, o.train_profiles, [ctx.seed, 2], like),
            misreports=prior_draws(setting, o.train_profiles, [ctx.seed, 4], like),
            lagrange=torch.full(
                (n,), float(o.lagrange_init), dtype=mechanism.dtype, device=mechanism.device
            ),
            rho=float(o.rho),
            regret_sum=torch.zeros(n, dtype=mechanism.dtype, device=mechanism.device),
            compiled=compiles(o),
        )

    def sample(self, mechanism: Mechanism, ctx: FitContext) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's mini-batch of the fixed sample and its rows."""
        state: RegretTrainingState = ctx.state
        indices = fixed_batch(state, ctx.options.batch_size, ctx.step)
        state.step = ctx.step
        return state.values[indices], indices

    def attack(
        self, mechanism: Mechanism, values: torch.Tensor, indices: torch.Tensor, ctx: FitContext
    ) -> None:
        """Refresh the cached misreports of the batch (rows ``indices``), chunk by chunk
        when ``chunk_size`` cuts it; with a chunked batch, also the batch's regret."""
        state: RegretTrainingState = ctx.state
        o = ctx.options
        draws = None
        if o.misreport_candidates:
            gen = torch.Generator().manual_seed(
                int(np.random.default_rng([state.seed, 5, ctx.step]).integers(2**62))
            )
            draws = box_draws(mechanism.setting, len(values), o.misreport_candidates, gen, values)
        parts = chunks(len(values), o.chunk_size)
        for part in parts:
            v, rows = values[part], indices[part]
            start = state.misreports[rows]
            if draws is not None:
                start = compiled_or_eager(
                    ctx,
                    "restart candidates",
                    _compiled_best_start(),
                    best_start,
                    mechanism,
                    v,
                    start,
                    draws[part],
                )
            state.misreports[rows] = attack_ascent(
                mechanism, v, start, o.misreport_steps, o.misreport_lr, ctx
            )
        state.batch_rows, state.batch_regret = len(values), None
        if len(parts) > 1:
            with torch.no_grad():
                total = torch.zeros_like(state.regret_sum)
                for p in parts:
                    rgt = regrets(mechanism, values[p], state.misreports[indices[p]])[0]
                    total += rgt.sum(dim=0)
                state.batch_regret = total / len(values) / mechanism.setting.value_unit

    def step(
        self,
        mechanism: Mechanism,
        optimizer: torch.optim.Optimizer,
        values: torch.Tensor,
        indices: torch.Tensor | None,
        ctx: FitContext,
    ) -> dict[str, float]:
        """The attack on the whole batch (:meth:`attack`), then the trainer's step."""
        if indices is None:
            raise AutomechError(
                f"{self.name}: trains on rows of its fixed sample "
                "(sample must return their indices)"
            )
        self.attack(mechanism, values, indices, ctx)
        return super().step(mechanism, optimizer, values, indices, ctx)

    def loss(
        self, mechanism: Mechanism, values: torch.Tensor, ctx: FitContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``C_rho`` on the chunk (rows ``ctx.indices``) against its cached misreports,
        which :meth:`step` has just refreshed; with a chunked batch, the quadratic term
        linearised at the batch's regret (see the module docstring)."""
        state: RegretTrainingState = ctx.state
        if ctx.indices is None or len(ctx.indices) != len(values):
            raise AutomechError(
                f"{self.name}: loss called on profiles that are not rows "
                "of the training sample (ctx.indices)"
            )
        rgt_profile, pay = train_regrets(mechanism, values, state.misreports[ctx.indices], ctx)
        # revenue and regret in the values' unit, so that the multipliers, rho and its
        # schedule mean the same in any currency (values x c: the same training path)
        unit = mechanism.setting.value_unit
        rgt = rgt_profile.mean(dim=0) / unit  # (n,)
        revenue = pay.sum(dim=-1).mean() / unit
        lagrange = state.lagrange.to(rgt.dtype)
        if state.batch_regret is None:
            loss = -revenue + (lagrange * rgt).sum() + 0.5 * state.rho * (rgt**2).sum()
        else:
            whole = state.batch_regret.to(rgt.dtype)
            loss = (
                -revenue
                + ((lagrange + state.rho * whole) * rgt).sum()
                - 0.5 * state.rho * (whole**2).sum()
            )
        state.regret_sum += (len(values) / (state.batch_rows or len(values))) * rgt.detach()
        return loss, {
            "train_revenue": float(revenue.detach()) * unit,
            "train_regret": float(rgt.detach().mean()) * unit,
            "lagrange_mean": float(lagrange.mean()),
            "rho": state.rho,
        }

    def after_step(self, mechanism: Mechanism, ctx: FitContext) -> None:
        """The multiplier and rho updates of the augmented Lagrangian."""
        state: RegretTrainingState = ctx.state
        o = ctx.options
        state.regret_count += 1
        done = ctx.step + 1
        if done % o.lagrange_every == 0 and state.regret_count:
            state.lagrange += state.rho * state.regret_sum / state.regret_count
            state.regret_sum.zero_()
            state.regret_count = 0
        if done % o.rho_every == 0:
            state.rho += o.rho_add

    def training_state(self, ctx: FitContext) -> dict[str, Any]:
        return ctx.state.to_dict()

    def load_training_state(self, ctx: FitContext, saved: dict[str, Any]) -> None:
        ctx.state.load(saved)
