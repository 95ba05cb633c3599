"""Dynamic problems: tabular MDPs controlled by a mechanism, with agents whose private
types are reward functions (Curry, Thoma et al., "Automated Design of Affine Maximizer
Mechanisms in Dynamic Settings", AAAI 2024).

* :mod:`~automech.problems.dynamic.mdp` -- tabular MDPs (finite horizon or discounted);
* :mod:`~automech.problems.dynamic.solvers` -- exact batched inner solvers (backward
  induction, policy iteration), the occupancy-measure LP with HiGHS, entropy-regularised
  soft backups;
* :mod:`~automech.problems.dynamic.envs` -- sequential sales, task scheduling, gridworld,
  random reward tables;
* :mod:`~automech.problems.dynamic.settings` -- the named settings (``seq-sales-3x2``...),
  which :func:`automech.problems.get_setting` serves beside the static ones.

The mechanism is :class:`~automech.mechanisms.learned.dynamic_ama.DynamicAMA`, scored by
:mod:`automech.evaluation.dynamic` and designed by the methods of
:mod:`automech.methods.dynamic` (``grid-search``, ``zeroth-order``, ``regularized-lp``).
"""

from automech.problems.dynamic.envs import (
    DynamicEnv,
    Gridworld,
    RewardTables,
    SequentialSales,
    TaskScheduling,
)
from automech.problems.dynamic.mdp import DTYPE, TabularMDP
from automech.problems.dynamic.settings import (
    dynamic_from_dict,
    dynamic_setting_names,
    get_dynamic_setting,
    is_dynamic,
)

__all__ = [
    "TabularMDP",
    "DTYPE",
    "DynamicEnv",
    "SequentialSales",
    "TaskScheduling",
    "Gridworld",
    "RewardTables",
    "get_dynamic_setting",
    "dynamic_setting_names",
    "dynamic_from_dict",
    "is_dynamic",
]
