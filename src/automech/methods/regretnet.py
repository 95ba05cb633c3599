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
grows by ``rho_add`` every ``rho_every`` steps (the paper's scheme; the default values
here are ours, tuned for a few thousand steps on a CPU instead of the paper's 400,000).

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

The cache, the multipliers and rho live in a :class:`RegretTrainingState` attached to the
mechanism during training (not in its ``state_dict``) and go into checkpoints through the
trainer's ``training_state`` hook, so a resumed run continues exactly.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch

from automech.errors import AutomechError
from automech.mechanisms.base import Mechanism
from automech.mechanisms.learned.regretnet import RegretNetMechanism, misreport_utilities
from automech.problems.setting import Setting
from automech.training.trainer import GradientMethod

STATE_ATTR = "_regret_training"


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
    return (torch.as_tensor(low, dtype=like.dtype, device=like.device),
            torch.as_tensor(high, dtype=like.dtype, device=like.device))


def ascend(mechanism: Mechanism, values: torch.Tensor, start: torch.Tensor, steps: int,
           lr: float) -> torch.Tensor:
    """Projected Adam ascent of every bidder's misreport utility, all bidders at once.

    ``values`` and ``start`` are (B, n, m); returns the misreports after ``steps`` steps
    (detached). The step size is ``lr`` times the width of the support box.
    """
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


def regrets(mechanism: Mechanism, values: torch.Tensor,
            misreports: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-profile regrets max(0, u(misreport) - u(truth)) (B, n) and payments (B, n)."""
    alloc, pay = mechanism(values)
    truthful = (alloc * values).sum(dim=-1) - pay
    return (misreport_utilities(mechanism, values, misreports) - truthful).clamp_min(0), pay


def best_start(mechanism: Mechanism, values: torch.Tensor, cached: torch.Tensor, count: int,
               generator: torch.Generator) -> torch.Tensor:
    """Per profile and bidder, the best of the cached misreport and ``count`` uniform draws
    from the support box (forward passes only): lets the warm-started ascent jump out of
    a local optimum it has settled in."""
    b, n, m = values.shape
    low, high = box(mechanism.setting, values)
    draws = low + (high - low) * torch.rand(b, count, n, m, generator=generator,
                                            dtype=values.dtype).to(values.device)
    cands = torch.cat([cached.unsqueeze(1), draws], dim=1)           # (B, 1 + K, n, m)
    with torch.no_grad():
        u = misreport_utilities(mechanism, values.repeat_interleave(count + 1, dim=0),
                                cands.reshape(-1, n, m)).view(b, count + 1, n)
    best = u.argmax(dim=1)                                            # (B, n)
    return cands.gather(1, best.view(b, 1, n, 1).expand(b, 1, n, m)).squeeze(1)


def prior_draws(setting: Setting, num: int, seed: Any, like: torch.Tensor) -> torch.Tensor:
    """``num`` profiles from the prior, clipped to the support box, as tensors like ``like``."""
    x = torch.as_tensor(setting.sample(num, np.random.default_rng(seed)), dtype=like.dtype,
                        device=like.device)
    low, high = box(setting, x)
    return torch.minimum(torch.maximum(x, low), high)


def attacker_regret(mechanism: Mechanism, values: torch.Tensor, steps: int = 25,
                    lr: float = 0.1, seed: int = 0, chunk: int = 4096) -> torch.Tensor:
    """Regret (P, n) found by the *training* attacker -- ``steps`` Adam steps from one
    prior draw, no warm start -- on ``values``: to compare with the shared protocol."""
    out = []
    for s in range(0, len(values), chunk):
        v = values[s:s + chunk]
        start = prior_draws(mechanism.setting, len(v), [seed, s], v)
        b = ascend(mechanism, v, start, steps, lr)
        with torch.no_grad():
            out.append(regrets(mechanism, v, b)[0])
    return torch.cat(out)


@dataclass
class RegretTrainingState:
    """What RegretNet training keeps besides the network weights."""

    seed: int
    values: torch.Tensor                 # (N, n, m) the fixed training sample
    misreports: torch.Tensor             # (N, n, m) cached misreports, warm starts
    lagrange: torch.Tensor               # (n,) multipliers lambda_i
    rho: float
    regret_sum: torch.Tensor             # (n,) regret summed since the last lambda update
    regret_count: int = 0
    indices: torch.Tensor | None = None  # rows of the current mini-batch
    step: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"misreports": self.misreports.cpu(), "lagrange": self.lagrange.cpu(),
                "rho": self.rho, "regret_sum": self.regret_sum.cpu(),
                "regret_count": self.regret_count, "step": self.step}

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
    if state.extra.get("epoch") != epoch:
        gen = torch.Generator().manual_seed(int(np.random.default_rng(
            [state.seed, 3, epoch]).integers(2**62)))
        state.extra["epoch"], state.extra["perm"] = epoch, torch.randperm(total, generator=gen)
    return state.extra["perm"][k * batch_size:(k + 1) * batch_size].to(state.values.device)


class RegretNet(GradientMethod):
    """RegretNet trained by the augmented Lagrangian on warm-started gradient misreports."""

    name = "regretnet"
    mechanism_class: type[RegretNetMechanism] = RegretNetMechanism
    defaults = {
        **GradientMethod.defaults,
        "hidden": 100,               # units per hidden layer (both networks)
        "layers": 2,                 # hidden layers (both networks)
        "train_profiles": 128_000,   # fixed training sample (paper: 640,000); 8 epochs
        "steps": 4_000,              # paper: 400,000 steps of batch 128 (hours on a GPU)
        "batch_size": 256,
        "lr": 2e-3,
        "lr_final": 1e-4,
        "lr_schedule": "cosine",
        "misreport_steps": 25,       # attacker Adam steps per training step (paper: 25)
        "misreport_lr": 0.1,         # attacker step size, times the support width
        "misreport_candidates": 16,  # random box points tried against the cached start
        "lagrange_init": 5.0,        # lambda_i at step 0
        "rho": 1.0,                  # quadratic penalty weight at step 0
        "rho_add": 40.0,             # added to rho every rho_every steps
        "rho_every": 100,
        "lagrange_every": 25,        # steps between multiplier updates
        "validate_every": 500,
        "checkpoint_every": 2_000,
        "log_every": 50,
    }

    def applicable(self, setting: Setting) -> str | None:
        return self.mechanism_class.applicable(setting)

    def build(self, setting: Setting, options: dict[str, Any], seed: int) -> RegretNetMechanism:
        if options["chunk_size"]:
            raise AutomechError(f"{self.name} trains on whole batches (chunk_size must be 0): "
                                "the misreport cache is indexed by batch rows")
        mech = self.mechanism_class(setting, hidden=options["hidden"], layers=options["layers"],
                                    init_seed=seed)
        self.attach_state(mech, setting, options, seed)
        return mech

    def attach_state(self, mech: Mechanism, setting: Setting, options: dict[str, Any],
                     seed: int) -> RegretTrainingState:
        like = torch.empty(0, dtype=mech.dtype)
        n = setting.num_bidders
        state = RegretTrainingState(
            seed=seed,
            values=prior_draws(setting, options["train_profiles"], [seed, 2], like),
            misreports=prior_draws(setting, options["train_profiles"], [seed, 4], like),
            lagrange=torch.full((n,), float(options.get("lagrange_init", 0.0))),
            rho=float(options.get("rho", 0.0)), regret_sum=torch.zeros(n))
        object.__setattr__(mech, STATE_ATTR, state)
        return state

    @staticmethod
    def state(mechanism: Mechanism) -> RegretTrainingState:
        return getattr(mechanism, STATE_ATTR)

    def sample(self, mechanism, setting, options, rng, step) -> torch.Tensor:
        state = self.state(mechanism)
        if state.values.device != mechanism.device:
            for key in ("values", "misreports", "lagrange", "regret_sum"):
                setattr(state, key, getattr(state, key).to(mechanism.device))
        state.indices = fixed_batch(state, options["batch_size"], step)
        state.step = step
        return state.values[state.indices]

    def attack(self, mechanism: Mechanism, values: torch.Tensor,
               options: dict[str, Any]) -> torch.Tensor:
        """Warm-started misreports for the current batch (updates the cache)."""
        state = self.state(mechanism)
        if state.indices is None or len(state.indices) != len(values):
            raise AutomechError(f"{self.name}: loss called on profiles that are not the "
                                "current training batch")
        start = state.misreports[state.indices]
        if options["misreport_candidates"]:
            gen = torch.Generator().manual_seed(int(np.random.default_rng(
                [state.seed, 5, state.step]).integers(2**62)))
            start = best_start(mechanism, values, start, options["misreport_candidates"], gen)
        b = ascend(mechanism, values, start, options["misreport_steps"],
                   options["misreport_lr"])
        state.misreports[state.indices] = b
        return b

    def loss(self, mechanism, values, options, temperature, step):
        state = self.state(mechanism)
        misreports = self.attack(mechanism, values, options)
        rgt_profile, pay = regrets(mechanism, values, misreports)
        rgt = rgt_profile.mean(dim=0)                                 # (n,)
        revenue = pay.sum(dim=-1).mean()
        lagrange = state.lagrange.to(rgt.dtype)
        loss = -revenue + (lagrange * rgt).sum() + 0.5 * state.rho * (rgt**2).sum()
        state.regret_sum += rgt.detach()
        state.regret_count += 1
        return loss, {"train_revenue": float(revenue.detach()),
                      "train_regret": float(rgt.detach().mean()),
                      "lagrange_mean": float(lagrange.mean()), "rho": state.rho}

    def after_step(self, mechanism, options) -> None:
        state = self.state(mechanism)
        done = state.step + 1
        if done % options["lagrange_every"] == 0 and state.regret_count:
            state.lagrange += state.rho * state.regret_sum / state.regret_count
            state.regret_sum.zero_()
            state.regret_count = 0
        if done % options["rho_every"] == 0:
            state.rho += options["rho_add"]

    def training_state(self, mechanism) -> dict[str, Any]:
        return self.state(mechanism).to_dict()

    def load_training_state(self, mechanism, state) -> None:
        self.state(mechanism).load(state)
