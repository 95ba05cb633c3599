"""Lottery and deterministic affine maximizer auctions, trained by gradient ascent.

Curry, Sandholm and Dickerson (lottery-affine-maximizer-auctions.txt), Section 5: the
weights, boosts and (lottery AMA) allocations are learned on the softmax surrogate of the
mechanism; the exact AMA (argmax) is what is validated, saved and evaluated, and it is
exactly DSIC and IR for every parameter value
(:mod:`automech.mechanisms.learned.affine_maximizer`).

Deviations from the paper's recipe, all for speed on small CPUs (measured in
``bench/README.md`` and ``bench/results/ama.json``); the mechanism class is the paper's:

* start: ``init="deterministic"`` puts every feasible deterministic allocation (when they
  fit) in the starting set next to random ones (``init="random"`` is the paper's), and the
  boosts start at ``-r * (quantity allocated)`` (``init_reserve``; "auto" takes the
  smallest r on a grid whose exact revenue is within 5% of the best: near-equal starts
  with more trade give more training signal), so that 512 allocations and 1,000 steps of
  8,192 profiles do what took the paper 4,096 allocations and 9,000 steps of 32,768;
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

from typing import Any

import numpy as np
import torch

from automech.errors import AutomechError
from automech.mechanisms.learned.affine_maximizer import (
    AffineMaximizer,
    DeterministicAMA,
    LotteryAMA,
    symmetric_prior,
)
from automech.problems.finite_types import finite_types
from automech.problems.priors import DiscretePrior, IndependentDiscretePrior
from automech.problems.setting import Setting
from automech.training.trainer import GradientMethod

#: Options shared by both AMA methods (on top of the trainer's).
_AMA_DEFAULTS: dict[str, Any] = {
    "learn_weights": "auto",      # true, false, or "auto": learned unless the prior is symmetric
    "prune_after": 0,             # first pruning step (0: never prune)
    "prune_every": 100,           # steps between prunings after that
    "prune_threshold": 1e-3,      # softmax mass below which an allocation is dropped
    "prune_samples": 16384,       # fresh profiles on which the mass is measured
    "init_reserve": "auto",       # boosts start at -r * (quantity allocated): a number r,
                                  # or "auto" (smallest r within 5% of the best on a grid)
    "softmax_gap": 0.0,           # >0: per batch, drop allocations with softmax weight
                                  # below exp(-softmax_gap) everywhere (speed)
    "fused": True,                # hand-written backward of the surrogate (speed)
    "exact_expectation": "auto",  # discrete priors: train on every profile weighted by its
                                  # probability instead of batch_size samples ("auto": when
                                  # there are at most MAX_ENUMERATED_PROFILES profiles)
}

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


def _learn_weights(setting: Setting, option: Any) -> bool:
    if isinstance(option, bool):
        return option
    if option == "auto":
        return not symmetric_prior(setting)
    raise AutomechError(f"option 'learn_weights' must be true, false or \"auto\", got {option!r}")


class _AMAMethod(GradientMethod):
    """The trainer's loop plus scheduled pruning of unused allocations."""

    @staticmethod
    def prepare(mech: AffineMaximizer, options: dict[str, Any], seed: int) -> AffineMaximizer:
        """Training switches and the starting boosts (``init_reserve``)."""
        mech.init_seed_ = seed
        mech.softmax_gap = float(options["softmax_gap"])
        mech.fused = bool(options["fused"])
        mech.exact_profiles_ = None
        exact = options["exact_expectation"]
        if exact not in (True, False, "auto"):
            raise AutomechError(f"option 'exact_expectation' must be true, false or "
                                f"\"auto\", got {exact!r}")
        if exact:
            found = enumerated_profiles(mech.setting)
            if found is None and exact is True:
                raise AutomechError("exact_expectation needs a discrete prior with at most "
                                    f"{MAX_ENUMERATED_PROFILES} profiles")
            if found is not None:
                mech.exact_profiles_ = tuple(torch.as_tensor(a, dtype=mech.dtype)
                                             for a in found)
        reserve = options["init_reserve"]
        if reserve == "auto":
            bids = torch.as_tensor(mech.setting.sample(8192, np.random.default_rng([seed, 3])),
                                   dtype=mech.dtype)
            mech.tune_reserve(bids)
        elif isinstance(reserve, (int, float)) and not isinstance(reserve, bool):
            mech.reset_boosts(float(reserve))
        else:
            raise AutomechError(f"option 'init_reserve' must be a number or \"auto\", "
                                f"got {reserve!r}")
        return mech

    def _step(self, mechanism, optimizer, values, options, temperature, step):
        first, every = options["prune_after"], max(1, options["prune_every"])
        if first > 0 and step >= first and (step - first) % every == 0:
            self.prune(mechanism, options, temperature, step)
        exact = getattr(mechanism, "exact_profiles_", None)
        if exact is None:
            metrics = super()._step(mechanism, optimizer, values, options, temperature, step)
        else:
            metrics = self._exact_step(mechanism, optimizer, exact, temperature)
        metrics["allocations_active"] = int(mechanism.active.sum())
        return metrics

    def _exact_step(self, mechanism, optimizer, exact, temperature) -> dict[str, float]:
        """One step on the exact expectation over a discrete prior's profiles."""
        profiles, probs = (t.to(mechanism.device) for t in exact)
        optimizer.zero_grad(set_to_none=True)
        alloc, pay = mechanism.relaxed(profiles, temperature)
        objective = (mechanism.setting.objective.value(profiles, alloc, pay) * probs).sum()
        (-objective).backward()
        optimizer.step()
        self.after_step(mechanism, {})
        value = float(objective.detach())
        return {"loss": -value, "train_objective": value}

    @staticmethod
    def prune(mechanism: AffineMaximizer, options: dict[str, Any], temperature: float,
              step: int) -> int:
        """Drop allocations with no softmax mass on fresh profiles (seeded by the step, so
        a resumed run prunes as an uninterrupted one would), or on every profile of a
        discrete prior trained on exactly."""
        exact = getattr(mechanism, "exact_profiles_", None)
        if exact is not None:
            bids = exact[0].to(mechanism.device)
        else:
            rng = np.random.default_rng([getattr(mechanism, "init_seed_", 0), 2, step])
            bids = torch.as_tensor(mechanism.setting.sample(options["prune_samples"], rng),
                                   dtype=mechanism.dtype, device=mechanism.device)
        return mechanism.prune(bids, temperature, options["prune_threshold"])


