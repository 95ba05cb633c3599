"""Problems: settings, priors over valuation profiles, objectives, dynamic (MDP) settings,
the named registry of both."""

from automech.problems.data import DataPrior
from automech.problems.dynamic import DynamicEnv, is_dynamic
from automech.problems.laws import LAWS, Law1D
from automech.problems.objectives import OBJECTIVES, Objective
from automech.problems.priors import (
    CorrelatedPrior,
    DiscretePrior,
    IndependentDiscretePrior,
    IndependentPrior,
    Prior,
    SphericalPrior,
)
from automech.problems.registry import (
    KINDS,
    get_setting,
    register,
    register_family,
    setting_from_dict,
    setting_names,
    setting_tables,
)
from automech.problems.setting import Setting

__all__ = [
    "LAWS",
    "Law1D",
    "OBJECTIVES",
    "Objective",
    "Prior",
    "IndependentPrior",
    "DiscretePrior",
    "IndependentDiscretePrior",
    "SphericalPrior",
    "CorrelatedPrior",
    "DataPrior",
    "Setting",
    "get_setting",
    "register",
    "register_family",
    "setting_from_dict",
    "setting_names",
    "setting_tables",
    "KINDS",
    "DynamicEnv",
    "is_dynamic",
]
