"""The dynamic mechanism design environments of Curry et al. (2024), Section 5.

An environment is a tabular MDP (:class:`~automech.problems.dynamic.mdp.TabularMDP`),
``n`` agents, a prior over their private *types* and a map from types to reward functions
``r_i(s, a)``.  Types are tensors (B, n, *type_shape); :meth:`DynamicEnv.rewards` turns
them into rewards (B, n, S, A).  Everything is batched over profiles.

* :class:`SequentialSales` (``seq-sales-{n}x{m}``, ``seq-sales-asym-{n}x{m}``): ``m``
  identical items sold one per round to ``n`` unit-demand bidders.  A state is the record
  of who received each earlier item (time is in the state), an action sells the round's
  item to a bidder or to no one; a bidder values only the first item it gets.
* :class:`TaskScheduling` (``scheduling-{n}x{m}``, ``scheduling-asym-{n}x{m}``): ``m``
  tasks arrive one per round and must each be assigned to one of ``n`` workers; worker
  ``i``'s reward for task ``t`` is minus its processing time.  The designer minimises the
  makespan left when the last task is assigned.
* :class:`Gridworld` (``gridworld-{n}x{m}``): an ``m x m`` grid (wrapping at the edges),
  start in a corner, moves up/down/left/right, discount 0.9; agent ``i`` has a goal cell
  (uniform among the cells other than the start) and a value U[0, 1] received every time
  the mechanism enters it.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch

from automech.errors import AutomechError
from automech.problems.dynamic.mdp import DTYPE, TabularMDP

OBJECTIVES = ("revenue", "welfare", "makespan")


class DynamicEnv(ABC):
    """Base class.  Subclasses build :attr:`mdp` and implement the type prior and rewards.

    Attributes:
        kind: ``"dynamic"``, what tells an environment from a static
            :class:`~automech.problems.Setting` (whose kind is ``"static"``): methods,
            evaluation and checkpoints dispatch on it.
        family: the environment's family (``sequential-sales``, ``gridworld``...).
        name: registry name (``seq-sales-3x2``...).
        n: number of agents.
        mdp: the controlled MDP.
        objective: what the designer optimises: ``revenue``, ``welfare`` (maximised) or
            ``makespan`` (minimised).
        optimize_weights: whether the designer tunes the weights ``w`` too (the paper
            does for its asymmetric priors), or only the boosts ``b``.
        boost_bound: grid search draws boosts from ``[-boost_bound, boost_bound]``.
    """

    kind: ClassVar[str] = "dynamic"
    family: ClassVar[str]
    objective: str = "revenue"
    optimize_weights: bool = False
    boost_bound: float = 1.0
    type_shape: tuple[int, ...] = ()

    def __init__(self, name: str, n: int, mdp: TabularMDP) -> None:
        self.name = name
        self.n = n
        self.mdp = mdp

    @property
    def maximise(self) -> bool:
        return self.objective != "makespan"

    def test_profiles(self, count: int, seed: int) -> torch.Tensor:
        """The type profiles an evaluation scores: ``count`` prior draws."""
        return self.sample(count, seed)

    def sample(self, count: int, rng: np.random.Generator | int) -> torch.Tensor:
        """``count`` type profiles (count, n, *type_shape) from the prior; ``rng`` is a
        NumPy generator (drawn from) or a seed."""
        return self._sample(count, np.random.default_rng(rng))

    @abstractmethod
    def _sample(self, count: int, rng: np.random.Generator) -> torch.Tensor:
        """``count`` type profiles from the prior, drawn from generator ``rng``."""

    @abstractmethod
    def rewards(self, types: torch.Tensor) -> torch.Tensor:
        """Reward functions (..., n, S, A) of type profiles (..., n, *type_shape)."""

    @abstractmethod
    def null_type(self) -> torch.Tensor:
        """The report (n, *type_shape) standing in for "agent i absent" in the payment's
        ``asw^(-i)`` (row i for agent i): the lowest type, so payments are IR."""

    def loss_vector(self, types: torch.Tensor) -> torch.Tensor | None:
        """For objectives that are ``<nu, q>`` other than revenue/welfare (makespan):
        ``q`` (..., S, A); None otherwise."""
        return None

    def expected_loss(self, types: torch.Tensor, nu: torch.Tensor) -> torch.Tensor:
        """``<nu, q>`` (...,) for occupancy measures ``nu`` (..., S, A)."""
        q = self.loss_vector(types)
        assert q is not None  # only objectives with a loss vector ask for it
        return (nu * q).sum((-1, -2))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "env": self.family,
            "agents": self.n,
            "states": self.mdp.num_states,
            "actions": self.mdp.num_actions,
            "objective": self.objective,
            "mdp": self.mdp.describe(),
            "prior": self.describe_prior(),
        }

    @abstractmethod
    def describe_prior(self) -> str: ...

    def summary(self) -> dict[str, str]:
        """One row of ``automech settings``."""
        return {
            "name": self.name,
            "n": str(self.n),
            "MDP": self.mdp.describe(),
            "prior": self.describe_prior(),
            "objective": self.objective,
        }

    def describe(self) -> str:
        return (
            f"{self.family}, {self.n} agents, {self.mdp.describe()}, prior "
            f"{self.describe_prior()}, objective {self.objective}"
        )


# ------------------------------------------------------------------ sequential sales


def _histories(symbols: int, max_len: int) -> list[tuple[int, ...]]:
    """All sequences over ``range(symbols)`` of length 0..max_len, shortest first."""
    out: list[tuple[int, ...]] = []
    for length in range(max_len + 1):
        out.extend(itertools.product(range(symbols), repeat=length))
    return out


def _tree_mdp(actions: int, rounds: int, labels_action) -> tuple[TabularMDP, list]:
    """The MDP whose states are action histories of length < ``rounds`` (deterministic;
    the decision in the last round ends the episode)."""
    states = _histories(actions, rounds - 1)
    index = {h: k for k, h in enumerate(states)}
    S = len(states)
    P = torch.zeros(S, actions, S, dtype=DTYPE)
    for k, h in enumerate(states):
        if len(h) < rounds - 1:
            for a in range(actions):
                P[k, a, index[h + (a,)]] = 1.0
    mu0 = torch.zeros(S, dtype=DTYPE)
    mu0[0] = 1.0
    mdp = TabularMDP(
        P,
        mu0,
        1.0,
        labels=[list(h) for h in states],
        action_labels=[labels_action(a) for a in range(actions)],
    )
    return mdp, states


class SequentialSales(DynamicEnv):
    """``m`` identical items sold sequentially to ``n`` unit-demand bidders.

    Action 0 sells the round's item to no one, action ``i`` (1..n) to bidder ``i``; bidder
    ``i`` gets reward ``v_i`` when it receives its first item.  Priors (``asymmetric``):

    * None: ``v_i ~ U[0, 1]``;
    * ``"increasing"``: ``v_i ~ U[0, i]``, the asymmetric prior as our issue states it
      (VCG revenue for n=3, m=2 is ``2 E[min] = 0.75``);
    * ``"decreasing"``: ``v_i ~ U[0, 1/i]``, the prior behind the paper's Table 2 (its VCG
      row, 0.2348 for n=3, m=2, is ``2 E[min] = 19/81``) and the published code.
    """

    family = "sequential-sales"
    type_shape = (1,)

    ASYMMETRIC = {
        "increasing": ("-asym", "v_i ~ U[0, i]", lambda i: float(i)),
        "decreasing": ("-asym-inv", "v_i ~ U[0, 1/i]", lambda i: 1.0 / i),
    }

    def __init__(self, n: int, m: int, asymmetric: str | None = None, name: str | None = None):
        if n < 1 or m < 1:
            raise AutomechError(f"sequential sales needs n, m >= 1, got n={n}, m={m}")
        if asymmetric is not None and asymmetric not in self.ASYMMETRIC:
            raise AutomechError(
                f"asymmetric must be one of {list(self.ASYMMETRIC)} or None, got {asymmetric!r}"
            )
        mdp, states = _tree_mdp(n + 1, m, lambda a: "none" if a == 0 else f"bidder {a}")
        suffix, self._prior_text, high = (
            self.ASYMMETRIC[asymmetric] if asymmetric else ("", "v_i ~ U[0, 1]", lambda i: 1.0)
        )
        super().__init__(name or f"seq-sales{suffix}-{n}x{m}", n, mdp)
        self.m = m
        self.asymmetric = asymmetric
        self.optimize_weights = asymmetric is not None
        self.boost_bound = float(n)
        self.high = torch.tensor([high(i + 1) for i in range(n)], dtype=DTYPE)
        # mask[i, s, a] = 1 when action a gives bidder i its first item in state s
        mask = torch.zeros(n, mdp.num_states, n + 1, dtype=DTYPE)
        for k, h in enumerate(states):
            for i in range(n):
                if (i + 1) not in h:
                    mask[i, k, i + 1] = 1.0
        self.mask = mask

    def _sample(self, count, rng):
        u = torch.as_tensor(rng.random((count, self.n, 1)), dtype=DTYPE)
        return u * self.high[:, None]

    def rewards(self, types):
        return types[..., :1, None] * self.mask  # (..., n, 1, 1) * (n, S, A)

    def null_type(self):
        return torch.zeros(self.n, 1, dtype=DTYPE)

    def describe_prior(self):
        return self._prior_text


# ------------------------------------------------------------------ task scheduling


class TaskScheduling(DynamicEnv):
    """``m`` tasks, one arriving per round, each assigned to one of ``n`` workers.

    Worker ``i``'s type is its processing times ``t_i = (t_i1, ..., t_im)``; assigning task
    ``tau`` to ``i`` gives ``i`` reward ``-t_i,tau``.  Symmetric prior ``U[0, 3]``,
    asymmetric ``U[0, 3 i]``.  The designer's loss is the makespan left when the last task
    is assigned: workers process their queues one after another, one time unit passing
    between arrivals, and the loss is the largest remaining queue (:meth:`makespans`, whose
    default rule is the one of the paper's published code).
    """

    family = "task-scheduling"
    objective = "makespan"

    def __init__(
        self,
        n: int,
        m: int,
        asymmetric: bool = False,
        name: str | None = None,
        makespan_rule: str = "published",
    ):
        if makespan_rule not in ("published", "queue"):
            raise AutomechError(
                f"makespan_rule must be 'published' or 'queue', got {makespan_rule!r}"
            )
        self.makespan_rule = makespan_rule
        if n < 2 or m < 1:
            raise AutomechError(f"task scheduling needs n >= 2, m >= 1, got n={n}, m={m}")
        mdp, states = _tree_mdp(n, m, lambda a: f"worker {a + 1}")
        super().__init__(name or f"scheduling{'-asym' if asymmetric else ''}-{n}x{m}", n, mdp)
        self.m = m
        self.asymmetric = asymmetric
        self.optimize_weights = asymmetric
        self.type_shape = (m,)
        self.high = torch.tensor(
            [3.0 * (i + 1) if asymmetric else 3.0 for i in range(n)], dtype=DTYPE
        )
        self.boost_bound = float(n * max(n, 3))
        S = mdp.num_states
        # mask[i, tau, s, a] = 1 when state s is in round tau and action a picks worker i
        mask = torch.zeros(n, m, S, n, dtype=DTYPE)
        terminal = []  # (state, action, full assignment) of last round
        for k, h in enumerate(states):
            for i in range(n):
                mask[i, len(h), k, i] = 1.0
            if len(h) == m - 1:
                for a in range(n):
                    terminal.append((k, a, h + (a,)))
        self.mask = mask
        self.terminal_sa = torch.tensor([[k, a] for k, a, _ in terminal], dtype=torch.long)
        self.assignments = torch.tensor([full for _, _, full in terminal], dtype=torch.long)

    def _sample(self, count, rng):
        u = torch.as_tensor(rng.random((count, self.n, self.m)), dtype=DTYPE)
        return u * self.high[:, None]

    def rewards(self, types):
        return -torch.einsum("...it,itsa->...isa", types, self.mask)

    def null_type(self):
        # the worst report (longest times): asw^(-i) is then a lower bound on asw, so the
        # payments (which compensate the workers) are IR; with r_i = 0 ("i disregarded")
        # the counterfactual would give every task to the free worker i and charge it.
        return self.high[:, None].expand(self.n, self.m).clone()

    def makespans(self, types: torch.Tensor, assignments: torch.Tensor) -> torch.Tensor:
        """Makespans of assignments (..., m) (worker per task) for types (..., n, m); the
        leading dimensions broadcast (types (B, 1, n, m) with assignments (K, m) give
        (B, K)).

        Before each arrival every non-empty queue shrinks by one time unit, then the
        assigned worker's queue grows by its time for the task; the loss is the longest
        queue after the last assignment, at least 0 (the paper's
        ``max_i (sum_tau x_tau,i t_i,tau - t~_i)``).

        ``makespan_rule="published"`` (default) is the rule of the paper's published code,
        which produced its Tables 3-4: a queue holding less than one unit goes *below*
        zero, crediting the worker the idle rest of that time unit against its next task.
        ``makespan_rule="queue"`` clamps queues at zero, a plain single-server queue; it
        does not reproduce the published numbers (``docs/results.md``).
        """
        lead = torch.broadcast_shapes(types.shape[:-2], assignments.shape[:-1])
        pick = torch.nn.functional.one_hot(assignments, self.n).to(types.dtype)  # (..., m, n)
        times = types.transpose(-1, -2)  # (..., m, n)
        queue = types.new_zeros(*lead, self.n)
        for tau in range(self.m):
            if self.makespan_rule == "published":
                queue = torch.where(queue > 0, queue - 1.0, queue)
            elif tau:
                queue = (queue - 1.0).clamp_min(0.0)
            queue = queue + pick[..., tau, :] * times[..., tau, :]
        return queue.max(-1).values.clamp_min(0.0)

    def loss_vector(self, types):
        lead = types.shape[:-2]
        q = types.new_zeros(*lead, self.mdp.num_states, self.mdp.num_actions)
        q[..., self.terminal_sa[:, 0], self.terminal_sa[:, 1]] = self.makespans(
            types.unsqueeze(-3), self.assignments
        )
        return q

    def expected_loss(self, types, nu):
        last = nu[..., self.terminal_sa[:, 0], self.terminal_sa[:, 1]]  # (..., K)
        if bool(((last > 0).sum(-1) == 1).all()):  # one trajectory: only its makespan
            reached = last.argmax(-1)
            return last.amax(-1) * self.makespans(types, self.assignments[reached])
        return super().expected_loss(types, nu)

    def describe_prior(self):
        return "t_i,tau ~ U[0, 3 i]" if self.asymmetric else "t_i,tau ~ U[0, 3]"


# ------------------------------------------------------------------ gridworld


class Gridworld(DynamicEnv):
    """An ``m x m`` grid that wraps at its edges; the mechanism starts at cell (0, 0) and
    moves up/down/left/right forever, discounting by ``gamma`` (0.9).

    Agent ``i``'s type is a vector over cells (n, S): one goal cell, uniform among the
    cells other than the start, holds its value ``U[0, 1]``, the others 0.  The agent
    receives its value each time the mechanism enters the goal: ``r_i(s, a) =
    type_i[next(s, a)]``.  Reports may be any non-negative vector over cells.
    """

    family = "gridworld"

    def __init__(self, n: int, size: int, gamma: float = 0.9, name: str | None = None):
        if n < 1 or size < 2:
            raise AutomechError(f"gridworld needs n >= 1 and size >= 2, got n={n}, m={size}")
        cells = [(x, y) for y in range(size) for x in range(size)]
        index = {c: k for k, c in enumerate(cells)}
        moves = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}
        S, A = len(cells), len(moves)
        P = torch.zeros(S, A, S, dtype=DTYPE)
        for k, (x, y) in enumerate(cells):
            for a, (dx, dy) in enumerate(moves.values()):
                P[k, a, index[((x + dx) % size, (y + dy) % size)]] = 1.0
        mu0 = torch.zeros(S, dtype=DTYPE)
        mu0[0] = 1.0
        mdp = TabularMDP(P, mu0, gamma, labels=[list(c) for c in cells], action_labels=list(moves))
        super().__init__(name or f"gridworld-{n}x{size}", n, mdp)
        self.size = size
        self.type_shape = (S,)
        self.boost_bound = n / (1 - gamma)

    def _sample(self, count, rng):
        S = self.mdp.num_states
        goal = rng.integers(1, S, size=(count, self.n))  # never the start
        value = rng.random((count, self.n))
        types = np.zeros((count, self.n, S))
        np.put_along_axis(types, goal[..., None], value[..., None], axis=-1)
        return torch.as_tensor(types, dtype=DTYPE)

    def rewards(self, types):
        return types[..., self.mdp.next_state]  # (..., n, S, A)

    def null_type(self):
        return torch.zeros(self.n, self.mdp.num_states, dtype=DTYPE)

    def describe_prior(self):
        return "one goal cell ~ U(cells except start), value ~ U[0, 1]"


# ------------------------------------------------------------------ arbitrary reward tables


class RewardTables(DynamicEnv):
    """Any tabular MDP with each agent's reward function drawn whole:
    ``r_i(s, a) ~ U[0, high]`` independently.  Types *are* reward functions (n, S, A), so a
    report may be any reward function; used to check IC on small random MDPs."""

    family = "reward-tables"

    def __init__(
        self,
        mdp: TabularMDP,
        n: int,
        high: float = 1.0,
        name: str = "reward-tables",
        objective: str = "revenue",
    ):
        if objective not in ("revenue", "welfare"):
            raise AutomechError(f"objective must be revenue or welfare, got {objective!r}")
        super().__init__(name, n, mdp)
        self.high = float(high)
        self.objective = objective
        self.type_shape = (mdp.num_states, mdp.num_actions)
        self.boost_bound = float(n)

    def _sample(self, count, rng):
        shape = (count, self.n, *self.type_shape)
        return torch.as_tensor(rng.random(shape) * self.high, dtype=DTYPE)

    def rewards(self, types):
        return types

    def null_type(self):
        return torch.zeros(self.n, *self.type_shape, dtype=DTYPE)

    def describe_prior(self):
        return f"r_i(s, a) ~ U[0, {self.high:g}] independently"
