"""Inner-problem solvers: the follower of the bilevel problem (Curry et al. 2024, Eq. (2)).

Given a reward ``R`` (..., S, A) (for a dynamic AMA, ``sum_i w_i r_i + b``), find the
policy maximising ``E[sum_t gamma^t R(s_t, a_t)]`` from ``mu0``.

* :func:`solve` (exact, batched over every leading dimension): backward induction over the
  horizon for finite-horizon MDPs (time in the state), policy iteration for discounted
  ones.  Both return the optimum of the occupancy-measure LP of Eq. (2) exactly (up to
  floating point), with a deterministic policy.
* :func:`solve_lp`: the LP of Eq. (2) itself, one instance, with HiGHS.  Used to check the
  batched solvers and available for MDPs given only as an LP.
* :func:`soft_solve` (differentiable): the entropy-regularised inner problem
  ``max E[sum_t gamma^t (R(s_t, a_t) - alpha log pi(a_t|s_t))]``, whose solution is the
  softmax policy ``pi = softmax(Q / alpha)`` of the soft Bellman backups
  ``V(s) = alpha logsumexp_a Q(s, a) / alpha``.  Autograd differentiates it; for
  discounted MDPs the fixed point is found without autograd and one differentiable soft
  policy-iteration (Newton) step at the fixed point gives the exact implicit gradient.
* :func:`occupancy` / :func:`soft_occupancy`: the state-action occupancy measure
  ``nu(s, a)`` of a policy, the LP's variable; every objective here is an inner product
  ``<nu, q>``.
"""

from __future__ import annotations

import numpy as np
import torch

from automech.errors import AutomechError
from automech.problems.dynamic.mdp import TabularMDP

#: Policy iteration switches action only when the gain exceeds this (relative) tolerance,
#: so that ties cannot make it cycle.
TIE_TOL = 1e-12


# ------------------------------------------------------------------------ exact solvers


def solve(R: torch.Tensor, mdp: TabularMDP) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimal values ``V`` (..., S) and a deterministic optimal policy (..., S) (action
    indices; ties go to the lowest index) for rewards ``R`` (..., S, A)."""
    _check(R, mdp)
    if mdp.finite:
        return _backward_induction(R, mdp)
    return _policy_iteration(R, mdp)


def solve_split(
    R: torch.Tensor, mdp: TabularMDP, tol: float = 1e-9
) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimal values (..., S) and the optimal *stochastic* policy (..., S, A) that splits
    evenly between actions whose Q-values tie (within ``tol``, relative) -- still
    optimal, and the centre of the optimal face where :func:`solve`'s lowest-index choice
    is a vertex.  At ties the affine welfare is not differentiable; the split occupancy is
    the symmetric subgradient (what a central finite difference sees), which is what the
    gradient estimates use."""
    V, _ = solve(R, mdp)
    Q = R + mdp.gamma * mdp.expect(V)
    best = Q.max(-1, keepdim=True).values
    near = (Q >= best - tol * (1 + best.abs())).to(R.dtype)
    return V, near / near.sum(-1, keepdim=True)


def _backward_induction(R: torch.Tensor, mdp: TabularMDP):
    """One sweep over the states, latest decisions first (each state visited once)."""
    S = mdp.num_states
    V = R.new_zeros(*R.shape[:-2], S + 1)  # index S: the episode has ended
    policy = torch.zeros(R.shape[:-1], dtype=torch.long)
    assert mdp.layers is not None  # finite horizon
    for layer in mdp.layers:
        R_l = R.index_select(-2, layer)
        if mdp.next_state is not None:
            nxt = mdp.next_state[layer]  # (L, A)
            cont = V.index_select(-1, nxt.reshape(-1)).reshape(R_l.shape)
        else:
            cont = torch.einsum("lat,...t->...la", mdp.P[layer].to(R.dtype), V[..., :S])
        best, arg = (R_l + mdp.gamma * cont).max(-1)
        V.index_copy_(-1, layer, best)
        policy.index_copy_(-1, layer, arg)
    return V[..., :S], policy


def _policy_iteration(R: torch.Tensor, mdp: TabularMDP, max_iter: int = 200):
    V = R.new_zeros(R.shape[:-1])
    for _ in range(20):  # a few value-iteration sweeps as a warm start
        V = (R + mdp.gamma * mdp.expect(V)).max(-1).values
    policy = (R + mdp.gamma * mdp.expect(V)).argmax(-1)
    for _ in range(max_iter):
        V = evaluate_policy(R, policy, mdp)
        Q = R + mdp.gamma * mdp.expect(V)
        best, arg = Q.max(-1)
        current = Q.gather(-1, policy.unsqueeze(-1)).squeeze(-1)
        better = best > current + TIE_TOL * (1 + best.abs())
        if not bool(better.any()):
            return V, policy
        policy = torch.where(better, arg, policy)
    raise AutomechError("policy iteration did not converge")  # pragma: no cover


def evaluate_policy(R: torch.Tensor, policy: torch.Tensor, mdp: TabularMDP) -> torch.Tensor:
    """Values (..., S) of a deterministic ``policy`` (..., S) under rewards (..., S, A)."""
    pi = one_hot(policy, mdp.num_actions, R.dtype)
    r_pi = (R * pi).sum(-1)
    if mdp.horizon is not None:  # finite horizon
        V = R.new_zeros(R.shape[:-1])
        for _ in range(mdp.horizon):
            V = r_pi + mdp.gamma * (mdp.expect(V) * pi).sum(-1)
        return V
    eye = torch.eye(mdp.num_states, dtype=R.dtype)
    return torch.linalg.solve(eye - mdp.gamma * mdp.transition_matrix(pi), r_pi)


