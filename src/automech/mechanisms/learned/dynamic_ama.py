"""The dynamic affine maximiser (Curry et al. 2024, Definition 3.1), batched over profiles.

Given weights ``w`` (n,) > 0 and boosts ``b`` (S, A), reports ``r`` (n, S, A):

* the policy ``pi*(w, b, r)`` maximises ``asw = E_pi[sum_t gamma^t (sum_i w_i r_i + b)]``;
* agent ``i`` pays ``p_i = (asw^(-i) - (asw - w_i r_i(pi*))) / w_i`` where ``r_i(pi*)`` is
  its expected (reported) reward under ``pi*`` and ``asw^(-i)`` the maximal affine welfare
  with ``i``'s report replaced by the environment's null report (zero rewards, i.e. ``i``
  disregarded, except in scheduling where it is the worst report; see
  :meth:`~automech.problems.dynamic.envs.DynamicEnv.null_type`).

With ``w = 1, b = 0`` this is the dynamic VCG mechanism.  Every ``(w, b)`` gives a mechanism
that is IC (truthful reporting is dominant) and IR in expectation over trajectories:
agent ``i``'s utility is ``(asw - asw^(-i)) / w_i >= 0``.

All ``1 + n`` inner problems of a profile (the main one and the n "without i" ones) are
solved in one batched call of :func:`~automech.problems.dynamic.solvers.solve`.

A :class:`DynamicAMA` is saved and loaded like every mechanism (``automech.load``): its
``setting`` is the environment (rebuilt by name), its ``state_dict`` the weights and
boosts.  It is not a :class:`~automech.mechanisms.base.Mechanism` (that interface maps
bids (B, n, m) to allocations); its outcome is a policy and payments per type profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from automech.errors import AutomechError
from automech.problems.dynamic.envs import DynamicEnv
from automech.problems.dynamic.mdp import DTYPE
from automech.problems.dynamic.solvers import occupancy, solve

#: Profiles per batched solve (bounds the memory of the (chunk, 1+n, S, A) tensors).
CHUNK = 4096


def affine(r: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``sum_i w_i r_i + b``: rewards (..., n, S, A), weights (..., n), boosts (..., S, A)
    broadcast over leading dimensions."""
    return (r * w[..., :, None, None]).sum(-3) + b


