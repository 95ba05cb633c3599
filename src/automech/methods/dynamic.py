"""The outer problem of a dynamic AMA: choosing weights ``w`` and boosts ``b`` (Curry et
al. 2024, Sections 4-5, Algorithm 1), by three methods for dynamic settings.

* ``grid-search``: candidates from a scrambled Sobol sequence (boosts in
  ``[-bound, bound]``, weights in (0, 1] normalised to sum 1 when tuned), each scored
  exactly on the same sampled profiles; the best one wins.
* ``zeroth-order``: stochastic gradient steps with the paper's zeroth-order estimate
  (after Sow, Ji and Liang 2022): the leader's partial derivative at fixed inner
  solutions (analytic, Appendix C) plus the best-response term
  ``E_u[<(nu(theta + sigma u) - nu(theta)) / sigma, grad_nu L> u]``, with Gaussian
  perturbations ``u`` of all parameters and exact inner solutions.
* ``regularized-lp``: first-order steps through the entropy-regularised inner problem:
  the soft-optimal policy (softmax of soft Bellman backups) is differentiated by
  autograd for the social-welfare / makespan terms, the affine-welfare terms of revenue
  use their analytic partials (envelope theorem: ``d asw / d b = nu``,
  ``d asw / d w_i = r_i(pi)``).

The gradient methods follow Algorithm 1: several starting points (random, VCG, or the
best candidates of a grid search), gradient steps from each, and the best parameters
(scored exactly on held-out validation profiles every ``validate_every`` steps) are
returned.  Every score and the final evaluation use the exact unregularised inner
solution, so the result is an exactly IC and IR AMA
(:class:`~automech.mechanisms.learned.dynamic_ama.DynamicAMA`).

These methods do not use the shared gradient trainer: their steps are on a handful of
parameters with exact inner solves, and they retrain from the start when rerun in the
same run directory (``history.jsonl`` is rewritten).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from automech.mechanisms.learned.dynamic_ama import DynamicAMA, affine, signed_objective
from automech.problems.dynamic.envs import DynamicEnv
from automech.problems.dynamic.mdp import DTYPE
from automech.problems.dynamic.solvers import (
    occupancy,
    soft_occupancy,
    soft_solve,
    solve,
    solve_split,
)
from automech.runs import HISTORY, Run
from automech.training import FitContext, Method, Options, option

#: Weights are kept at or above this (payments divide by them).
W_MIN = 0.05


# ------------------------------------------------------------------------------ options


@dataclass(frozen=True)
class DynamicOptions(Options):
    """Options every dynamic method has."""

    optimize_weights: bool | Literal["auto"] = option(
        "auto",
        "tune the weights w too (auto: as the paper, for asymmetric priors), or only the boosts b",
    )


@dataclass(frozen=True)
class GridSearchOptions(DynamicOptions):
    """Grid search's options (the paper: 10,000 candidates on 2,000 profiles)."""

    method = "grid-search"
    candidates: int = option(2000, "Sobol points scored (the paper: 10,000)", low=1)
    profiles: int = option(1000, "profiles every candidate is scored on (the paper: 2,000)", low=1)
    bound: float | Literal["auto"] = option(
        "auto",
        "boosts drawn from [-bound, bound] (auto: the environment's default)",
        low=0,
        low_open=True,
    )
    include_vcg: bool = option(True, "score the VCG point (w = 1, b = 0) too")
    batch: int = option(16, "candidates scored per batched solve", low=1)


@dataclass(frozen=True)
class GradientOptions(DynamicOptions):
    """Options of the gradient methods (Algorithm 1)."""

    steps: int = option(300, "gradient steps per starting point", low=0)
    batch_size: int = option(128, "sampled profiles per gradient estimate", low=1)
    optimizer: Literal["adam", "sgd"] = option("adam", "adam, or sgd (the paper's plain steps)")
    lr: float = option(0.05, "step size at the first step", low=0, low_open=True)
    lr_final: float = option(
        0.005, "step size at the last step (cosine schedule in between)", low=0
    )
    init: Literal["vcg", "grid", "random"] = option(
        "vcg",
        "starting points: vcg, grid (the best grid-search points) or random "
        "(b ~ U[0, 1], the published code's start)",
    )
    restarts: int = option(1, "starting points (Algorithm 1: m)", low=1)
    init_candidates: int = option(256, "grid-search candidates when init = grid", low=1)
    init_profiles: int = option(512, "profiles of those candidates", low=1)
    validate_every: int = option(25, "steps between exact validations", low=1)
    validation_samples: int = option(4096, "held-out profiles for validation", low=1)


