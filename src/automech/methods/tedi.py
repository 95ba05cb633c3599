"""TEDI training (Ma et al., AAMAS 2026, Algorithm 1).

* M training profiles are drawn once (sample-average approximation, Program 6) with two
  Langevin chains y, z per profile and bidder, initialised uniformly on [0, 1]^m and kept
  across iterations (continuous sampling, Section 3.3.5);
* each step maximises the covariance-trick surrogate of Eq. (12),
  ``L = 1/2 [u0(y) + u0(z) + sg(u0(y) - u0(z)) (ASW(y) - ASW(z))]``,
  ``ASW(a) = sum_i beta u_i(a_i)``, whose gradient is an unbiased estimate of the gradient
  of the smoothed objective (Eq. 9) when y, z ~ q^beta (Proposition 3.5, Eq. 11);
* then every chain of the batch moves ``langevin_steps`` projected Euler-Maruyama steps of
  Eq. (13), ``x <- clip(x + eta grad_x u_i(x) + sqrt(2 eta / beta) N(0, I), 0, 1)``;
* beta (the trainer's ``temperature``) rises and eta (``langevin_step``) and the learning
  rate fall on exponential / cosine schedules (line 15).

With ``train_profiles == batch_size`` (default) every step uses all M profiles, as in
Algorithm 1; a larger pool is cycled through in minibatches.

Choices where the paper (its appendix with hyperparameters is not in our copy) leaves
them open, measured on U-1x10-cp0-cd0 (validation revenue on 2,048 profiles; the pure
bundle earns 3.448):

* the network has an entry-fee residual ``c(y) max_j x_j`` (``fee``, see
  :class:`~automech.mechanisms.tedi.PartialGroupMaxNet`) next to the affine skip: with
  it validation reached 3.36 after 100 steps instead of 3.08, and 3.40 by step 300;
* Adam 3e-4 -> 1e-5 (cosine) instead of 1e-3 -> 1e-4: with 1e-3 the mechanism
  oscillated (validation 2.87-3.31 between validations 100 steps apart);
* beta 20 -> 200 and Langevin steps 0.02 -> 0.005 with S = 10 steps per iteration:
  with beta rising to 300-1000 and S = 5, validation fell in the last third of training
  (3.30 -> 2.89), which we attribute to chains that no longer track q^beta when its
  concentration outpaces the Langevin step (the estimator then follows stale samples).
* 1,000 steps, full batch of M = 2,048 profiles.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from automech.mechanisms.tedi import TEDIMechanism
from automech.problems.setting import Setting
from automech.training.trainer import GradientMethod, schedule


def principal_and_welfare(mech: TEDIMechanism, values: torch.Tensor, x: torch.Tensor,
                          params, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """u0(x) (B,) and ASW^beta(x) (B,) for profiles ``values`` (B, n, m), outcomes x."""
    b, n, m = values.shape
    pay = mech.prices(x.reshape(b * n, 1, m), params).view(b, n)
    u0 = mech.setting.objective.value(values, x, pay)
    asw = beta * ((values * x).sum(-1) - pay).sum(-1)
    return u0, asw


def covariance_loss(mech: TEDIMechanism, values: torch.Tensor, y: torch.Tensor,
                    z: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (12) averaged over the batch (to be maximised), and the plain mean of u0."""
    b, n, m = values.shape
    params = mech.net.affine(mech.others(values).reshape(b * n, -1))
    u0y, asw_y = principal_and_welfare(mech, values, y, params, beta)
    u0z, asw_z = principal_and_welfare(mech, values, z, params, beta)
    surrogate = 0.5 * (u0y + u0z + (u0y - u0z).detach() * (asw_y - asw_z))
    return surrogate.mean(), 0.5 * (u0y + u0z).mean()


