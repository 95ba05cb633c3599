"""TEDI training (Ma et al., AAMAS 2026, Algorithm 1).

* M training profiles are drawn once (sample-average approximation, Program 6) with K
  Langevin chains per profile and bidder (``chains``; the paper's y, z are K = 2),
  initialised uniformly on [0, 1]^m and kept across iterations (continuous sampling,
  Section 3.3.5);
* each step maximises the covariance-trick surrogate of Eq. (12),
  ``L = 1/2 [u0(y) + u0(z) + sg(u0(y) - u0(z)) (ASW(y) - ASW(z))]``,
  ``ASW(a) = sum_i beta u_i(a_i)``, whose gradient is an unbiased estimate of the gradient
  of the smoothed objective (Eq. 9) when y, z ~ q^beta (Proposition 3.5, Eq. 11); with
  K > 2 samples the pair term becomes the sample covariance (:func:`covariance_loss`);
* then every chain of the batch moves ``langevin_steps`` projected Euler-Maruyama steps of
  Eq. (13), ``x <- clip(x + eta grad_x u_i(x) + sqrt(2 eta / beta) N(0, I), 0, 1)``,
  followed by ``metropolis_steps`` rounds of exact Metropolis-Hastings moves
  (:func:`metropolis`, our addition, see below);
* beta (the trainer's ``temperature``) rises and eta (``langevin_step``) and the learning
  rate fall on exponential / cosine schedules (line 15);
* the mechanism kept is the best of the validated ones (``keep_best``; validation is the
  exact mechanism on ``validation_samples`` held-out profiles, the start included).

With ``train_profiles == batch_size`` (default) every step uses all M profiles, as in
Algorithm 1; a larger pool is cycled through in minibatches.

Choices where the paper (its appendix with hyperparameters is not in our copy) leaves
them open:

* Metropolis moves.  Plain Eq. (13) cannot follow q^beta once beta is large: along a
  direction where u_i is nearly flat (types close to indifference, exactly where the
  covariance term carries the price signal) a chain needs of order beta / eta steps to
  spread, and it never crosses between "buy the bundle" and "buy nothing".  In our runs
  without the moves, the exact mechanism's validation objective fell as beta rose past a
  few hundred while the smoothed objective did not (on B-1x10 the chains still "bought"
  goods whose price had passed 1).  Coordinate and scale moves leave q^beta exactly
  invariant and relax such chains in a few dozen steps (the stale-chain test in
  ``tests/test_tedi.py``); ``--set metropolis_steps=0`` turns them off.
* beta 20 -> 200 on an exponential schedule for priors with a density, and
  ``recipe="atoms"`` (:data:`ATOMS_RECIPE`: 20 -> 1000, linear, no fee, Adam ending at
  1e-4) for priors with atoms.  The Bernoulli prior's optimum prices each good at its
  value, where the smoothing costs of order 1 / sqrt(beta) per good (d = 1 / sqrt(beta)
  is where ``(1 - d)(1 - 1 / (beta d))`` peaks): beta = 200 cannot pass 4.65 on B-1x10.
  On U-1x10 a beta in the hundreds while the learning rate was still above 1e-4 made the
  smoothed objective itself fall, the noise of the covariance term growing with beta;
  ``keep_best`` keeps the last good mechanism.
* ``init="auto"``: the start is the better of two classical menus the network can hold
  (:meth:`TEDI.resolve`): the grand bundle at Bundle-OPT's price, or Separable-OPT's
  threshold prices distilled into the skip term (:func:`distil_start`; per-good linear
  prices on priors with atoms).  On U-1x10 the pure bundle (3.448) is within 0.5% of the
  paper's TEDI (3.462), and our runs from the linear start ended no higher.  On
  U-3x10-cp1-cd0 no posted price independent of the others is profitable (the linear
  start loses money).  ``init="shared-bundle"`` starts from Shared-Bundle-OPT (1.52
  there, above Separable-OPT's 1.30) but training from it collapsed in every run we made
  (see :meth:`TEDI.resolve`).  Starting from a classical mechanism is our choice, the
  paper starts from its initialisation.
* the network has an entry-fee residual ``c(y) max_j x_j`` (``fee``, see
  :class:`~automech.mechanisms.learned.tedi.PartialGroupMaxNet`) next to the affine skip: it
  holds the grand bundle exactly.
* ``burn_in`` (default 0): rounds of chain moves at beta_0 before the first gradient step,
  so the first estimates come from chains near q^beta rather than from the uniform start.
* ``snapshots`` (default 1, Algorithm 1): S > 1 prices every chain at S points of its
  Metropolis rounds instead of the last one only (:meth:`TEDI.move_chains`); the
  estimator pairs independent chains only (:func:`covariance_loss`), so it stays
  unbiased however correlated the snapshots are.
* ``chain_start`` (default ``"uniform"``, Algorithm 1): ``"choice"`` starts every chain at
  its bidder's exact choice under the starting mechanism, the mode q^beta concentrates on
  as beta grows, so a run started at a large beta does not first have to carry its chains
  there from the uniform draw.
* Adam 3e-4 -> 1e-5 (cosine): with 1e-3 the mechanism oscillated.
* 1,000 steps, full batch of M = 2,048 profiles, K = 2 chains (K = 4 moved U-1x10 by less
  than the test noise in our runs).  From beta ~ 100 on, the estimate's noise, mostly the
  chains' in the covariance term, swamps its signal near a stationary point
  (``bench/tedi_gradient.py``).  On U-3x10-cp1-cd0, ``chains=8 temperature=50`` ended
  higher than the defaults (README, TEDI section), at about twice the training time.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from automech.errors import AutomechError
from automech.mechanisms.classical.cost_baselines import SeparableOPT, SharedBundleOPT, best_bundle_price
from automech.mechanisms.learned.tedi import TEDIMechanism
from automech.problems.setting import Setting
from automech.runs import Run
from automech.training.trainer import GradientMethod, schedule


def to_rows(chains: torch.Tensor) -> torch.Tensor:
    """Chains (K, B, n, d) as one row per (profile, bidder) with its K points: (B n, K, d),
    the layout the pricing network evaluates."""
    k, b, n, d = chains.shape
    return chains.permute(1, 2, 0, 3).reshape(b * n, k, d)


def from_rows(x: torch.Tensor, b: int, n: int) -> torch.Tensor:
    """Inverse of :func:`to_rows`: (B n, K, d) -> (K, B, n, d)."""
    return x.view(b, n, x.shape[1], -1).permute(2, 0, 1, 3)


def pricing_maps(mech: TEDIMechanism, values: torch.Tensor):
    """The pricing network's per-row affine maps for profiles ``values`` (B, n, m)."""
    b, n, _ = values.shape
    return mech.net.affine(mech.others(values).reshape(b * n, -1))