@dataclass(frozen=True)
class ZerothOrderOptions(GradientOptions):
    """Zeroth-order's options (the paper: 20 perturbations, sigma 0.05)."""

    method = "zeroth-order"
    perturbations: int = option(20, "Gaussian perturbations per profile (the paper: 20)", low=1)
    sigma: float = option(0.05, "their standard deviation (the paper: 0.05)", low=0, low_open=True)
    envelope: bool = option(
        True,
        "revenue: estimate the best-response term of the "
        "social-welfare part only (the affine-welfare terms are exact "
        "by the envelope theorem)",
    )


@dataclass(frozen=True)
class RegularizedLPOptions(GradientOptions):
    """The regularised LP's options (the paper's smoothing: alpha = 0.01)."""

    method = "regularized-lp"
    alpha: float = option(0.01, "entropy regularisation of the inner problem", low=0, low_open=True)
    envelope: bool = option(True, "revenue: analytic partials for the affine-welfare terms")


# ------------------------------------------------------------------------------ helpers


def tune_weights(env: DynamicEnv, options: DynamicOptions) -> bool:
    """Whether the weights are tuned: ``optimize_weights``, or the environment's choice."""
    choice = options.optimize_weights
    return env.optimize_weights if choice == "auto" else bool(choice)


def _show(env: DynamicEnv, signed: float) -> float:
    """A signed score (to maximise) as the objective's own value (makespan positive)."""
    return signed if env.maximise else -signed


def _cosine(start: float, end: float, step: int, total: int) -> float:
    frac = min(1.0, step / max(1, total - 1))
    return end + 0.5 * (start - end) * (1 + math.cos(math.pi * frac))


def _progress(disable: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        disable=disable,
        transient=False,
    )


def _fresh_history(run: Run | None) -> None:
    """These methods retrain from the start: a rerun rewrites ``history.jsonl``."""
    if run is not None:
        (run.path / HISTORY).unlink(missing_ok=True)


def problem_reports(env: DynamicEnv, r: torch.Tensor) -> torch.Tensor:
    """Reward tensors of the ``1 + n`` inner problems (K, 1 + n, n, S, A): the reports,
    then the reports with agent i's replaced by its null report."""
    n = env.n
    r_null = env.rewards(env.null_type().unsqueeze(0))[0]
    rp = r.unsqueeze(1).repeat(1, 1 + n, 1, 1, 1)
    for i in range(n):
        rp[:, 1 + i, i] = r_null[i]
    return rp


def leader_loss(env: DynamicEnv, w, b, types, r, rp, nus) -> torch.Tensor:
    """The leader's objective (to maximise, mean over profiles) as a function of the
    parameters at *given* occupancy measures ``nus`` (K, 1 + n, S, A) of the inner
    problems.  Differentiating it in (w, b) with ``nus`` fixed gives the analytic partial
    derivatives of Appendix C (for revenue: ``sw(nu_0) + sum_i (asw_i - asw_0) / w_i``)."""
    if env.objective == "makespan":
        return -(nus[:, 0] * env.loss_vector(types)).sum((-1, -2)).mean()
    sw = (nus[:, 0] * r.sum(1)).sum((-1, -2))
    if env.objective == "welfare":
        return sw.mean()
    asw = (nus * affine(rp, w, b)).sum((-1, -2))  # (K, 1 + n)
    return (sw + ((asw[:, 1:] - asw[:, :1]) / w).sum(-1)).mean()


def nu_gradients(env: DynamicEnv, w, b, types, r, rp) -> torch.Tensor:
    """``grad_nu L`` of :func:`leader_loss` per inner problem (K, 1 + n, S, A)."""
    K, n = r.shape[0], env.n
    g = torch.zeros(K, 1 + n, *r.shape[-2:], dtype=r.dtype)
    if env.objective == "makespan":
        q = env.loss_vector(types)
        assert q is not None  # makespan is a loss <nu, q>
        g[:, 0] = -q
        return g
    g[:, 0] = r.sum(1)
    if env.objective == "welfare":
        return g
    c = affine(rp, w, b)  # (K, 1 + n, S, A)
    g[:, 0] -= c[:, 0] * (1.0 / w).sum()
    g[:, 1:] = c[:, 1:] / w[:, None, None]
    return g


