"""Dynamic mechanism design: affine maximisers on MDPs, optimised as a bilevel problem
(Curry, Thoma et al., "Automated Design of Affine Maximizer Mechanisms in Dynamic
Settings", AAAI 2024).

* :mod:`~automech.dynamic.mdp` -- tabular MDPs (finite horizon or discounted);
* :mod:`~automech.dynamic.solvers` -- exact batched inner solvers (backward induction,
  policy iteration), the occupancy-measure LP with HiGHS, entropy-regularised soft backups;
* :mod:`~automech.dynamic.envs` -- sequential sales, task scheduling, gridworld;
* :mod:`~automech.dynamic.ama` -- the dynamic AMA (Definition 3.1) and dynamic VCG;
* :mod:`~automech.dynamic.optimise` -- grid search, zeroth-order, regularised LP;
* :mod:`~automech.dynamic.evaluate` -- exact scoring, IR and IC checks;
* :mod:`~automech.dynamic.registry` -- named settings (``seq-sales-3x2``...);
* :mod:`~automech.dynamic.experiment` -- run directories (``automech train/evaluate``).

Static settings (valuation profiles, :class:`~automech.problems.Setting`) are untouched.
"""

from automech.dynamic.ama import DynamicAMA, Outcome, outcome
from automech.dynamic.envs import (
    DynamicEnv,
    Gridworld,
    RewardTables,
    SequentialSales,
    TaskScheduling,
)
from automech.dynamic.evaluate import DynamicEvaluation, evaluate_dynamic
from automech.dynamic.mdp import TabularMDP
from automech.dynamic.optimise import DYNAMIC_METHODS, get_dynamic_method
from automech.dynamic.registry import dynamic_setting_names, get_dynamic_setting, is_dynamic

__all__ = [
    "TabularMDP", "DynamicEnv", "SequentialSales", "TaskScheduling", "Gridworld",
    "RewardTables", "DynamicAMA", "Outcome", "outcome", "DynamicEvaluation",
    "evaluate_dynamic", "DYNAMIC_METHODS", "get_dynamic_method", "get_dynamic_setting",
    "dynamic_setting_names", "is_dynamic",
]
