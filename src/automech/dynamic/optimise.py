"""The outer problem: choosing weights ``w`` and boosts ``b`` (Curry et al. 2024, Sections
4-5, Algorithm 1), by three methods registered in :data:`DYNAMIC_METHODS`.

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
solution, so the result is an exactly IC and IR AMA.
"""

from __future__ import annotations

import math
import time
import warnings
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from automech.dynamic.ama import DynamicAMA, affine, outcome
from automech.dynamic.envs import DynamicEnv
from automech.dynamic.mdp import DTYPE
from automech.dynamic.solvers import occupancy, soft_occupancy, soft_solve, solve, solve_split
from automech.errors import AutomechError
from automech.runs import Run

#: Weights are kept at or above this (payments divide by them).
W_MIN = 0.05


def signed_objective(env: DynamicEnv, w, b, types, chunk: int = 4096) -> torch.Tensor:
    """Per-profile objective to *maximise* (minus makespan) of the AMA ``(w, b)``, exact.
    ``w`` (..., n), ``b`` (..., S, A) may carry leading dimensions (see
    :func:`~automech.dynamic.ama.outcome`)."""
    sign = 1.0 if env.maximise else -1.0
    parts = [outcome(env, w, b, types[s:s + chunk]).objective
             for s in range(0, len(types), chunk)]
    return sign * torch.cat(parts, dim=-1)


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
    asw = (nus * affine(rp, w, b)).sum((-1, -2))                      # (K, 1 + n)
    return (sw + ((asw[:, 1:] - asw[:, :1]) / w).sum(-1)).mean()


def nu_gradients(env: DynamicEnv, w, b, types, r, rp) -> torch.Tensor:
    """``grad_nu L`` of :func:`leader_loss` per inner problem (K, 1 + n, S, A)."""
    K, n = r.shape[0], env.n
    g = torch.zeros(K, 1 + n, *r.shape[-2:], dtype=r.dtype)
    if env.objective == "makespan":
        g[:, 0] = -env.loss_vector(types)
        return g
    g[:, 0] = r.sum(1)
    if env.objective == "welfare":
        return g
    c = affine(rp, w, b)                                               # (K, 1 + n, S, A)
    g[:, 0] -= c[:, 0] * (1.0 / w).sum()
    g[:, 1:] = c[:, 1:] / w[:, None, None]
    return g


# ------------------------------------------------------------------------------ methods


class DynamicMethod(ABC):
    """A method for the outer problem (registered in :data:`DYNAMIC_METHODS`)."""

    name: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}

    def applicable(self, env: DynamicEnv) -> str | None:
        return None

    @abstractmethod
    def fit(self, env: DynamicEnv, options: dict[str, Any], seed: int, run: Run | None,
            progress: bool = False) -> DynamicAMA:
        """Optimise ``(w, b)`` for ``env``; logs to ``run`` (``history.jsonl``)."""

    @staticmethod
    def tune_weights(env: DynamicEnv, options: dict[str, Any]) -> bool:
        choice = options.get("optimize_weights", "auto")
        if choice == "auto":
            return env.optimize_weights
        if isinstance(choice, bool):
            return choice
        raise AutomechError(f"option 'optimize_weights' must be auto, true or false, "
                            f"got {choice!r}")


def _cosine(start: float, end: float, step: int, total: int) -> float:
    frac = min(1.0, step / max(1, total - 1))
    return end + 0.5 * (start - end) * (1 + math.cos(math.pi * frac))


def _progress(disable: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                    TextColumn("{task.fields[status]}"), disable=disable, transient=False)