def grid_search(
    env: DynamicEnv,
    *,
    candidates: int,
    profiles: int,
    bound: float | str = "auto",
    include_vcg: bool = True,
    tune: bool = False,
    batch: int = 16,
    seed: int = 0,
    run: Run | None = None,
    progress: bool = False,
    keep: int = 1,
) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    """The ``keep`` best Sobol candidates as (w, b, signed score), best first."""
    from scipy.stats import qmc

    S, A, n = env.mdp.num_states, env.mdp.num_actions, env.n
    bound = env.boost_bound if bound == "auto" else float(bound)
    dim = S * A + (n if tune else 0)
    with warnings.catch_warnings():  # any count is fine; powers of 2 are not needed
        warnings.filterwarnings("ignore", message=".*balance properties of Sobol")
        points = qmc.Sobol(dim, scramble=True, seed=np.random.default_rng([seed, 2])).random(
            candidates
        )
    points = torch.as_tensor(points, dtype=DTYPE)
    boosts = (-bound + 2 * bound * points[:, : S * A]).reshape(candidates, S, A)
    if tune:
        raw = points[:, S * A :].clamp_min(1e-3)
        weights = raw / raw.sum(-1, keepdim=True)
    else:
        weights = torch.ones(candidates, n, dtype=DTYPE)
    if include_vcg:
        boosts = torch.cat([torch.zeros(1, S, A, dtype=DTYPE), boosts])
        weights = torch.cat([torch.ones(1, n, dtype=DTYPE), weights])
    types = env.sample(profiles, np.random.default_rng([seed, 3]))
    scores = torch.empty(len(boosts), dtype=DTYPE)
    best, start = -math.inf, time.perf_counter()
    with _progress(not progress) as bar:
        task = bar.add_task(f"grid-search on {env.name}", total=len(boosts), status="")
        for s in range(0, len(boosts), batch):
            w, b = weights[s : s + batch, None], boosts[s : s + batch, None]
            scores[s : s + batch] = signed_objective(
                env, w, b, types, chunk=max(1, 4096 // len(w))
            ).mean(-1)
            best = max(best, float(scores[s : s + batch].max()))
            bar.update(task, advance=len(w), status=f"best {_show(env, best)}")
    order = torch.argsort(scores, descending=True)[:keep]
    if run is not None:
        run.log(
            {
                "method": "grid-search",
                "candidates": len(boosts),
                "profiles": profiles,
                "best_objective": _show(env, float(scores[order[0]])),
                "seconds": round(time.perf_counter() - start, 3),
            }
        )
    return [(weights[k], boosts[k], float(scores[k])) for k in order]


# ------------------------------------------------------------------------------ methods


class DynamicMethod(Method):
    """A method for the outer problem of a dynamic AMA (an MDP setting)."""

    kind = "dynamic"
    mechanism = DynamicAMA

    def applicable(self, setting: Any) -> str | None:
        if getattr(setting, "kind", "static") != "dynamic":
            name = getattr(setting, "name", None) or "this setting"
            return (
                f"{self.name} designs dynamic AMAs on MDPs (settings such as "
                f"seq-sales-3x2, scheduling-2x4, gridworld-2x3); {name} is a static "
                "setting"
            )
        return None

    def resolve(self, setting: DynamicEnv, options: DynamicOptions) -> DynamicOptions:
        """``optimize_weights = "auto"`` made the environment's choice."""
        return options.replace(optimize_weights=tune_weights(setting, options))


class GridSearch(DynamicMethod):
    """Sobol grid search over (w, b), each candidate scored exactly (Curry et al. 2024, 5)."""

    name = "grid-search"
    Options = GridSearchOptions

    def resolve(self, setting: DynamicEnv, options: DynamicOptions) -> GridSearchOptions:
        """``auto`` choices made: whether weights are tuned, and the boost bound."""
        options = super().resolve(setting, options)
        assert isinstance(options, GridSearchOptions)  # this method's Options
        return options.replace(
            bound=setting.boost_bound if options.bound == "auto" else options.bound
        )

    def fit(self, ctx: FitContext) -> DynamicAMA:
        env, o = ctx.setting, ctx.options
        _fresh_history(ctx.run)
        ranked = grid_search(
            env,
            candidates=o.candidates,
            profiles=o.profiles,
            bound=o.bound,
            include_vcg=o.include_vcg,
            tune=tune_weights(env, o),
            batch=o.batch,
            seed=ctx.seed,
            run=ctx.run,
            progress=ctx.progress,
            keep=1,
        )
        w, b, _ = ranked[0]
        return DynamicAMA(env, w, b)


class GradientDynamicMethod(DynamicMethod):
    """Algorithm 1: starting points, stochastic gradient ascent on the (signed) objective
    from each, the parameters with the best exact validation score returned."""

    Options = GradientOptions

    def gradient(
        self,
        env: DynamicEnv,
        w: torch.Tensor,
        b: torch.Tensor,
        types: torch.Tensor,
        options: GradientOptions,
        gen: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Estimated gradient of the signed objective in (w, b), and a training score."""
        raise NotImplementedError

    def fit(self, ctx: FitContext) -> DynamicAMA:
        env, o, seed, run = ctx.setting, ctx.options, ctx.seed, ctx.run
        _fresh_history(run)
        tune = tune_weights(env, o)
        starts = self.starts(ctx)
        validation = env.sample(o.validation_samples, np.random.default_rng([seed, 1]))
        rng = np.random.default_rng([seed, 0])
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        best: tuple[float, torch.Tensor | None, torch.Tensor | None] = (-math.inf, None, None)
        steps, every = o.steps, o.validate_every
        with _progress(not ctx.progress) as bar:
            task = bar.add_task(f"{self.name} on {env.name}", total=steps * len(starts), status="")
            for k, (w0, b0) in enumerate(starts):
                w = w0.clone().requires_grad_(tune)
                b = b0.clone().requires_grad_(True)
                params = [w, b] if tune else [b]
                opt = (
                    torch.optim.Adam(params, lr=o.lr)
                    if o.optimizer == "adam"
                    else torch.optim.SGD(params, lr=o.lr)
                )
                for step in range(steps + 1):
                    if step % every == 0 or step == steps:
                        score = float(
                            signed_objective(env, w.detach(), b.detach(), validation).mean()
                        )
                        if score > best[0]:
                            best = (score, w.detach().clone(), b.detach().clone())
                        shown = _show(env, score)
                        if run is not None:
                            run.log({"restart": k, "step": step, "val_objective": shown})
                        bar.update(
                            task,
                            status=f"start {k + 1}/{len(starts)} "
                            f"val {shown:.4f} best {_show(env, best[0]):.4f}",
                        )
                    if step == steps:
                        break
                    for group in opt.param_groups:
                        group["lr"] = _cosine(o.lr, o.lr_final, step, steps)
                    types = env.sample(o.batch_size, rng)
                    gw, gb, train = self.gradient(env, w.detach(), b.detach(), types, o, gen)
                    opt.zero_grad()
                    b.grad = -gb
                    if tune:
                        w.grad = -gw
                    opt.step()
                    if tune:
                        with torch.no_grad():
                            w.clamp_(min=W_MIN)
                    if run is not None and step % 10 == 0:
                        run.log({"restart": k, "step": step, "train_objective": train})
                    bar.advance(task)
        return DynamicAMA(env, best[1], best[2])

    def starts(self, ctx: FitContext) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The starting points (w, b) of Algorithm 1, one per restart."""
        env, o = ctx.setting, ctx.options
        S, A, n = env.mdp.num_states, env.mdp.num_actions, env.n
        ones = torch.ones(n, dtype=DTYPE)
        if o.init == "vcg":
            return [(ones, torch.zeros(S, A, dtype=DTYPE))] * o.restarts
        if o.init == "random":  # the published code's start: boosts ~ U[0, 1]
            rng = np.random.default_rng([ctx.seed, 4])
            return [
                (ones, torch.as_tensor(rng.random((S, A)), dtype=DTYPE)) for _ in range(o.restarts)
            ]
        defaults = GridSearchOptions()
        ranked = grid_search(
            env,
            candidates=o.init_candidates,
            profiles=o.init_profiles,
            bound=defaults.bound,
            include_vcg=defaults.include_vcg,
            tune=tune_weights(env, o),
            batch=defaults.batch,
            seed=ctx.seed,
            run=ctx.run,
            progress=ctx.progress,
            keep=o.restarts,
        )
        return [(w, b) for w, b, _ in ranked]


class ZerothOrder(GradientDynamicMethod):
    """Zeroth-order gradient estimates, exact inner solutions (Curry et al. 2024, 5)."""

    name = "zeroth-order"
    Options = ZerothOrderOptions

    def gradient(self, env, w, b, types, options, gen):
        J, sigma = options.perturbations, options.sigma
        tune = tune_weights(env, options)
        mdp = env.mdp
        r = env.rewards(types)  # (K, n, S, A)
        rp = problem_reports(env, r)  # (K, 1+n, n, S, A)
        nus = soft_occupancy(solve_split(affine(rp, w, b), mdp)[1], mdp)  # (K, 1+n, S, A)
        # leader's partial derivative at fixed inner solutions (analytic, Appendix C)
        wg = w.clone().requires_grad_(tune)
        bg = b.clone().requires_grad_(True)
        loss = leader_loss(env, wg, bg, types, r, rp, nus)
        if loss.requires_grad:
            grads = torch.autograd.grad(
                loss, [wg, bg] if tune else [bg], allow_unused=True, materialize_grads=True
            )
        else:  # makespan: depends on (w, b) only through nu
            grads = [torch.zeros_like(w), torch.zeros_like(b)]
        gw = grads[0] if tune else torch.zeros_like(w)
        gb = grads[-1]
        # best-response term, per inner problem that the leader's loss depends on
        g_nu = nu_gradients(env, w, b, types, r, rp)
        P = 1 if env.objective != "revenue" else 1 + env.n
        if env.objective == "revenue" and options.envelope:
            # the affine-welfare terms have no best-response term (envelope theorem:
            # their derivative is the analytic partial above); only sw(nu_0) keeps one
            g_nu[:, 0] = r.sum(1)
            P = 1
        K, S, A = len(types), mdp.num_states, mdp.num_actions
        u_b = torch.randn(K, P, J, S, A, generator=gen, dtype=DTYPE)
        u_w = (
            torch.randn(K, P, J, env.n, generator=gen, dtype=DTYPE)
            if tune
            else torch.zeros(K, P, J, env.n, dtype=DTYPE)
        )
        c = affine(rp[:, :P, None], w + sigma * u_w, b + sigma * u_b)  # (K, P, J, S, A)
        moved = occupancy(solve(c, mdp)[1], mdp)
        delta = ((moved - nus[:, :P, None]) * g_nu[:, :P, None]).sum((-1, -2)) / sigma
        gb = gb + (delta[..., None, None] * u_b).sum(1).mean((0, 1))
        if tune:
            gw = gw + (delta[..., None] * u_w).sum(1).mean((0, 1))
        return gw, gb, _show(env, float(loss.detach()))


class RegularizedLP(GradientDynamicMethod):
    """Gradients through the entropy-regularised inner problem (Curry et al. 2024, 5)."""

    name = "regularized-lp"
    Options = RegularizedLPOptions

    def gradient(self, env, w, b, types, options, gen):
        alpha = options.alpha
        tune = tune_weights(env, options)
        mdp = env.mdp
        wg = w.clone().requires_grad_(tune)
        bg = b.clone().requires_grad_(True)
        r = env.rewards(types)
        rp = problem_reports(env, r)
        if env.objective == "revenue" and options.envelope:
            # soft-optimal policy of the main problem, differentiated; the affine-welfare
            # terms through their analytic partials at the (soft) occupancy measures
            _, pi = soft_solve(affine(r, wg, bg), mdp, alpha)
            nu0 = soft_occupancy(pi, mdp)
            with torch.no_grad():
                nus = soft_occupancy(soft_solve(affine(rp, w, b), mdp, alpha)[1], mdp)
            sw = (nu0 * r.sum(1)).sum((-1, -2))
            asw = (nus * affine(rp, wg, bg)).sum((-1, -2))
            loss = (sw + ((asw[:, 1:] - asw[:, :1]) / wg).sum(-1)).mean()
        else:
            problems = affine(rp, wg, bg) if env.objective == "revenue" else affine(r, wg, bg)
            _, pi = soft_solve(problems, mdp, alpha)
            nu = soft_occupancy(pi, mdp)
            if env.objective != "revenue":
                nu = nu.unsqueeze(1)
            loss = leader_loss(env, wg, bg, types, r, rp, nu)
        grads = torch.autograd.grad(loss, [wg, bg] if tune else [bg])
        gw = grads[0] if tune else torch.zeros_like(w)
        return gw, grads[-1], _show(env, float(loss.detach()))


__all__ = [
    "GridSearch",
    "ZerothOrder",
    "RegularizedLP",
    "GridSearchOptions",
    "ZerothOrderOptions",
    "RegularizedLPOptions",
    "grid_search",
    "tune_weights",
    "signed_objective",
    "problem_reports",
    "leader_loss",
    "nu_gradients",
]
