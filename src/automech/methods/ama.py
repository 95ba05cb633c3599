"""Lottery and deterministic affine maximizer auctions, trained by gradient ascent.

Curry, Sandholm and Dickerson (lottery-affine-maximizer-auctions.txt), Section 5: the
weights, boosts and (lottery AMA) allocations are learned on the softmax surrogate of the
mechanism (Eq. 1-2 with the argmax replaced by ``softmax(T s)`` and each max by the
softmax-weighted mean),

    max  E_v [ sum_i (1 / w_i) sum_k (softmax(T s^{-i}(v))_k - softmax(T s(v))_k) s^{-i}_k(v) ],

the exact AMA (argmax) is what is validated, saved and evaluated, and it is exactly DSIC
and IR for every parameter value (:mod:`automech.mechanisms.learned.affine_maximizer`).

Deviations from the paper's recipe, all for speed on small CPUs (measured in
``docs/results.md`` and ``bench/README.md``); the mechanism class is the paper's:

* start: ``init="deterministic"`` puts every feasible deterministic allocation (when they
  fit) in the starting set next to random ones (``init="random"`` is the paper's), and the
  boosts start at ``-r * (quantity allocated)`` (``init_reserve``; "auto" takes the
  smallest r on a grid whose exact revenue is within 5% of the best: near-equal starts
  with more trade give more training signal), so that far fewer allocations, steps and
  profiles per step are needed than in the paper;
* pruning: from step ``prune_after`` on, every ``prune_every`` steps, allocations whose
  softmax weight stays below ``prune_threshold`` on ``prune_samples`` fresh profiles (in
  the choice and in every bidder's counterfactual choice) are dropped for good, and later
  steps compute on the remaining ones only.  The paper's Table 4 finds that almost all of
  the thousands of initial allocations end up unused;
* discrete priors with few profiles (the spherical setting: 25) are trained on the exact
  expectation over all profiles (``exact_expectation``) rather than on samples;
* the surrogate's backward is written by hand (``fused``); ``chunk_size`` (gradient
  accumulation) bounds the (profiles x allocations) temporaries; ``softmax_gap`` can
  further restrict each batch to the allocations that carry softmax weight in it.

The deterministic AMA shares all of this except the allocations, which are fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import torch

from automech.errors import OptionError
from automech.mechanisms.base import Mechanism
from automech.mechanisms.learned.affine_maximizer import (
    AffineMaximizer,
    DeterministicAMA,
    LotteryAMA,
    symmetric_prior,
)
from automech.problems.finite_types import finite_types
from automech.problems.priors import DiscretePrior, IndependentDiscretePrior
from automech.problems.setting import Setting
from automech.training import (
    FitContext,
    GradientMethod,
    SoftmaxOptions,
    TrainerOptions,
    option,
)
from automech.training import options as _options

#: Largest number of profiles of a discrete prior trained on exactly.
MAX_ENUMERATED_PROFILES = 65_536


def enumerated_profiles(setting: Setting) -> tuple[np.ndarray, np.ndarray] | None:
    """Every profile of a discrete prior with positive probability and its probability,
    or None for continuous priors and for more than MAX_ENUMERATED_PROFILES profiles."""
    prior = setting.prior
    if not isinstance(prior, (DiscretePrior, IndependentDiscretePrior)):
        return None
    space = finite_types(prior, 0)
    if space.num_profiles > MAX_ENUMERATED_PROFILES:
        return None
    probs = space.joint.reshape(-1)
    keep = probs > 0
    return space.profile_values()[keep], probs[keep]


@dataclass(frozen=True)
class AMAOptions(TrainerOptions, SoftmaxOptions):
    """Options shared by both AMA methods (on top of the trainer's)."""

    method = "ama"
    learn_weights: bool | Literal["auto"] = option(
        "auto",
        "learn the bidder weights (auto: unless every bidder has the same prior support and atoms)",
    )
    prune_after: int = option(0, "first pruning step (0: never prune)", low=0)
    prune_every: int = option(100, "steps between prunings after that", low=1)
    prune_threshold: float = option(
        1e-3, "softmax mass below which an allocation is dropped", low=0, high=1
    )
    prune_samples: int = option(16384, "fresh profiles on which the mass is measured", low=1)
    init_reserve: float | Literal["auto"] = option(
        "auto",
        "boosts start at -r * (quantity allocated): a number r, or auto (the "
        "smallest r within 5% of the best exact revenue on a grid)",
        low=0,
    )
    softmax_gap: float = option(
        0.0,
        "> 0: per batch, drop allocations with softmax "
        "weight below exp(-softmax_gap) everywhere (speed)",
        low=0,
    )
    fused: bool = option(True, "hand-written backward of the surrogate (speed)")
    exact_expectation: bool | Literal["auto"] = option(
        "auto",
        "discrete priors: train on every profile weighted by its probability "
        f"instead of batch_size samples (auto: when there are at most "
        f"{MAX_ENUMERATED_PROFILES} profiles)",
    )
    steps: int = 1000  # paper: 9,000
    batch_size: int = 8192  # paper: 32,768
    lr: float = 0.01  # paper: 0.01 (Adam)
    lr_final: float = 0.001
    temperature: float = 100.0  # paper: 100
    temperature_final: float = 100.0
    validate_every: int = 100


@dataclass(frozen=True)
class LotteryAMAOptions(AMAOptions):
    """The lottery AMA's options: the shared ones plus the learned allocations' start."""

    method = "lottery-ama"
    recipe: Literal["auto", "fast", "paper"] = option(
        "auto",
        "paper: the paper's start (FINITE_TYPE_RECIPE, put over the other "
        "options); fast: the start of init and init_reserve; auto: paper on priors small "
        "enough to train on exactly, else fast",
    )
    allocations: int = option(512, "learned allocations at the start (paper: 2048-4096)", low=1)
    init: Literal["deterministic", "random"] = option(
        "deterministic",
        "starting allocations: every feasible deterministic one (when they "
        "fit) next to random ones, or all random (the paper's)",
    )
    init_scale: float = option(1.0, "std of the random logits", low=0)
    init_sharpness: float = option(
        5.0, "logit margin of the deterministic starts", low=0, low_open=True
    )
    chunk_size: int = 2048
    prune_after: int = 50
    prune_every: int = 50
    prune_threshold: float = 0.01


@dataclass(frozen=True)
class DeterministicAMAOptions(AMAOptions):
    """The deterministic AMA's options (the allocations are fixed: every deterministic
    one)."""

    method = "deterministic-ama"


#: The paper's start (random allocations, zero boosts), which ``recipe="paper"`` puts
#: over the fast defaults -- and ``recipe="auto"`` on priors small enough to train on
#: their exact expectation (finite type spaces such as the spherical setting), where the
#: fast start (every deterministic allocation plus a tuned reserve) stays near the
#: deterministic AMA it starts as (``bench/README.md``, spherical section).
FINITE_TYPE_RECIPE = {"init": "random", "allocations": 2048, "init_reserve": 0.0, "lr": 0.03}


@dataclass
class AMAState:
    """The run state of an AMA fit (``ctx.state``).

    Attributes
    ----------
    exact
        Every profile (T, n, m) of a discrete prior trained on exactly and its probability
        (T,), on the mechanism's device; None when training on samples.
    """

    exact: tuple[torch.Tensor, torch.Tensor] | None = None


def _learn_weights(setting: Setting, choice: bool | str) -> bool:
    return (not symmetric_prior(setting)) if choice == "auto" else bool(choice)


class _AMAMethod(GradientMethod):
    """The trainer's loop plus the AMA start, scheduled pruning of unused allocations and
    the exact expectation over small discrete priors."""

    def resolve(self, setting: Setting, options: _options.Options) -> _options.Options:
        if (
            cast(AMAOptions, options).exact_expectation is True
            and enumerated_profiles(setting) is None
        ):
            raise OptionError(
                f"{self.name}: option 'exact_expectation' = true needs a "
                f"discrete prior with at most {MAX_ENUMERATED_PROFILES} "
                "profiles"
            )
        return options

    # ---------------------------------------------------------------- hooks

    def start(self, mechanism: Mechanism, ctx: FitContext) -> AMAState:
        """The exact profiles and probabilities, when the prior is trained on exactly."""
        if ctx.options.exact_expectation is False:
            return AMAState()
        found = enumerated_profiles(ctx.setting)
        if found is None:
            return AMAState()
        profiles, probs = (
            torch.as_tensor(a, dtype=mechanism.dtype, device=mechanism.device) for a in found
        )
        return AMAState((profiles, probs))

    def initialise(self, mechanism: Mechanism, ctx: FitContext) -> None:
        """The starting boosts (``init_reserve``)."""
        assert isinstance(mechanism, AffineMaximizer)
        reserve = ctx.options.init_reserve
        if reserve == "auto":
            bids = torch.as_tensor(
                ctx.setting.sample(8192, np.random.default_rng([ctx.seed, 3])),
                dtype=mechanism.dtype,
                device=mechanism.device,
            )
            mechanism.tune_reserve(bids)
        else:
            mechanism.reset_boosts(float(reserve))

    def sample(
        self, mechanism: Mechanism, ctx: FitContext
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fresh prior draws, or every profile of a prior trained on exactly."""
        if ctx.state.exact is not None:
            return ctx.state.exact[0], None
        return super().sample(mechanism, ctx)

    def loss(
        self, mechanism: Mechanism, values: torch.Tensor, ctx: FitContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(mechanism, AffineMaximizer)
        alloc, pay = self._relaxed(mechanism, values, ctx)
        objective = ctx.setting.objective.value(values, alloc, pay).mean()
        return -objective, {"train_objective": float(objective.detach())}

    def step(
        self,
        mechanism: Mechanism,
        optimizer: torch.optim.Optimizer,
        values: torch.Tensor,
        indices: torch.Tensor | None,
        ctx: FitContext,
    ) -> dict[str, float]:
        """Prune when scheduled, then one step on the sampled batch (the trainer's) or on
        the exact expectation; logs the active allocations."""
        assert isinstance(mechanism, AffineMaximizer)
        o = ctx.options
        if (
            o.prune_after > 0
            and ctx.step >= o.prune_after
            and (ctx.step - o.prune_after) % o.prune_every == 0
        ):
            self.prune(mechanism, ctx)
        if ctx.state.exact is None:
            metrics = super().step(mechanism, optimizer, values, indices, ctx)
        else:
            metrics = self._exact_step(mechanism, optimizer, ctx)
        metrics["allocations_active"] = int(cast(torch.Tensor, mechanism.active).sum())
        return metrics

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _relaxed(mechanism: AffineMaximizer, values: torch.Tensor, ctx: FitContext):
        return mechanism.relaxed(
            values, ctx.temperature, softmax_gap=ctx.options.softmax_gap, fused=ctx.options.fused
        )

    def _exact_step(
        self, mechanism: AffineMaximizer, optimizer: torch.optim.Optimizer, ctx: FitContext
    ) -> dict[str, float]:
        """One step on the exact expectation over a discrete prior's profiles, gradients
        accumulated over chunks of ``chunk_size`` profiles."""
        profiles, probs = ctx.state.exact
        optimizer.zero_grad(set_to_none=True)
        chunk = ctx.options.chunk_size or len(profiles)
        value = 0.0
        for s in range(0, len(profiles), chunk):
            part = profiles[s : s + chunk]
            alloc, pay = self._relaxed(mechanism, part, ctx)
            objective = (ctx.setting.objective.value(part, alloc, pay) * probs[s : s + chunk]).sum()
            (-objective).backward()
            value += float(objective.detach())
        optimizer.step()
        self.after_step(mechanism, ctx)
        return {"loss": -value, "train_objective": value}

    def prune(self, mechanism: AffineMaximizer, ctx: FitContext) -> int:
        """Drop allocations with no softmax mass on ``prune_samples`` fresh profiles
        (seeded by the run seed and the step, so a resumed run prunes as an uninterrupted
        one would), or on every profile of a discrete prior trained on exactly; returns
        how many remain active."""
        o = ctx.options
        if ctx.state.exact is not None:
            bids = ctx.state.exact[0]
        else:
            rng = np.random.default_rng([ctx.seed, 2, ctx.step])
            bids = torch.as_tensor(
                ctx.setting.sample(o.prune_samples, rng),
                dtype=mechanism.dtype,
                device=mechanism.device,
            )
        return mechanism.prune(bids, ctx.temperature, o.prune_threshold)


class LotteryAMAMethod(_AMAMethod):
    """Lottery AMA: learned (randomised) allocations, boosts and weights (Curry et al., 5)."""

    name = "lottery-ama"
    Options = LotteryAMAOptions
    mechanism = LotteryAMA

    def applicable(self, setting: Setting) -> str | None:
        return LotteryAMA.applicable(setting)

    def resolve(self, setting: Setting, options: _options.Options) -> _options.Options:
        """``recipe``: "paper" puts :data:`FINITE_TYPE_RECIPE` over the options, "auto"
        picks "paper" on priors with few enough profiles to enumerate, else "fast"."""
        options = super().resolve(setting, options)
        recipe = cast(LotteryAMAOptions, options).recipe
        if recipe == "auto":
            recipe = "paper" if enumerated_profiles(setting) is not None else "fast"
        extra = FINITE_TYPE_RECIPE if recipe == "paper" else {}
        return options.replace(**extra, recipe=recipe)

    def build(self, ctx: FitContext) -> LotteryAMA:
        o = ctx.options
        return LotteryAMA(
            ctx.setting,
            allocations=o.allocations,
            learn_weights=_learn_weights(ctx.setting, o.learn_weights),
            init_seed=ctx.seed,
            init=o.init,
            init_scale=o.init_scale,
            init_sharpness=o.init_sharpness,
        )


class DeterministicAMAMethod(_AMAMethod):
    """Deterministic AMA: every deterministic allocation; weights and boosts learned."""

    name = "deterministic-ama"
    Options = DeterministicAMAOptions
    mechanism = DeterministicAMA

    def applicable(self, setting: Setting) -> str | None:
        return DeterministicAMA.applicable(setting)

    def build(self, ctx: FitContext) -> DeterministicAMA:
        return DeterministicAMA(
            ctx.setting, learn_weights=_learn_weights(ctx.setting, ctx.options.learn_weights)
        )