class GridSearch(DynamicMethod):
    """Sobol grid search over (w, b), each candidate scored exactly on the same profiles."""

    name = "grid-search"
    defaults: ClassVar[dict[str, Any]] = {
        "candidates": 2000,         # Sobol points (the paper: 10,000)
        "profiles": 1000,           # profiles each candidate is scored on (the paper: 2,000)
        "bound": 0.0,               # boosts in [-bound, bound]; 0: the environment's default
        "include_vcg": True,        # score the VCG point too
        "optimize_weights": "auto",  # auto: as the paper (weights tuned for asymmetric priors)
        "batch": 16,                # candidates scored per batched solve
    }

    def fit(self, env, options, seed, run, progress=False):
        ranked = self.search(env, options, seed, run, progress, keep=1)
        w, b, _ = ranked[0]
        return DynamicAMA(env, w, b)

    def search(self, env, options, seed, run, progress=False, keep=1):
        """The ``keep`` best candidates as (w, b, score), best first."""
        tune_w = self.tune_weights(env, options)
        S, A, n = env.mdp.num_states, env.mdp.num_actions, env.n
        count = int(options["candidates"])
        if count < 1 or options["profiles"] < 1:
            raise AutomechError("grid search needs candidates >= 1 and profiles >= 1")
        bound = float(options["bound"]) or env.boost_bound
        from scipy.stats import qmc
        dim = S * A + (n if tune_w else 0)
        with warnings.catch_warnings():   # any count is fine; powers of 2 are not needed
            warnings.filterwarnings("ignore", message=".*balance properties of Sobol")
            points = qmc.Sobol(dim, scramble=True,
                               seed=np.random.default_rng([seed, 2])).random(count)
        points = torch.as_tensor(points, dtype=DTYPE)
        boosts = (-bound + 2 * bound * points[:, :S * A]).reshape(count, S, A)
        if tune_w:
            raw = points[:, S * A:].clamp_min(1e-3)
            weights = raw / raw.sum(-1, keepdim=True)
        else:
            weights = torch.ones(count, n, dtype=DTYPE)
        if options["include_vcg"]:
            boosts = torch.cat([torch.zeros(1, S, A, dtype=DTYPE), boosts])
            weights = torch.cat([torch.ones(1, n, dtype=DTYPE), weights])
        types = env.sample(int(options["profiles"]), np.random.default_rng([seed, 3]))
        batch = max(1, int(options["batch"]))
        scores = torch.empty(len(boosts), dtype=DTYPE)
        best, start = -math.inf, time.perf_counter()
        with _progress(not progress) as bar:
            task = bar.add_task(f"grid-search on {env.name}", total=len(boosts), status="")
            for s in range(0, len(boosts), batch):
                w, b = weights[s:s + batch, None], boosts[s:s + batch, None]
                scores[s:s + batch] = signed_objective(env, w, b, types,
                                                       chunk=max(1, 4096 // len(w))).mean(-1)
                best = max(best, float(scores[s:s + batch].max()))
                bar.update(task, advance=len(w), status=f"best {self._show(env, best)}")
        order = torch.argsort(scores, descending=True)[:keep]
        if run is not None:
            run.log({"method": self.name, "candidates": len(boosts),
                     "profiles": int(options["profiles"]),
                     "best_objective": self._show(env, float(scores[order[0]])),
                     "seconds": round(time.perf_counter() - start, 3)})
        return [(weights[k], boosts[k], float(scores[k])) for k in order]

    @staticmethod
    def _show(env, signed: float) -> float:
        return signed if env.maximise else -signed


class _GradientMethod(DynamicMethod):
    """Algorithm 1: starting points, stochastic gradient ascent on the (signed) objective
    from each, the parameters with the best exact validation score returned."""

    defaults: ClassVar[dict[str, Any]] = {
        "steps": 300,               # gradient steps per starting point
        "batch_size": 128,          # sampled profiles per gradient estimate
        "optimizer": "adam",        # adam, or sgd (the paper's plain steps)
        "lr": 0.05,                 # step size at the first step
        "lr_final": 0.005,          # ... and at the last (cosine schedule in between)
        "init": "vcg",              # vcg, grid (best grid-search points), random (b ~ U[0,1])
        "restarts": 1,              # starting points (Algorithm 1: m)
        "init_candidates": 256,     # grid-search candidates when init = grid
        "init_profiles": 512,       # ... and their profiles
        "validate_every": 25,       # steps between exact validations
        "validation_samples": 4096,  # held-out profiles for validation
        "optimize_weights": "auto",  # auto: as the paper (tuned for asymmetric priors)
    }

    @abstractmethod
    def gradient(self, env, w, b, types, options, gen) -> tuple[torch.Tensor, torch.Tensor,
                                                                  float]:
        """Estimated gradient of the signed objective in (w, b), and a training score."""

    def fit(self, env, options, seed, run, progress=False):
        tune_w = self.tune_weights(env, options)
        if options["optimizer"] not in ("adam", "sgd"):
            raise AutomechError(f"option 'optimizer' must be adam or sgd, "
                                f"got {options['optimizer']!r}")
        if options["steps"] < 0 or options["batch_size"] < 1 or options["restarts"] < 1:
            raise AutomechError("need steps >= 0, batch_size >= 1 and restarts >= 1")
        starts = self._starts(env, options, seed, run, progress)
        validation = env.sample(int(options["validation_samples"]),
                                np.random.default_rng([seed, 1]))
        rng = np.random.default_rng([seed, 0])
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        best = (-math.inf, None, None)
        steps, every = int(options["steps"]), max(1, int(options["validate_every"]))
        with _progress(not progress) as bar:
            task = bar.add_task(f"{self.name} on {env.name}", total=steps * len(starts),
                                status="")
            for k, (w0, b0) in enumerate(starts):
                w = w0.clone().requires_grad_(tune_w)
                b = b0.clone().requires_grad_(True)
                params = [w, b] if tune_w else [b]
                opt = (torch.optim.Adam(params, lr=options["lr"])
                       if options["optimizer"] == "adam"
                       else torch.optim.SGD(params, lr=options["lr"]))
                for step in range(steps + 1):
                    if step % every == 0 or step == steps:
                        score = float(signed_objective(env, w.detach(), b.detach(),
                                                       validation).mean())
                        if score > best[0]:
                            best = (score, w.detach().clone(), b.detach().clone())
                        shown = GridSearch._show(env, score)
                        if run is not None:
                            run.log({"restart": k, "step": step, "validation": shown})
                        bar.update(task, status=f"start {k + 1}/{len(starts)} "
                                   f"val {shown:.4f} best {GridSearch._show(env, best[0]):.4f}")
                    if step == steps:
                        break
                    for group in opt.param_groups:
                        group["lr"] = _cosine(options["lr"], options["lr_final"], step, steps)
                    types = env.sample(int(options["batch_size"]), rng)
                    gw, gb, train = self.gradient(env, w.detach(), b.detach(), types,
                                                  options, gen)
                    opt.zero_grad()
                    b.grad = -gb
                    if tune_w:
                        w.grad = -gw
                    opt.step()
                    if tune_w:
                        with torch.no_grad():
                            w.clamp_(min=W_MIN)
                    if run is not None and step % 10 == 0:
                        run.log({"restart": k, "step": step, "train": train})
                    bar.advance(task)
        return DynamicAMA(env, best[1], best[2])

    def _starts(self, env, options, seed, run, progress):
        S, A, n = env.mdp.num_states, env.mdp.num_actions, env.n
        init, count = options["init"], int(options["restarts"])
        ones = torch.ones(n, dtype=DTYPE)
        if init == "vcg":
            return [(ones, torch.zeros(S, A, dtype=DTYPE))] * count
        if init == "random":          # the published code's start: boosts ~ U[0, 1]
            rng = np.random.default_rng([seed, 4])
            return [(ones, torch.as_tensor(rng.random((S, A)), dtype=DTYPE))
                    for _ in range(count)]
        if init == "grid":
            grid_options = dict(GridSearch.defaults, candidates=int(options["init_candidates"]),
                                profiles=int(options["init_profiles"]),
                                optimize_weights=options["optimize_weights"])
            ranked = GridSearch().search(env, grid_options, seed, run, progress, keep=count)
            return [(w, b) for w, b, _ in ranked]
        raise AutomechError(f"option 'init' must be grid, random or vcg, got {init!r}")


class ZerothOrder(_GradientMethod):
    """Zeroth-order gradient estimates (Section 5), exact inner solutions throughout."""

    name = "zeroth-order"
    defaults: ClassVar[dict[str, Any]] = {
        **_GradientMethod.defaults,
        "perturbations": 20,        # Gaussian perturbations per profile (the paper: 20)
        "sigma": 0.05,              # their standard deviation (the paper: 0.05)
        "envelope": True,           # estimate the best-response term of sw only (below)
    }

    def gradient(self, env, w, b, types, options, gen):
        J, sigma = int(options["perturbations"]), float(options["sigma"])
        if J < 1 or sigma <= 0:
            raise AutomechError("need perturbations >= 1 and sigma > 0")
        tune_w = self.tune_weights(env, options)
        mdp = env.mdp
        r = env.rewards(types)                                          # (K, n, S, A)
        rp = problem_reports(env, r)                                    # (K, 1+n, n, S, A)
        nus = soft_occupancy(solve_split(affine(rp, w, b), mdp)[1], mdp)  # (K, 1+n, S, A)
        # leader's partial derivative at fixed inner solutions (analytic, Appendix C)
        wg = w.clone().requires_grad_(tune_w)
        bg = b.clone().requires_grad_(True)
        loss = leader_loss(env, wg, bg, types, r, rp, nus)
        if loss.requires_grad:
            grads = torch.autograd.grad(loss, [wg, bg] if tune_w else [bg],
                                        allow_unused=True, materialize_grads=True)
        else:                       # makespan: depends on (w, b) only through nu
            grads = [torch.zeros_like(w), torch.zeros_like(b)]
        gw = grads[0] if tune_w else torch.zeros_like(w)
        gb = grads[-1]
        # best-response term, per inner problem that the leader's loss depends on
        g_nu = nu_gradients(env, w, b, types, r, rp)
        P = 1 if env.objective != "revenue" else 1 + env.n
        if env.objective == "revenue" and options["envelope"]:
            # the affine-welfare terms have no best-response term (envelope theorem:
            # their derivative is the analytic partial above); only sw(nu_0) keeps one
            g_nu[:, 0] = r.sum(1)
            P = 1
        K, S, A = len(types), mdp.num_states, mdp.num_actions
        u_b = torch.randn(K, P, J, S, A, generator=gen, dtype=DTYPE)
        u_w = (torch.randn(K, P, J, env.n, generator=gen, dtype=DTYPE) if tune_w
               else torch.zeros(K, P, J, env.n, dtype=DTYPE))
        c = affine(rp[:, :P, None], w + sigma * u_w, b + sigma * u_b)   # (K, P, J, S, A)
        moved = occupancy(solve(c, mdp)[1], mdp)
        delta = ((moved - nus[:, :P, None]) * g_nu[:, :P, None]).sum((-1, -2)) / sigma
        gb = gb + (delta[..., None, None] * u_b).sum(1).mean((0, 1))
        if tune_w:
            gw = gw + (delta[..., None] * u_w).sum(1).mean((0, 1))
        return gw, gb, GridSearch._show(env, float(loss.detach()))


class RegularizedLP(_GradientMethod):
    """First-order gradients through the entropy-regularised inner problem."""

    name = "regularized-lp"
    defaults: ClassVar[dict[str, Any]] = {
        **_GradientMethod.defaults,
        "alpha": 0.01,              # entropy regularisation (the paper's smoothing: 0.01)
        "envelope": True,           # analytic partials for the affine-welfare terms
    }

    def gradient(self, env, w, b, types, options, gen):
        alpha = float(options["alpha"])
        tune_w = self.tune_weights(env, options)
        mdp = env.mdp
        wg = w.clone().requires_grad_(tune_w)
        bg = b.clone().requires_grad_(True)
        r = env.rewards(types)
        rp = problem_reports(env, r)
        if env.objective == "revenue" and options["envelope"]:
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
        grads = torch.autograd.grad(loss, [wg, bg] if tune_w else [bg])
        gw = grads[0] if tune_w else torch.zeros_like(w)
        return gw, grads[-1], GridSearch._show(env, float(loss.detach()))


DYNAMIC_METHODS: dict[str, DynamicMethod] = {
    GridSearch.name: GridSearch(),
    ZerothOrder.name: ZerothOrder(),
    RegularizedLP.name: RegularizedLP(),
}


def get_dynamic_method(name: str) -> DynamicMethod:
    if name not in DYNAMIC_METHODS:
        raise AutomechError(f"unknown method {name!r} for a dynamic setting; known: "
                            f"{', '.join(DYNAMIC_METHODS)}")
    return DYNAMIC_METHODS[name]