def occupancy(policy: torch.Tensor, mdp: TabularMDP, dtype=torch.float64) -> torch.Tensor:
    """State-action occupancy measure (..., S, A) of a deterministic policy (..., S)."""
    return soft_occupancy(one_hot(policy, mdp.num_actions, dtype), mdp)


def one_hot(policy: torch.Tensor, num_actions: int, dtype=torch.float64) -> torch.Tensor:
    return torch.nn.functional.one_hot(policy, num_actions).to(dtype)


# ------------------------------------------------------------------------ the LP (HiGHS)


def solve_lp(c, mdp: TabularMDP) -> tuple[float, np.ndarray]:
    """The occupancy-measure LP of Eq. (2) for one reward ``c`` (S, A), solved by HiGHS::

        max  sum_{s,a} c(s,a) nu(s,a)
        s.t. sum_a nu(s,a) = gamma sum_{s',a'} P(s|s',a') nu(s',a') + mu0(s)   for all s
             nu >= 0

    Returns the optimal value and the occupancy measure (S, A).
    """
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix

    c = np.asarray(c, dtype=float)
    S, A = mdp.num_states, mdp.num_actions
    if c.shape != (S, A):
        raise AutomechError(f"reward must have shape ({S}, {A}), got {c.shape}")
    P = mdp.P.numpy()
    rows: list[int | np.integer] = []
    cols: list[int] = []
    vals: list[float] = []
    for s in range(S):
        for a in range(A):
            rows.append(s)
            cols.append(s * A + a)
            vals.append(1.0)
            for t in np.nonzero(P[s, a])[0]:
                rows.append(t)
                cols.append(s * A + a)
                vals.append(-mdp.gamma * P[s, a, t])
    A_eq = coo_matrix((vals, (rows, cols)), shape=(S, S * A)).tocsr()
    res = linprog(-c.reshape(-1), A_eq=A_eq, b_eq=mdp.mu0.numpy(), bounds=(0, None), method="highs")
    if res.status != 0:
        raise AutomechError(f"HiGHS failed on the occupancy LP: {res.message}")
    return float(-res.fun), res.x.reshape(S, A)


# ------------------------------------------------------------- entropy-regularised solver


def soft_solve(
    R: torch.Tensor, mdp: TabularMDP, alpha: float, tol: float = 1e-12
) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft-optimal values (..., S) and softmax policy (..., S, A) of the problem
    regularised by ``alpha`` times the causal entropy; differentiable in ``R``."""
    _check(R, mdp)
    if alpha <= 0:
        raise AutomechError(f"regularisation alpha must be positive, got {alpha}")
    if mdp.horizon is not None:  # finite horizon
        V = R.new_zeros(R.shape[:-1])
        Q = R
        for _ in range(mdp.horizon):
            Q = R + mdp.gamma * mdp.expect(V)
            V = alpha * torch.logsumexp(Q / alpha, dim=-1)
        return V, torch.softmax(Q / alpha, dim=-1)
    with torch.no_grad():
        V = _soft_fixed_point(R.detach(), mdp, alpha, tol)
    # one differentiable soft policy-iteration step at the fixed point: its derivative is
    # the implicit-function derivative of the fixed point (the policy-evaluation value is
    # stationary in the policy there), so the gradient is exact, not truncated.
    pi = torch.softmax((R + mdp.gamma * mdp.expect(V)) / alpha, dim=-1)
    V = _soft_evaluate(R, pi, mdp, alpha)
    pi = torch.softmax((R + mdp.gamma * mdp.expect(V)) / alpha, dim=-1)
    return V, pi


def _soft_evaluate(R, pi, mdp, alpha):
    r_pi = (pi * R).sum(-1) - alpha * torch.special.xlogy(pi, pi).sum(-1)
    eye = torch.eye(mdp.num_states, dtype=R.dtype)
    return torch.linalg.solve(eye - mdp.gamma * mdp.transition_matrix(pi), r_pi)


def _soft_fixed_point(R, mdp, alpha, tol, max_iter=100):
    V = R.new_zeros(R.shape[:-1])
    for _ in range(20):  # soft value-iteration warm start
        V = alpha * torch.logsumexp((R + mdp.gamma * mdp.expect(V)) / alpha, dim=-1)
    for _ in range(max_iter):  # soft policy iteration (Newton)
        pi = torch.softmax((R + mdp.gamma * mdp.expect(V)) / alpha, dim=-1)
        new = _soft_evaluate(R, pi, mdp, alpha)
        gap = float((new - V).abs().max()) if new.numel() else 0.0
        V = new
        if gap <= tol * (1 + float(V.abs().max())):
            return V
    return V


def soft_occupancy(pi: torch.Tensor, mdp: TabularMDP) -> torch.Tensor:
    """Occupancy measure (..., S, A) of a stochastic policy ``pi`` (..., S, A);
    differentiable in ``pi``."""
    mu0 = mdp.mu0.to(pi.dtype)
    if mdp.horizon is not None:  # finite horizon
        d = mu0.expand(pi.shape[:-1])
        nu = torch.zeros_like(pi)
        for _ in range(mdp.horizon):
            nu = nu + d.unsqueeze(-1) * pi
            d = mdp.gamma * mdp.push(d, pi)
        return nu
    eye = torch.eye(mdp.num_states, dtype=pi.dtype)
    M = (eye - mdp.gamma * mdp.transition_matrix(pi)).transpose(-1, -2)
    d = torch.linalg.solve(M, mu0.expand(pi.shape[:-1]))
    return d.unsqueeze(-1) * pi


def _check(R: torch.Tensor, mdp: TabularMDP) -> None:
    if R.shape[-2:] != (mdp.num_states, mdp.num_actions):
        raise AutomechError(
            f"rewards must end in ({mdp.num_states}, {mdp.num_actions}), got {tuple(R.shape)}"
        )
