"""Tabular MDPs whose rewards are not yet specified: the environment a dynamic mechanism
controls (Curry et al. 2024, Section 3: ``M = (S, A, P)`` with initial distribution mu_0).

Two kinds, told apart by the transition graph:

* **finite horizon** (acyclic: the time step is encoded in the state).  Every trajectory
  ends after at most :attr:`TabularMDP.horizon` decisions; a state-action pair with no
  successor ends the episode.  Backward induction over ``horizon`` stages is exact.
* **discounted** (cycles allowed, ``gamma < 1``): infinite-horizon discounted reward.

Transitions are kept dense, ``P[s, a, s']``; when every state-action pair has at most one
successor the MDP is *deterministic* and :attr:`TabularMDP.next_state` holds the successor
index (``S`` meaning "the episode ends"), which the batched solvers use for gathers instead
of matrix products.  Rewards are never stored here: solvers take them as tensors of shape
``(..., S, A)``, batched over any leading dimensions (sampled profiles, perturbations,
the n "without i" problems...).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from automech.errors import AutomechError

DTYPE = torch.float64


@dataclass(eq=False)
class TabularMDP:
    """``P`` (S, A, S) transition probabilities (rows may sum to less than one: the rest
    ends the episode), ``mu0`` (S,) initial distribution, ``gamma`` the discount.

    ``labels`` names the states (for describing boosts); ``action_labels`` the actions.
    """

    P: torch.Tensor
    mu0: torch.Tensor
    gamma: float = 1.0
    labels: list = field(default_factory=list)
    action_labels: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.P = torch.as_tensor(self.P, dtype=DTYPE)
        self.mu0 = torch.as_tensor(self.mu0, dtype=DTYPE)
        if self.P.ndim != 3 or self.P.shape[0] != self.P.shape[2]:
            raise AutomechError(f"transition tensor must be (S, A, S), got {tuple(self.P.shape)}")
        if self.mu0.shape != (self.P.shape[0],):
            raise AutomechError(f"initial distribution must have shape ({self.P.shape[0]},)")
        if (self.P < 0).any() or (self.P.sum(-1) > 1 + 1e-9).any():
            raise AutomechError("transition rows must be probabilities summing to at most 1")
        if not 0 < self.gamma <= 1:
            raise AutomechError(f"discount must be in (0, 1], got {self.gamma}")
        S, A = self.num_states, self.num_actions
        depth = _depth(self.P)
        self.horizon: int | None = None
        #: finite horizon: state indices grouped by decisions left (1, 2, ..., horizon);
        #: every successor of a state lies in an earlier group (backward-induction order)
        self.layers: list[torch.Tensor] | None = None
        if depth is not None:
            self.horizon = max(depth) if depth else 0
            self.layers = [
                torch.tensor([s for s in range(S) if depth[s] == k], dtype=torch.long)
                for k in range(1, self.horizon + 1)
            ]
        if self.horizon is None and self.gamma >= 1:
            raise AutomechError("an MDP with cycles needs a discount gamma < 1")
        successors = (self.P > 0).sum(-1)
        self.deterministic = bool((successors <= 1).all()) and bool(
            torch.all((self.P == 0) | (self.P == 1))
        )
        self.next_state: torch.Tensor | None = None
        if self.deterministic:
            nxt = torch.where(successors > 0, self.P.argmax(-1), torch.full((S, A), S))
            self.next_state = nxt.long()
        if not self.labels:
            self.labels = list(range(S))
        if not self.action_labels:
            self.action_labels = list(range(A))

    @property
    def num_states(self) -> int:
        return self.P.shape[0]

    @property
    def num_actions(self) -> int:
        return self.P.shape[1]

    @property
    def finite(self) -> bool:
        """True for the finite-horizon (acyclic) kind."""
        return self.horizon is not None

    # -------------------------------------------------------------- batched primitives

    def expect(self, V: torch.Tensor) -> torch.Tensor:
        """``sum_s' P(s'|s, a) V(s')`` for values ``V`` (..., S): shape (..., S, A)."""
        if self.next_state is not None:
            pad = torch.cat([V, V.new_zeros(*V.shape[:-1], 1)], dim=-1)
            return pad[..., self.next_state]
        return torch.einsum("sat,...t->...sa", self.P.to(V.dtype), V)

    def transition_matrix(self, pi: torch.Tensor) -> torch.Tensor:
        """State-to-state matrix ``P_pi[s, s'] = sum_a pi(a|s) P(s'|s, a)``: (..., S, S)
        for a (possibly stochastic) policy ``pi`` (..., S, A)."""
        S = self.num_states
        if self.next_state is not None:
            out = pi.new_zeros(*pi.shape[:-1], S + 1)
            index = self.next_state.expand(*pi.shape)
            return out.scatter_add(-1, index, pi)[..., :S]
        return torch.einsum("...sa,sat->...st", pi, self.P.to(pi.dtype))

    def push(self, d: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        """State distribution one step later: ``d'(s') = sum_{s,a} d(s) pi(a|s) P(s'|s,a)``."""
        S = self.num_states
        flow = d.unsqueeze(-1) * pi  # (..., S, A)
        if self.next_state is not None:
            out = flow.new_zeros(*flow.shape[:-2], S + 1)
            index = self.next_state.reshape(-1).expand(*flow.shape[:-2], S * self.num_actions)
            return out.scatter_add(-1, index, flow.reshape(*flow.shape[:-2], -1))[..., :S]
        return torch.einsum("...sa,sat->...t", flow, self.P.to(flow.dtype))

    def describe(self) -> str:
        kind = f"finite horizon {self.horizon}" if self.finite else f"discounted gamma={self.gamma}"
        return f"{self.num_states} states, {self.num_actions} actions, {kind}"


def _depth(P: torch.Tensor) -> list[int] | None:
    """Per state, the largest number of decisions left in an episode from it (counting
    the decision whose successor ends the episode) if the transition graph is acyclic,
    else None."""
    S = P.shape[0]
    adj = (P > 0).any(dim=1)  # (S, S): s -> s'
    indeg = adj.sum(0).tolist()
    order, frontier = [], [s for s in range(S) if indeg[s] == 0]
    while frontier:
        s = frontier.pop()
        order.append(s)
        for t in torch.nonzero(adj[s]).flatten().tolist():
            indeg[t] -= 1
            if indeg[t] == 0:
                frontier.append(t)
    if len(order) < S:
        return None
    depth = [1] * S
    for s in reversed(order):
        succ = torch.nonzero(adj[s]).flatten().tolist()
        if succ:
            depth[s] = 1 + max(depth[t] for t in succ)
    return depth