def principal_and_welfare(mech: TEDIMechanism, values: torch.Tensor, chains: torch.Tensor,
                          params, beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """u0 and ASW^beta (each (K, B)) of outcomes ``chains`` (K, B, n, m) at profiles
    ``values`` (B, n, m): one network pass prices all K outcomes and the null bundle."""
    k, b, n, m = chains.shape
    x = to_rows(chains)
    f = mech.net.evaluate(torch.cat([x, x.new_zeros(b * n, 1, m)], dim=1), params)
    pay = (f[:, :k] - f[:, k:]).view(b, n, k).permute(2, 0, 1)            # (K, B, n)
    vals = values.expand(k, -1, -1, -1)
    u0 = mech.setting.objective.value(vals.reshape(k * b, n, m), chains.reshape(k * b, n, m),
                                      pay.reshape(k * b, n)).view(k, b)
    asw = beta * ((vals * chains).sum(-1) - pay).sum(-1)
    return u0, asw


def covariance_loss(mech: TEDIMechanism, values: torch.Tensor, chains: torch.Tensor,
                    beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The covariance-trick surrogate (to be maximised) averaged over the batch, and the
    plain mean of u0, for samples of q^beta from K >= 2 independent chains per profile:
    ``chains`` (K, B, n, m), one sample per chain, or (K, S, B, n, m), S snapshots of
    each chain (:meth:`TEDI.move_chains`, option ``snapshots``).

    With ``c = sg(u0 - mean u0)`` and ``a = ASW - mean ASW`` (means over all K S samples
    of a profile), ``L = mean u0 + mean(c a) + 1 / (K (K - 1)) sum_k cbar_k abar_k``
    (``cbar_k``, ``abar_k``: chain k's means over its snapshots).  The last two terms
    are ``mean(u0 ASW) - 1 / (K (K - 1)) sum_{k != l} ubar_k ASWbar_l``, whose cross
    products pair independent chains only, so the gradient is ``mean grad u0`` plus an
    unbiased estimate of ``Cov(u0, grad ASW^beta)``, i.e. of Eq. (10), however
    correlated the snapshots of one chain are.  For S = 1 it is the unbiased sample
    covariance ``1 / (K - 1) sum_k c_k a_k``, and for K = 2 Eq. (12) exactly; more
    chains, or snapshots, lower the variance of the covariance term, which grows with
    beta."""
    if chains.dim() == 4:
        chains = chains.unsqueeze(1)
    k, s, b, n, m = chains.shape
    if k < 2:
        raise ValueError(f"the covariance trick needs at least 2 chains per profile, got {k}")
    u0, asw = principal_and_welfare(mech, values, chains.reshape(k * s, b, n, m),
                                    pricing_maps(mech, values), beta)
    u0, asw = u0.view(k, s, b), asw.view(k, s, b)
    centred = (u0 - u0.mean((0, 1))).detach()
    asw = asw - asw.mean((0, 1))
    covariance = ((centred * asw).mean((0, 1))
                  + (centred.mean(1) * asw.mean(1)).sum(0) / (k * (k - 1)))
    return (u0.mean((0, 1)) + covariance).mean(), u0.mean()


def langevin(mech: TEDIMechanism, values: torch.Tensor, chains: torch.Tensor,
             beta: float, eta: float, steps: int, generator: torch.Generator,
             params=None) -> torch.Tensor:
    """``steps`` projected Euler-Maruyama steps of Eq. (13) on every chain (K, B, n, m):
    ``x <- clip(x + eta grad_x u_i(x) + sqrt(2 eta / beta) N(0, I), 0, 1)``; the moved
    chains (all K priced in one network pass per step).  ``params``: the profiles'
    :func:`pricing_maps`, when the caller has them."""
    k, b, n, m = chains.shape
    with torch.no_grad():
        params = pricing_maps(mech, values) if params is None else params
        types = values.reshape(b * n, 1, m)
        x = to_rows(chains)
        for _ in range(steps):
            _, grad = mech.price_gradient(x, params)
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
            x = (x + eta * (types - grad) + (2 * eta / beta) ** 0.5 * noise).clamp(0.0, 1.0)
        return from_rows(x, b, n)


def reflect(x: torch.Tensor) -> torch.Tensor:
    """Fold values into [0, 1] by reflection at the bounds (period 2)."""
    r = torch.remainder(x, 2.0)
    return torch.where(r > 1.0, 2.0 - r, r)


def metropolis(mech: TEDIMechanism, values: torch.Tensor, chains: torch.Tensor,
               scales: torch.Tensor, beta: float, steps: int,
               generator: torch.Generator, params=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` rounds of two Metropolis-Hastings moves on every chain (K, B, n, m), each
    leaving q^beta(x) ~ exp(beta u_i(x)) on [0, 1]^m exactly invariant for given proposal
    sizes (the sizes adapt between moves, as in adaptive MCMC):

    1. a coordinate move: one coordinate j per chain, ``x_j' = reflect(x_j + s_j N(0, 1))``
       (symmetric on [0, 1]), accepted with probability ``min(1, exp(beta du))``;
    2. a scale move along the ray through 0: ``x' = lambda x``, ``lambda = exp(s_0 N(0, 1))``,
       rejected if it leaves the box, else accepted with probability
       ``min(1, lambda^m exp(beta du))`` (``lambda^m``: the Jacobian of the move).

    ``scales`` (K, B, n, m + 1) holds the proposal sizes per chain (s_1..s_m for the
    coordinates, s_0 last for the scale move), adapted by x1.25 on acceptance and x0.8 on
    rejection within [1e-4, 1], so a direction along which u_i is nearly flat gets steps
    of order 1 and a sharply concentrated one steps of order 1 / (beta |slope|).

    Why (our addition to Algorithm 1): Eq. (13) moves a chain by ``eta * slope`` plus noise
    of size ``sqrt(2 eta / beta)`` per step, so along a nearly flat direction (a type close
    to indifference, where the covariance term of the gradient lives) a chain needs of
    order ``beta / eta`` steps to spread out, and it cannot cross from "buy the bundle"
    (x near 1) to "buy nothing" (x near 0) at all once beta is large.  The estimator then
    sees buyers that q^beta no longer has: in our runs that drove prices past the values
    on B-1x10.  Coordinate moves relax separable
    directions, scale moves the bundle direction, in a few dozen steps.  ``params`` as in
    :func:`langevin`.  Returns the moved chains and the adapted scales."""
    k, b, n, m = chains.shape
    rows = b * n
    grow = torch.tensor(1.25, dtype=chains.dtype)
    shrink = torch.tensor(0.8, dtype=chains.dtype)
    with torch.no_grad():
        params = pricing_maps(mech, values) if params is None else params
        types = values.reshape(rows, 1, m)
        x, sc = to_rows(chains), to_rows(scales)

        def utility(point: torch.Tensor) -> torch.Tensor:
            return (types * point).sum(-1) - mech.net.evaluate(point, params)

        def move(proposal, log_ratio, u, col):
            nonlocal x, sc
            u_new = utility(proposal)
            noise = torch.rand((rows, k), generator=generator, dtype=x.dtype)
            accept = torch.log(noise) < beta * (u_new - u) + log_ratio
            x = torch.where(accept.unsqueeze(-1), proposal, x)
            factor = torch.where(accept, grow, shrink).unsqueeze(-1)
            sc = sc.scatter(-1, col, (sc.gather(-1, col) * factor).clamp(1e-4, 1.0))
            return torch.where(accept, u_new, u)

        u = utility(x)
        last = torch.full((rows, k, 1), m, dtype=torch.long)
        for _ in range(steps):
            j = torch.randint(m, (rows, k, 1), generator=generator)
            step = sc.gather(-1, j) * torch.randn((rows, k, 1), generator=generator,
                                                  dtype=x.dtype)
            u = move(x.scatter(-1, j, reflect(x.gather(-1, j) + step)), 0.0, u, j)
            log_lam = sc[..., m] * torch.randn((rows, k), generator=generator, dtype=x.dtype)
            proposal = x * torch.exp(log_lam).unsqueeze(-1)
            inside = torch.where(proposal.amax(-1) <= 1.0, 0.0, -math.inf).to(x.dtype)
            u = move(proposal.clamp(max=1.0), m * log_lam + inside, u, last)
        return from_rows(x, b, n), from_rows(sc, b, n)


#: Options that ``recipe="atoms"`` puts over the defaults, and ``recipe="auto"`` on priors
#: with atoms (Bernoulli, discrete): the optimum there leaves types exactly indifferent
#: (B-1x10: every good priced at the value 1), so the smoothing must end sharp and stay
#: sharp for long -- revenue lost to it is of order 1 / sqrt(beta) per good, against
#: log(beta) / beta for a prior with a density -- and the entry fee, which the smoothed
#: objective favours there, is left out.
ATOMS_RECIPE: dict[str, Any] = {"temperature_final": 1000.0, "temperature_schedule": "linear",
                                "lr_final": 1e-4, "fee": False}
RECIPES = ("auto", "continuous", "atoms")
#: Starting menus of the network (:meth:`TEDI.resolve`).
INITS = ("auto", "linear", "bundle", "shared-bundle", "separable")
#: First points of the Langevin chains: Algorithm 1's uniform draw on [0, 1]^m, or every
#: bidder's exact choice under the starting mechanism (the mode of q^beta as beta grows).
CHAIN_STARTS = ("uniform", "choice")
#: Starts distilled from a classical mechanism before training (:func:`distil_start`),
#: with the number of Adam steps ``init_steps=0`` gives them.
DISTILLED = {"shared-bundle": 6000, "separable": 2000}
#: Seed of the prior profiles on which ``init="auto"`` compares the starts.
INIT_SEED = 20_240_601
#: Raw entry-fee bias giving softplus ~ 1e-6: the fee off for the separable start.
FEE_OFF = -14.0


def distil_start(mech: TEDIMechanism, start: str, steps: int, batch_size: int, lr: float,
                 rng: np.random.Generator) -> float:
    """Fit ``mech``'s pricing network to a classical mechanism's threshold prices given
    ``t_-i`` by Adam on the squared error, step size ``lr`` on a cosine to 0,
    ``batch_size`` fresh prior profiles a step.  Returns the final root-mean-square error
    of the fitted thresholds.

    * ``start="separable"``: the skip term ``D(t_-i)`` is fitted to Separable-OPT's
      per-good thresholds ``theta(t_-i)`` (:meth:`SeparableOPT.thresholds`, capped at the
      largest value: a good nobody can be served is priced out of reach), with the entry
      fee switched off (softplus ~ 1e-6).  The network then prices a bundle ``x`` at about
      ``theta(t_-i) . x`` (fitting the prices themselves, GroupMax part included, started
      lower in our probes).
    * ``start="shared-bundle"``: the entry fee ``c(t_-i)`` is fitted to
      Shared-Bundle-OPT's bundle thresholds (:meth:`SharedBundleOPT.thresholds`, capped at
      the largest bundle value) and the skip term to 0; only the PAN trunk and these two
      heads move (the GroupMax heads play no part), and the fee head is first redrawn at
      the default scale of a linear layer, ``U(-1/sqrt(width), 1/sqrt(width))``: at the
      network's small head scale the fit sat at the targets' mean for thousands of steps
      in our probes.  ``c max_j x_j`` prices the grand bundle at ``c`` and leaves every
      other bundle dominated, so the network sells what Shared-Bundle-OPT sells, up to
      the fit.  The bidders' thresholds must agree for that: a bidder served alone pays
      about 4 of the grand bundle's cost of 10 on U-3x10-cp1-cd0.

    Either way the small convex GroupMax part the network starts with stays on top."""
    setting, net = mech.setting, mech.net
    high = float(np.max(setting.prior.support()[1]))
    params = list(net.parameters())
    if start == "separable":
        classical, cap = SeparableOPT(setting), high
        if net.c_head is not None:
            with torch.no_grad():
                net.c_head.bias.fill_(FEE_OFF)
    elif start == "shared-bundle":
        classical, cap = SharedBundleOPT(setting), high * setting.num_items
        head = net.c_head
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        with torch.no_grad():
            bound = 1.0 / math.sqrt(head.in_features)
            for tensor in (head.weight, head.bias):
                tensor.copy_((2 * torch.rand(tensor.shape, generator=gen) - 1) * bound)
        params = [*net.trunk.parameters(), *head.parameters(), *net.d_heads.parameters()]
    else:
        raise ValueError(f"no distilled start {start!r}")
    optimizer = torch.optim.Adam(params, lr=lr)
    error = float("nan")
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = schedule("cosine", lr, 0.0, step, steps)
        values = torch.as_tensor(setting.sample(batch_size, rng), dtype=mech.dtype)
        with torch.no_grad():
            target = classical.thresholds(values.double()).clamp(max=cap).to(mech.dtype)
        others = mech.others(values)
        slope, fee = net.residual_heads(others.reshape(-1, others.shape[-1]))
        slope = slope[:, 0, :]                                     # (B n, m); n = 1: shared
        if start == "separable":
            fit = ((slope - target.reshape(-1, target.shape[-1])) ** 2).mean()
            loss = fit
        else:
            fit = ((fee[:, 0] - target.reshape(-1)) ** 2).mean()
            loss = fit + (slope ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        error = float(fit.detach().sqrt())
    return error


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
        "langevin_step_final": 0.002,
        "langevin_steps": 10,         # S
        "chains": 2,                  # K samples of q^beta per profile (2: Eq. 12)
        "metropolis_steps": 10,       # rounds of exact Metropolis moves after Langevin
        "snapshots": 1,               # S samples per chain and step, spread over those rounds
        "burn_in": 0,                 # rounds of chain moves before the first step
        "chain_start": "uniform",     # chains' first points: "uniform" (Algorithm 1) or "choice"
        "groups": [16, 16],
        "group_size": 4,
        "pan_hidden": 64,
        "pan_layers": 2,
        "skip": True,
        "fee": True,
        "init": "auto",               # one of INITS; "auto": :meth:`resolve`
        "init_steps": 0,              # Adam steps of a distilled start; 0: DISTILLED[init]
        "init_lr": 1e-2,              # ... their step size (cosine to 0)
        "recipe": "auto",             # "continuous", "atoms" or "auto" (see ATOMS_RECIPE)
        "solver_steps": 300,
        "validate_every": 200,
        "validation_samples": 8192,
        "checkpoint_every": 250,
        "keep_best": True,
    }

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def applicable(self, setting: Setting) -> str | None:
        return TEDIMechanism.applicable(setting)

    def resolve(self, setting: Setting, options: dict[str, Any]) -> dict[str, Any]:
        """``recipe="auto"`` applies :data:`ATOMS_RECIPE` on priors with atoms.
        ``init="auto"`` starts from the better of two classical menus the network can
        hold at initialisation, compared by their principal utility on 2^14 prior
        profiles (the first listed wins ties):

        * ``"bundle"``: the grand bundle at Bundle-OPT's price (the fee term alone), when
          some bundle price is profitable;
        * ``"separable"``: Separable-OPT's per-good threshold prices distilled into the
          skip term (:func:`distil_start`).  On priors with atoms the thresholds sit
          exactly on the atoms (B-1x10: every good at price 1 = the value), which leaves
          the types indifferent and the exact mechanism's choice to the solver's ties;
          there the per-good linear prices at half the largest value (``"linear"``)
          stand in for it.

        ``"shared-bundle"`` (Shared-Bundle-OPT's grand-bundle prices given ``t_-i`` in the
        entry fee) is only used on request: on U-3x10-cp1-cd0 it starts higher than the
        separable start (1.41 against 1.21 on validation) but every training run from it
        lost money within 200 steps, for beta_0 = 20, 100 and 200 (README, TEDI section;
        ``bench/tedi.py``'s ``tedi_variants`` rows), so ``keep_best`` returned the start
        itself, below what training from the separable start reaches (1.44)."""
        if options["recipe"] not in RECIPES:
            raise AutomechError(f"tedi: option 'recipe' must be one of {RECIPES}, "
                                f"got {options['recipe']!r}")
        recipe = options["recipe"]
        if recipe == "auto":
            recipe = "atoms" if setting.prior.atoms(0) is not None else "continuous"
        options = {**options, **(ATOMS_RECIPE if recipe == "atoms" else {}), "recipe": recipe}
        if options["init"] not in INITS:
            raise AutomechError(f"tedi: option 'init' must be one of {INITS}, "
                                f"got {options['init']!r}")
        if options["init"] in ("bundle", "shared-bundle") and not options["fee"]:
            raise AutomechError(f"tedi: init={options['init']!r} needs the fee term (fee=true)")
        for key in ("init_steps", "burn_in"):
            if options[key] < 0:
                raise AutomechError(f"tedi: option {key!r} must be >= 0, got {options[key]}")
        snaps, rounds = options["snapshots"], options["metropolis_steps"]
        if snaps < 1 or (snaps > 1 and (rounds < snaps or rounds % snaps)):
            raise AutomechError(f"tedi: option 'snapshots' must be 1 or divide "
                                f"metropolis_steps ({rounds}) into equal parts, got {snaps}")
        if options["chain_start"] not in CHAIN_STARTS:
            raise AutomechError(f"tedi: chain_start must be one of {', '.join(CHAIN_STARTS)}, "
                                f"got {options['chain_start']!r}")
        if options["init"] == "separable" and not options["skip"]:
            raise AutomechError("tedi: init='separable' needs the skip term (skip=true)")
        if options["init"] == "auto":
            options["init"] = self.best_start(setting, options)
        return options

    @staticmethod
    def best_start(setting: Setting, options: dict[str, Any]) -> str:
        """The ``init="auto"`` choice of :meth:`resolve`."""
        values = torch.as_tensor(setting.sample(2**14, np.random.default_rng(INIT_SEED)))

        def utility(mechanism) -> float:
            with torch.no_grad():
                alloc, pay = mechanism(values)
            return float(setting.objective.value(values, alloc, pay).mean())

        earns = {}
        price, bundle = best_bundle_price(setting)
        if options["fee"] and math.isfinite(price):
            earns["bundle"] = bundle
        if options["skip"]:
            earns["separable"] = utility(SeparableOPT(setting))
        if not earns:
            return "linear"
        best = max(earns, key=earns.get)
        if best == "separable" and setting.prior.atoms(0) is not None:
            return "linear"
        return best

    def build(self, setting: Setting, options: dict[str, Any], seed: int) -> TEDIMechanism:
        self.state = {"seed": seed}
        start = {}
        if options["init"] == "bundle":
            start = {"init_slope": 0.0, "init_fee": best_bundle_price(setting)[0]}
        return TEDIMechanism(setting, groups=tuple(options["groups"]),
                             group_size=options["group_size"], pan_hidden=options["pan_hidden"],
                             pan_layers=options["pan_layers"], skip=options["skip"],
                             fee=options["fee"], solver_steps=options["solver_steps"],
                             init_seed=seed, **start)

    def initialise(self, mechanism: TEDIMechanism, setting: Setting, options: dict[str, Any],
                   seed: int, run: Run, progress: bool = False) -> None:
        """Distilled starts (``init="separable"`` or ``"shared-bundle"``): fit the pricing
        network to the classical mechanism's threshold prices (:func:`distil_start`) on
        fresh prior profiles; the fit's root-mean-square error goes to ``init.json``."""
        if options["init"] not in DISTILLED:
            return
        steps = options["init_steps"] or DISTILLED[options["init"]]
        rmse = distil_start(mechanism, options["init"], steps, options["batch_size"],
                            options["init_lr"], np.random.default_rng([seed, 3]))
        run.write_json("init.json", {"init": options["init"], "threshold_rmse": rmse,
                                     "steps": steps})

    def sample(self, mechanism, setting, options, rng, step) -> torch.Tensor:
        st = self.state
        if "pool" not in st:
            size = options["train_profiles"] or options["batch_size"]
            st["pool"] = torch.as_tensor(setting.sample(size, rng), dtype=mechanism.dtype)
            gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
            if options["chain_start"] == "choice":
                with torch.no_grad():
                    choice, _ = mechanism(st["pool"])
                st["chains"] = choice.expand(options["chains"], -1, -1, -1).clone()
            else:
                st["chains"] = torch.rand((options["chains"], *st["pool"].shape), generator=gen,
                                          dtype=mechanism.dtype)
            st["scales"] = torch.full((*st["chains"].shape[:-1], st["chains"].shape[-1] + 1),
                                      0.1, dtype=mechanism.dtype)
            st["gen"] = gen
            st["samples"] = st["chains"].unsqueeze(1).repeat(1, options["snapshots"], 1, 1, 1)
            for _ in range(options["burn_in"]):
                self.move_chains(mechanism, options, torch.arange(size), options["temperature"],
                                 options["langevin_step"])
        size, batch = len(st["pool"]), min(options["batch_size"], len(st["pool"]))
        start = (step * batch) % size
        st["idx"] = (torch.arange(batch) + start) % size
        st["step"] = step
        return st["pool"][st["idx"]]

    def loss(self, mechanism, values, options, temperature, step):
        st = self.state
        st["beta"] = temperature
        surrogate, u0 = covariance_loss(mechanism, values, st["samples"][:, :, st["idx"]],
                                        temperature)
        return -surrogate, {"train_objective": float(u0.detach())}

    def after_step(self, mechanism, options) -> None:
        st = self.state
        eta = schedule("exponential", options["langevin_step"], options["langevin_step_final"],
                       st["step"], options["steps"])
        self.move_chains(mechanism, options, st["idx"], st["beta"], eta)

    def move_chains(self, mechanism, options, idx: torch.Tensor, beta: float,
                    eta: float) -> None:
        """One round of chain moves for the pool profiles ``idx``: ``langevin_steps``
        steps of Eq. (13), then ``metropolis_steps`` Metropolis rounds in ``snapshots``
        equal parts; the chains' positions after each part are the next step's samples
        (``state["samples"]``, (K, S, M, n, m)).  S > 1 is our addition: Algorithm 1 uses
        the last position only (S = 1), and the chain moves cost most of a step (about
        85% on U-3x10 with K = 8), while pricing S times more samples in the loss costs
        little, so the covariance term gets S correlated samples per chain for the price
        of one (:func:`covariance_loss` pairs only independent chains, so it stays
        unbiased)."""
        st = self.state
        values = st["pool"][idx]
        with torch.no_grad():
            params = pricing_maps(mechanism, values)
        chains = langevin(mechanism, values, st["chains"][:, idx], beta, eta,
                          options["langevin_steps"], st["gen"], params)
        scales, snaps = st["scales"][:, idx], options["snapshots"]
        samples = []
        for _ in range(snaps):
            if options["metropolis_steps"]:
                chains, scales = metropolis(mechanism, values, chains, scales, beta,
                                            options["metropolis_steps"] // snaps, st["gen"],
                                            params)
            samples.append(chains)
        st["chains"][:, idx], st["scales"][:, idx] = chains, scales
        st["samples"][:, :, idx] = torch.stack(samples, dim=1)

    def training_state(self, mechanism) -> dict[str, Any]:
        st = self.state
        return {"pool": st["pool"], "chains": st["chains"], "scales": st["scales"],
                "samples": st["samples"], "gen": st["gen"].get_state()}

    def load_training_state(self, mechanism, state) -> None:
        gen = torch.Generator()
        gen.set_state(state["gen"])
        self.state.update(pool=state["pool"], chains=state["chains"], scales=state["scales"],
                          samples=state["samples"], gen=gen)