#: The paper's start (random allocations, zero boosts), which ``recipe="paper"`` puts
#: over the fast defaults -- and ``recipe="auto"`` on priors small enough to train on
#: their exact expectation (finite type spaces such as the spherical setting).  There the
#: fast start (every deterministic allocation plus a tuned reserve) stays near the
#: deterministic AMA it starts as: measured in ``bench/README.md`` (spherical section).
FINITE_TYPE_RECIPE = {"init": "random", "allocations": 2048, "init_reserve": 0.0, "lr": 0.03}


class LotteryAMAMethod(_AMAMethod):
    name = "lottery-ama"
    defaults = {
        **GradientMethod.defaults,
        **_AMA_DEFAULTS,
        "recipe": "auto",             # "fast", "paper" or "auto" (see FINITE_TYPE_RECIPE)
        "allocations": 512,           # learned allocations at the start (paper: 2048-4096)
        "init": "deterministic",      # or "random" (the paper's)
        "init_scale": 1.0,            # std of the random logits
        "init_sharpness": 5.0,        # logit margin of the deterministic starts
        "steps": 1000,                # paper: 9,000
        "batch_size": 8192,           # paper: 32,768
        "chunk_size": 2048,
        "lr": 0.01,                   # paper: 0.01 (Adam)
        "lr_final": 0.001,
        "temperature": 100.0,         # paper: 100
        "temperature_final": 100.0,
        "validate_every": 100,
        "prune_after": 50,
        "prune_every": 50,
        "prune_threshold": 0.01,
    }

    def applicable(self, setting: Setting) -> str | None:
        return LotteryAMA.applicable(setting)

    def resolve(self, setting: Setting, options: dict[str, Any]) -> dict[str, Any]:
        """``recipe``: "paper" puts :data:`FINITE_TYPE_RECIPE` over the options, "auto"
        picks "paper" on priors with few enough profiles to enumerate, else "fast"."""
        recipe = options["recipe"]
        if recipe not in ("auto", "fast", "paper"):
            raise AutomechError(f"option 'recipe' must be \"auto\", \"fast\" or \"paper\", "
                                f"got {recipe!r}")
        if recipe == "auto":
            recipe = "paper" if enumerated_profiles(setting) is not None else "fast"
        extra = FINITE_TYPE_RECIPE if recipe == "paper" else {}
        return {**options, **extra, "recipe": recipe}

    def build(self, setting: Setting, options: dict[str, Any], seed: int) -> LotteryAMA:
        mech = LotteryAMA(setting, allocations=options["allocations"],
                          learn_weights=_learn_weights(setting, options["learn_weights"]),
                          init_seed=seed, init=options["init"],
                          init_scale=options["init_scale"],
                          init_sharpness=options["init_sharpness"])
        return self.prepare(mech, options, seed)


class DeterministicAMAMethod(_AMAMethod):
    name = "deterministic-ama"
    defaults = {
        **GradientMethod.defaults,
        **_AMA_DEFAULTS,
        "steps": 1000,
        "batch_size": 8192,
        "lr": 0.01,
        "lr_final": 0.001,
        "temperature": 100.0,
        "temperature_final": 100.0,
        "validate_every": 100,
    }

    def applicable(self, setting: Setting) -> str | None:
        return DeterministicAMA.applicable(setting)

    def build(self, setting: Setting, options: dict[str, Any], seed: int) -> DeterministicAMA:
        mech = DeterministicAMA(setting,
                                learn_weights=_learn_weights(setting, options["learn_weights"]))
        return self.prepare(mech, options, seed)