def problem_rewards(
    env: DynamicEnv, r: torch.Tensor, w: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """Affine rewards of the ``1 + n`` inner problems (..., 1 + n, S, A): index 0 the main
    problem, index ``1 + i`` the problem with agent ``i``'s report replaced by its null
    report.  ``r`` (..., n, S, A); ``w``, ``b`` broadcast against it."""
    r_null = env.rewards(env.null_type().unsqueeze(0))[0]  # (n, S, A)
    main = affine(r, w, b)  # (..., S, A)
    wx = w[..., :, None, None]
    counterfactual = main.unsqueeze(-3) - wx * (r - r_null)  # (..., n, S, A)
    return torch.cat([main.unsqueeze(-3), counterfactual], dim=-3)


@dataclass
class Outcome:
    """Per-profile results (leading dimension B)."""

    values: torch.Tensor  # (B, n) true expected reward of each agent under pi*
    payments: torch.Tensor  # (B, n)
    asw: torch.Tensor  # (B, 1 + n) optimal affine welfare: main, then without i
    objective: torch.Tensor  # (B,) the environment's objective (revenue, welfare, makespan)

    @property
    def revenue(self) -> torch.Tensor:
        return self.payments.sum(-1)

    @property
    def welfare(self) -> torch.Tensor:
        return self.values.sum(-1)

    @property
    def utilities(self) -> torch.Tensor:
        return self.values - self.payments


def outcome(
    env: DynamicEnv,
    w: torch.Tensor,
    b: torch.Tensor,
    types: torch.Tensor,
    reports: torch.Tensor | None = None,
) -> Outcome:
    """Exact outcome of the AMA ``(w, b)`` for types (N, n, ...) and reports (default: the
    types).  ``w`` (..., n) and ``b`` (..., S, A) may carry leading dimensions that
    broadcast against N (e.g. (C, 1, n) and (C, 1, S, A) score C parameter vectors on the
    same profiles); the results then have shape (C, N, ...)."""
    mdp = env.mdp
    r_true = env.rewards(types)  # (N, n, S, A)
    r_rep = r_true if reports is None else env.rewards(reports)
    V, policy = solve(problem_rewards(env, r_rep, w, b), mdp)  # (..., N, 1+n, S)
    asw = V @ mdp.mu0  # (..., N, 1+n)
    nu = occupancy(policy[..., 0, :], mdp)  # (..., N, S, A)
    reported = (nu.unsqueeze(-3) * r_rep).sum((-1, -2))  # (..., N, n)
    values = reported if reports is None else (nu.unsqueeze(-3) * r_true).sum((-1, -2))
    payments = (asw[..., 1:] - asw[..., :1] + w * reported) / w
    if env.objective == "revenue":
        objective = payments.sum(-1)
    elif env.objective == "welfare":
        objective = values.sum(-1)
    else:
        objective = env.expected_loss(types, nu)
    return Outcome(values, payments, asw, objective)


def signed_objective(env: DynamicEnv, w, b, types, chunk: int = CHUNK) -> torch.Tensor:
    """Per-profile objective to *maximise* (minus makespan) of the AMA ``(w, b)``, exact.
    ``w`` (..., n), ``b`` (..., S, A) may carry leading dimensions (see :func:`outcome`)."""
    sign = 1.0 if env.maximise else -1.0
    parts = [
        outcome(env, w, b, types[s : s + chunk]).objective for s in range(0, len(types), chunk)
    ]
    return sign * torch.cat(parts, dim=-1)


class DynamicAMA:
    """A dynamic AMA on ``env`` with weights ``w`` (n,) and boosts ``b`` (S, A)."""

    name = "dynamic-ama"

    def __init__(self, env: DynamicEnv, weights=None, boosts=None) -> None:
        self.setting = env
        self._set(weights, boosts)

    def _set(self, weights, boosts) -> None:
        env = self.env
        S, A = env.mdp.num_states, env.mdp.num_actions
        w = (
            torch.ones(env.n, dtype=DTYPE)
            if weights is None
            else torch.as_tensor(weights, dtype=DTYPE).clone()
        )
        b = (
            torch.zeros(S, A, dtype=DTYPE)
            if boosts is None
            else torch.as_tensor(boosts, dtype=DTYPE).clone()
        )
        if w.shape != (env.n,) or not bool((w > 0).all()):
            raise AutomechError(f"weights must be {env.n} positive numbers, got {w.tolist()}")
        if b.shape != (S, A):
            raise AutomechError(f"boosts must have shape ({S}, {A}), got {tuple(b.shape)}")
        self.weights, self.boosts = w, b

    @property
    def env(self) -> DynamicEnv:
        """The environment (the mechanism's ``setting``)."""
        return self.setting

    @classmethod
    def vcg(cls, env: DynamicEnv) -> DynamicAMA:
        """The dynamic VCG mechanism: ``w = 1``, ``b = 0``."""
        return cls(env)

    @property
    def is_vcg(self) -> bool:
        return bool((self.weights == 1).all() and (self.boosts == 0).all())

    # ------------------------------------------------------- saving (automech.load)

    def config(self) -> dict[str, Any]:
        """Keyword arguments of ``DynamicAMA(env, **config)`` besides the state: none."""
        return {}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"weights": self.weights.clone(), "boosts": self.boosts.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Set the weights and boosts (checked: positive weights, boosts (S, A))."""
        self._set(state["weights"], state["boosts"])

    def eval(self) -> DynamicAMA:
        """Nothing to switch (no training mode); for the loader's ``mechanism.eval()``."""
        return self

    # ----------------------------------------------------------------- outcomes

    def outcome(
        self, types: torch.Tensor, reports: torch.Tensor | None = None, chunk: int = CHUNK
    ) -> Outcome:
        """Outcome for true types (B, n, ...) when the agents report ``reports`` (default:
        truthfully): the policy is chosen and payments computed from the reports, the
        agents' values from their true types."""
        parts = [
            self._outcome(types[s : s + chunk], None if reports is None else reports[s : s + chunk])
            for s in range(0, len(types), chunk)
        ]
        return Outcome(
            *(
                torch.cat([getattr(p, k) for p in parts])
                for k in ("values", "payments", "asw", "objective")
            )
        )

    def _outcome(self, types, reports):
        return outcome(self.env, self.weights, self.boosts, types, reports)

    def policy(self, types: torch.Tensor) -> torch.Tensor:
        """The deterministic policy (B, S) chosen for truthful reports ``types``."""
        c = affine(self.env.rewards(types), self.weights, self.boosts)
        return solve(c, self.env.mdp)[1]

    def describe(self, types: torch.Tensor | None = None) -> dict[str, Any]:
        """The weights and the non-zero boosts (``automech describe``); with type profiles
        ``types``, also the share of them whose chosen policy (for truthful reports) takes
        each boosted action in its state."""
        mdp = self.env.mdp
        boosted = [
            (s, a)
            for s in range(mdp.num_states)
            for a in range(mdp.num_actions)
            if float(self.boosts[s, a]) != 0.0
        ]
        entries = [
            {
                "state": mdp.labels[s],
                "action": mdp.action_labels[a],
                "boost": float(self.boosts[s, a]),
            }
            for s, a in boosted
        ]
        if types is not None and len(types):
            chosen = self.policy(types)  # (B, S)
            for entry, (s, a) in zip(entries, boosted):
                entry["chosen"] = float((chosen[:, s] == a).double().mean())
        return {
            "kind": self.name,
            "setting": self.env.name,
            "is_vcg": self.is_vcg,
            "weights": self.weights.tolist(),
            "boosts": entries,
        }
