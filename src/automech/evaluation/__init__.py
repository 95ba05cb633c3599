"""One evaluation protocol for every mechanism: :func:`evaluate`."""

from automech.evaluation.protocol import Evaluation, evaluate
from automech.evaluation.regret import THOROUGH, RegretSearch, best_misreport_utility

__all__ = ["Evaluation", "evaluate", "RegretSearch", "THOROUGH", "best_misreport_utility"]
