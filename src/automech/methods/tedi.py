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
  Eq. (13), ``x <- clip(x + eta grad_x u_i(x) + sqrt(2 eta / beta) N(0, I), 0, 1)``;
* beta (the trainer's ``temperature``) rises and eta (``langevin_step``) and the learning
  rate fall on schedules (line 15);
* the mechanism kept is the best of the validated ones (``keep_best``; validation is the
  exact mechanism on ``validation_samples`` held-out profiles, the start included).

With ``train_profiles == batch_size`` (default) every step uses all M profiles, as in
Algorithm 1; a larger pool is cycled through in minibatches.

Our additions to Algorithm 1 (the choices and what was measured for each are in
``docs/results.md``, "TEDI: choices and what was measured"):

* after the Langevin steps, ``metropolis_steps`` rounds of exact Metropolis-Hastings moves
  (:func:`metropolis`), which keep the chains on q^beta where Eq. (13) alone cannot once
  beta is large;
* a classical start (``init="auto"``, :meth:`TEDI.resolve`): the grand bundle at
  Bundle-OPT's price, or Separable-OPT's thresholds distilled into the network
  (:func:`distil_start`);
* an entry-fee residual ``c(y) max_j x_j`` in the network (``fee``, see
  :class:`~automech.mechanisms.learned.tedi.PartialGroupMaxNet`), which holds the grand
  bundle exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from automech.errors import OptionError
from automech.mechanisms.classical.cost_baselines import SeparableOPT, best_bundle_price
from automech.mechanisms.learned.tedi import TEDIMechanism
from automech.problems.setting import Setting
from automech.training import FitContext, GradientMethod, SoftmaxOptions, TrainerOptions, option
from automech.training.trainer import schedule


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


def principal_and_welfare(
    mech: TEDIMechanism, values: torch.Tensor, chains: torch.Tensor, params, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """u0 and ASW^beta (each (K, B)) of outcomes ``chains`` (K, B, n, m) at profiles
    ``values`` (B, n, m): one network pass prices all K outcomes and the null bundle."""
    k, b, n, m = chains.shape
    x = to_rows(chains)
    f = mech.net.evaluate(torch.cat([x, x.new_zeros(b * n, 1, m)], dim=1), params)
    pay = (f[:, :k] - f[:, k:]).view(b, n, k).permute(2, 0, 1)  # (K, B, n)
    vals = values.expand(k, -1, -1, -1)
    u0 = mech.setting.objective.value(
        vals.reshape(k * b, n, m), chains.reshape(k * b, n, m), pay.reshape(k * b, n)
    ).view(k, b)
    asw = beta * ((vals * chains).sum(-1) - pay).sum(-1)
    return u0, asw


def covariance_loss(
    mech: TEDIMechanism, values: torch.Tensor, chains: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The covariance-trick surrogate (to be maximised) averaged over the batch, and the
    plain mean of u0, for samples of q^beta from K >= 2 independent chains per profile
    (``chains`` (K, B, n, m), one sample per chain).

    With ``c = sg(u0 - mean u0)`` and ``a = ASW - mean ASW`` (means over a profile's K
    samples), ``L = mean u0 + 1 / (K - 1) sum_k c_k a_k``: its gradient is ``mean grad u0``
    plus the unbiased sample covariance of u0 and ``grad ASW^beta``, i.e. an unbiased
    estimate of Eq. (10); for K = 2 it is Eq. (12) exactly.  More chains lower the
    variance of the covariance term, which grows with beta."""
    k = chains.shape[0]
    if k < 2:
        raise ValueError(f"the covariance trick needs at least 2 chains per profile, got {k}")
    u0, asw = principal_and_welfare(mech, values, chains, pricing_maps(mech, values), beta)
    centred = (u0 - u0.mean(0)).detach()
    asw = asw - asw.mean(0)
    covariance = (centred * asw).sum(0) / (k - 1)
    return (u0.mean(0) + covariance).mean(), u0.mean()


def langevin(
    mech: TEDIMechanism,
    values: torch.Tensor,
    chains: torch.Tensor,
    beta: float,
    eta: float,
    steps: int,
    generator: torch.Generator,
    params=None,
) -> torch.Tensor:
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


def metropolis(
    mech: TEDIMechanism,
    values: torch.Tensor,
    chains: torch.Tensor,
    scales: torch.Tensor,
    beta: float,
    steps: int,
    generator: torch.Generator,
    params=None,
) -> tuple[torch.Tensor, torch.Tensor]:
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
    sees buyers that q^beta no longer has.  Coordinate moves relax separable directions,
    scale moves the bundle direction, in a few dozen steps.  ``params`` as in
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
            step = sc.gather(-1, j) * torch.randn((rows, k, 1), generator=generator, dtype=x.dtype)
            u = move(x.scatter(-1, j, reflect(x.gather(-1, j) + step)), 0.0, u, j)
            log_lam = sc[..., m] * torch.randn((rows, k), generator=generator, dtype=x.dtype)
            proposal = x * torch.exp(log_lam).unsqueeze(-1)
            inside = torch.where(proposal.amax(-1) <= 1.0, 0.0, -math.inf).to(x.dtype)
            u = move(proposal.clamp(max=1.0), m * log_lam + inside, u, last)
        return from_rows(x, b, n), from_rows(sc, b, n)


#: Options that ``recipe="atoms"`` puts over the options, and ``recipe="auto"`` on priors
#: with atoms (Bernoulli, discrete): the optimum there leaves types exactly indifferent
#: (B-1x10: every good priced at the value 1), so the smoothing must end sharp and stay
#: sharp for long -- revenue lost to it is of order 1 / sqrt(beta) per good, against
#: log(beta) / beta for a prior with a density -- and the entry fee, which the smoothed
#: objective favours there, is left out.
ATOMS_RECIPE: dict[str, Any] = {
    "temperature_final": 1000.0,
    "temperature_schedule": "linear",
    "lr_final": 1e-4,
    "fee": False,
}
Recipe = Literal["auto", "continuous", "atoms"]
#: Starting menus of the network (:meth:`TEDI.resolve`).
Init = Literal["auto", "linear", "bundle", "separable"]
#: Starts distilled from a classical mechanism before training (:func:`distil_start`),
#: with the number of Adam steps ``init_steps=0`` gives them.
DISTILLED = {"separable": 2000}
#: Seed of the prior profiles on which ``init="auto"`` compares the starts.
INIT_SEED = 20_240_601
#: Raw entry-fee bias giving softplus ~ 1e-6: the fee off for the separable start.
FEE_OFF = -14.0


def distil_start(
    mech: TEDIMechanism, steps: int, batch_size: int, lr: float, rng: np.random.Generator
) -> float:
    """Fit ``mech``'s skip term ``D(t_-i)`` to Separable-OPT's per-good thresholds
    ``theta(t_-i)`` (:meth:`SeparableOPT.thresholds`, capped at the largest value: a good
    nobody can be served is priced out of reach) by Adam on the squared error, step size
    ``lr`` on a cosine to 0, ``batch_size`` fresh prior profiles a step, with the entry fee
    switched off (softplus ~ 1e-6).  The network then prices a bundle ``x`` at about
    ``theta(t_-i) . x``, with the small convex GroupMax part it starts with on top.
    Returns the final root-mean-square error of the fitted thresholds."""
    setting, net = mech.setting, mech.net
    cap = float(np.max(setting.prior.support()[1]))
    classical = SeparableOPT(setting)
    if net.c_head is not None:
        with torch.no_grad():
            net.c_head.bias.fill_(FEE_OFF)
    optimizer = torch.optim.Adam(list(net.parameters()), lr=lr)
    error = float("nan")
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = schedule("cosine", lr, 0.0, step, steps)
        values = torch.as_tensor(setting.sample(batch_size, rng), dtype=mech.dtype)
        with torch.no_grad():
            target = classical.thresholds(values.double()).clamp(max=cap).to(mech.dtype)
        others = mech.others(values)
        slope, _ = net.residual_heads(others.reshape(-1, others.shape[-1]))
        assert slope is not None, "the separable start needs the skip term"
        slope = slope[:, 0, :]  # (B n, m); n = 1: shared
        fit = ((slope - target.reshape(-1, target.shape[-1])) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        fit.backward()
        optimizer.step()
        error = float(fit.detach().sqrt())
    return error


@dataclass(frozen=True)
class TEDIOptions(TrainerOptions, SoftmaxOptions):
    """TEDI's options; the defaults and what was measured for them are in
    ``docs/results.md`` ("TEDI: choices and what was measured")."""

    method = "tedi"
    temperature: float = option(
        20.0, "beta_0: inverse temperature of q^beta at step 0", low=0, low_open=True
    )
    temperature_final: float = 200.0
    steps: int = 1000
    batch_size: int = 2048
    train_profiles: int = option(
        0, "M: the pool of training profiles (0: batch_size, the full batch of Algorithm 1)", low=0
    )
    lr: float = 3e-4
    lr_final: float = 1e-5
    langevin_step: float = option(
        0.02, "eta_0: step size of Eq. (13) at step 0", low=0, low_open=True
    )
    langevin_step_final: float = option(
        0.002, "eta at the last step (exponential schedule)", low=0, low_open=True
    )
    langevin_steps: int = option(10, "Euler-Maruyama steps of Eq. (13) per training step", low=0)
    chains: int = option(2, "K: samples of q^beta per profile and bidder (2: Eq. 12)", low=2)
    metropolis_steps: int = option(
        10,
        "rounds of exact Metropolis moves after the Langevin steps (0: Algorithm 1's Eq. 13 alone)",
        low=0,
    )
    groups: tuple[int, ...] = option((16, 16), "groups of each GroupMax layer")
    group_size: int = option(4, "affine pieces per group", low=1)
    pan_hidden: int = option(64, "width of the parameterised affine network's trunk", low=1)
    pan_layers: int = option(2, "hidden layers of that trunk", low=0)
    skip: bool = option(True, "affine skip term D(t_-i) x of the pricing network")
    fee: bool = option(True, "entry-fee residual c(t_-i) max_j x_j of the pricing network")
    init: Init = option("auto", "starting menu (auto: the better classical one, see resolve)")
    init_steps: int = option(0, "Adam steps of a distilled start (0: its default)", low=0)
    init_lr: float = option(1e-2, "step size of those steps (cosine to 0)", low=0, low_open=True)
    recipe: Recipe = option("auto", "continuous, atoms (ATOMS_RECIPE) or auto (by the prior)")
    solver_steps: int = option(300, "steps of the inner utility-maximisation solver", low=1)
    validate_every: int = 200
    validation_samples: int = 8192
    checkpoint_every: int = 250
    keep_best: bool = True

    def validate(self) -> None:
        if not self.groups or min(self.groups) < 1:
            raise OptionError(
                f"tedi: option 'groups' must be a non-empty list of integers "
                f">= 1, got {list(self.groups)}"
            )
        if self.init == "bundle" and not self.fee:
            raise OptionError("tedi: init='bundle' needs the fee term (fee=true)")
        if self.init == "separable" and not self.skip:
            raise OptionError("tedi: init='separable' needs the skip term (skip=true)")


@dataclass
class TEDIState:
    """A TEDI run's state (``ctx.state``): the pool of training profiles, their chains,
    the chains' Metropolis proposal sizes and the generator of their moves, and the pool
    rows of the current batch."""

    pool: torch.Tensor  # (M, n, m)
    chains: torch.Tensor  # (K, M, n, m)
    scales: torch.Tensor  # (K, M, n, m + 1), see :func:`metropolis`
    generator: torch.Generator
    indices: torch.Tensor | None = None

    @classmethod
    def uniform(cls, pool: torch.Tensor, chains: int, generator: torch.Generator) -> TEDIState:
        """Chains drawn uniformly on [0, 1]^m (Algorithm 1), proposal sizes 0.1."""
        points = torch.rand((chains, *pool.shape), generator=generator, dtype=pool.dtype)
        return cls.at(pool, points, generator)

    @classmethod
    def at(cls, pool: torch.Tensor, chains: torch.Tensor, generator: torch.Generator) -> TEDIState:
        """Chains at the points ``chains`` (K, M, n, m), proposal sizes 0.1."""
        scales = torch.full((*chains.shape[:-1], chains.shape[-1] + 1), 0.1, dtype=pool.dtype)
        return cls(pool, chains, scales, generator)


def move_chains(
    mechanism: TEDIMechanism,
    state: TEDIState,
    options: TEDIOptions,
    idx: torch.Tensor,
    beta: float,
    eta: float,
) -> None:
    """One round of chain moves for the pool rows ``idx``, in place in ``state``:
    ``langevin_steps`` steps of Eq. (13), then ``metropolis_steps`` Metropolis rounds."""
    values = state.pool[idx]
    with torch.no_grad():
        params = pricing_maps(mechanism, values)
    chains = langevin(
        mechanism,
        values,
        state.chains[:, idx],
        beta,
        eta,
        options.langevin_steps,
        state.generator,
        params,
    )
    scales = state.scales[:, idx]
    if options.metropolis_steps:
        chains, scales = metropolis(
            mechanism,
            values,
            chains,
            scales,
            beta,
            options.metropolis_steps,
            state.generator,
            params,
        )
    state.chains[:, idx], state.scales[:, idx] = chains, scales


class TEDI(GradientMethod):
    """TEDI: convex pricing rules trained by Langevin sampling (Ma et al., AAMAS 2026)."""

    name = "tedi"
    Options = TEDIOptions
    mechanism = TEDIMechanism

    def applicable(self, setting: Setting) -> str | None:
        return TEDIMechanism.applicable(setting)

    def resolve(self, setting: Setting, options: TEDIOptions) -> TEDIOptions:
        """``recipe="auto"`` applies :data:`ATOMS_RECIPE` on priors with atoms.
        ``init="auto"`` starts from the better of two classical menus the network can
        hold at initialisation (:meth:`best_start`):

        * ``"bundle"``: the grand bundle at Bundle-OPT's price (the fee term alone), when
          some bundle price is profitable;
        * ``"separable"``: Separable-OPT's per-good threshold prices distilled into the
          skip term (:func:`distil_start`).  On priors with atoms the thresholds sit
          exactly on the atoms (B-1x10: every good at price 1 = the value), which leaves
          the types indifferent and the exact mechanism's choice to the solver's ties;
          there the per-good linear prices at half the largest value (``"linear"``)
          stand in for it."""
        recipe = options.recipe
        if recipe == "auto":
            recipe = "atoms" if setting.prior.atoms(0) is not None else "continuous"
        options = options.replace(**(ATOMS_RECIPE if recipe == "atoms" else {}), recipe=recipe)
        if options.init == "auto":
            options = options.replace(init=self.best_start(setting, options))
        return options

    @staticmethod
    def best_start(setting: Setting, options: TEDIOptions) -> str:
        """The ``init="auto"`` choice of :meth:`resolve`: the start whose principal
        utility on 2^14 prior profiles is the highest (the first listed wins ties)."""
        values = torch.as_tensor(setting.sample(2**14, np.random.default_rng(INIT_SEED)))

        def utility(mechanism) -> float:
            with torch.no_grad():
                alloc, pay = mechanism(values)
            return float(setting.objective.value(values, alloc, pay).mean())

        earns: dict[str, float] = {}
        price, bundle = best_bundle_price(setting)
        if options.fee and math.isfinite(price):
            earns["bundle"] = bundle
        if options.skip:
            earns["separable"] = utility(SeparableOPT(setting))
        if not earns:
            return "linear"
        best = max(earns, key=lambda name: earns[name])
        if best == "separable" and setting.prior.atoms(0) is not None:
            return "linear"
        return best

    def build(self, ctx: FitContext) -> TEDIMechanism:
        o, setting = ctx.options, ctx.setting
        start: dict[str, Any] = {}
        if o.init == "bundle":
            # the network adds the floor's linear price: the fee makes up the rest
            floor = float(np.sum(setting.value_floor))
            start = {"init_slope": 0.0, "init_fee": best_bundle_price(setting)[0] - floor}
        return TEDIMechanism(
            setting,
            groups=o.groups,
            group_size=o.group_size,
            pan_hidden=o.pan_hidden,
            pan_layers=o.pan_layers,
            skip=o.skip,
            fee=o.fee,
            solver_steps=o.solver_steps,
            init_seed=ctx.seed,
            **start,
        )

    def start(
        self,
        mechanism: TEDIMechanism,  # type: ignore[override]
        ctx: FitContext,
    ) -> TEDIState:
        """The pool of ``train_profiles`` profiles (``ctx.rng``) and their chains, uniform
        on [0, 1]^m (a resumed run then loads its saved state over them)."""
        o = ctx.options
        pool = torch.as_tensor(
            ctx.setting.sample(o.train_profiles or o.batch_size, ctx.rng), dtype=mechanism.dtype
        )
        gen = torch.Generator().manual_seed(int(ctx.rng.integers(2**31)))
        return TEDIState.uniform(pool, o.chains, gen)

    def initialise(
        self,
        mechanism: TEDIMechanism,  # type: ignore[override]
        ctx: FitContext,
    ) -> None:
        """The distilled start (``init="separable"``): fit the pricing network to
        Separable-OPT's threshold prices (:func:`distil_start`) on fresh prior profiles;
        the fit's root-mean-square error goes to ``init.json``."""
        o = ctx.options
        if o.init not in DISTILLED:
            return
        steps = o.init_steps or DISTILLED[o.init]
        rmse = distil_start(
            mechanism, steps, o.batch_size, o.init_lr, np.random.default_rng([ctx.seed, 3])
        )
        ctx.run.write_json("init.json", {"init": o.init, "threshold_rmse": rmse, "steps": steps})

    def sample(
        self,
        mechanism: TEDIMechanism,  # type: ignore[override]
        ctx: FitContext,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's batch: ``batch_size`` consecutive rows of the pool (cyclically)."""
        st = ctx.state
        size = len(st.pool)
        batch = min(ctx.options.batch_size, size)
        st.indices = (torch.arange(batch) + (ctx.step * batch) % size) % size
        return st.pool[st.indices], st.indices

    def loss(
        self,
        mechanism: TEDIMechanism,  # type: ignore[override]
        values: torch.Tensor,
        ctx: FitContext,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Minus the surrogate of Eq. (12) on the chunk's profiles and their chains
        (pool rows ``ctx.indices``) at beta = ``ctx.temperature``."""
        chains = ctx.state.chains[:, ctx.indices]
        # beta applies to utilities in the values' unit (mechanism.unit), so it means the
        # same in any currency; so does eta (the drift is eta / unit times a utility slope)
        surrogate, u0 = covariance_loss(mechanism, values, chains, ctx.temperature / mechanism.unit)
        return -surrogate, {"train_objective": float(u0.detach())}

    def after_step(
        self,
        mechanism: TEDIMechanism,  # type: ignore[override]
        ctx: FitContext,
    ) -> None:
        """Move the chains of the whole batch at the step's beta and eta."""
        o = ctx.options
        eta = schedule("exponential", o.langevin_step, o.langevin_step_final, ctx.step, o.steps)
        unit = mechanism.unit
        move_chains(mechanism, ctx.state, o, ctx.state.indices, ctx.temperature / unit, eta / unit)

    def training_state(self, ctx: FitContext) -> dict[str, Any]:
        st = ctx.state
        return {
            "pool": st.pool,
            "chains": st.chains,
            "scales": st.scales,
            "gen": st.generator.get_state(),
        }

    def load_training_state(self, ctx: FitContext, saved: dict[str, Any]) -> None:
        st = ctx.state
        st.pool, st.chains, st.scales = saved["pool"], saved["chains"], saved["scales"]
        st.generator.set_state(saved["gen"])