def langevin(mech: TEDIMechanism, values: torch.Tensor, chains: list[torch.Tensor],
             beta: float, eta: float, steps: int, generator: torch.Generator) -> None:
    """Projected Euler-Maruyama steps of Eq. (13) on each chain (B, n, m), in place."""
    b, n, m = values.shape
    with torch.no_grad():
        params = mech.net.affine(mech.others(values).reshape(b * n, -1))
        types = values.reshape(b * n, 1, m)
        for x in chains:
            flat = x.view(b * n, 1, m)
            for _ in range(steps):
                _, grad = mech.price_gradient(flat, params)
                noise = torch.randn(flat.shape, generator=generator, dtype=flat.dtype)
                flat.copy_((flat + eta * (types - grad)
                            + (2 * eta / beta) ** 0.5 * noise).clamp(0.0, 1.0))


class TEDI(GradientMethod):
    name = "tedi"
    defaults = {
        **GradientMethod.defaults,
        "steps": 1000,
        "batch_size": 2048,
        "train_profiles": 0,          # M; 0: equal to batch_size (full batch, Algorithm 1)
        "lr": 3e-4,
        "lr_final": 1e-5,
        "temperature": 20.0,          # beta_0 (inverse temperature of q^beta)
        "temperature_final": 200.0,
        "temperature_schedule": "exponential",
        "langevin_step": 0.02,        # eta_0
        "langevin_step_final": 0.005,
        "langevin_steps": 10,         # S
        "groups": [16, 16],
        "group_size": 4,
        "pan_hidden": 64,
        "pan_layers": 2,
        "skip": True,
        "fee": True,
        "solver_steps": 300,
        "validate_every": 250,
        "validation_samples": 2048,
        "checkpoint_every": 250,
    }

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def applicable(self, setting: Setting) -> str | None:
        return TEDIMechanism.applicable(setting)

    def build(self, setting: Setting, options: dict[str, Any], seed: int) -> TEDIMechanism:
        self.state = {"seed": seed}
        return TEDIMechanism(setting, groups=tuple(options["groups"]),
                             group_size=options["group_size"], pan_hidden=options["pan_hidden"],
                             pan_layers=options["pan_layers"], skip=options["skip"],
                             fee=options["fee"], solver_steps=options["solver_steps"],
                             init_seed=seed)

    def sample(self, mechanism, setting, options, rng, step) -> torch.Tensor:
        st = self.state
        if "pool" not in st:
            size = options["train_profiles"] or options["batch_size"]
            st["pool"] = torch.as_tensor(setting.sample(size, rng), dtype=mechanism.dtype)
            gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
            st["y"] = torch.rand(st["pool"].shape, generator=gen, dtype=mechanism.dtype)
            st["z"] = torch.rand(st["pool"].shape, generator=gen, dtype=mechanism.dtype)
            st["gen"] = gen
        size, batch = len(st["pool"]), min(options["batch_size"], len(st["pool"]))
        start = (step * batch) % size
        st["idx"] = (torch.arange(batch) + start) % size
        st["step"] = step
        return st["pool"][st["idx"]]

    def loss(self, mechanism, values, options, temperature, step):
        st = self.state
        st["beta"] = temperature
        surrogate, u0 = covariance_loss(mechanism, values, st["y"][st["idx"]],
                                        st["z"][st["idx"]], temperature)
        return -surrogate, {"train_objective": float(u0.detach())}

    def after_step(self, mechanism, options) -> None:
        st = self.state
        eta = schedule("exponential", options["langevin_step"], options["langevin_step_final"],
                       st["step"], options["steps"])
        idx = st["idx"]
        y, z = st["y"][idx], st["z"][idx]
        langevin(mechanism, st["pool"][idx], [y, z], st["beta"], eta,
                 options["langevin_steps"], st["gen"])
        st["y"][idx], st["z"][idx] = y, z

    def training_state(self, mechanism) -> dict[str, Any]:
        st = self.state
        return {"pool": st["pool"], "y": st["y"], "z": st["z"],
                "gen": st["gen"].get_state()}

    def load_training_state(self, mechanism, state) -> None:
        gen = torch.Generator()
        gen.set_state(state["gen"])
        self.state.update(pool=state["pool"], y=state["y"], z=state["z"], gen=gen)
