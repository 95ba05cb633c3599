"""Problems: settings, priors over valuation profiles, objectives, the named registry."""

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
    get_setting,
    register,
    register_family,
    setting_from_dict,
    setting_names,
)
from automech.problems.setting import Setting

__all__ = [
    "LAWS", "Law1D", "OBJECTIVES", "Objective", "Prior", "IndependentPrior", "DiscretePrior",
    "IndependentDiscretePrior", "SphericalPrior", "CorrelatedPrior", "Setting", "get_setting",
    "register", "register_family", "setting_from_dict", "setting_names",
]
