"""automech: automated mechanism design.

Problems (:mod:`automech.problems`), mechanisms with one interface
(:mod:`automech.mechanisms`), design methods (:mod:`automech.methods`) and one
evaluation protocol (:mod:`automech.evaluation`).
"""

from automech._version import __version__
from automech.evaluation import Evaluation, RegretSearch, evaluate  # noqa: E402
from automech.experiment import load, save, train  # noqa: E402
from automech.problems import Setting, get_setting  # noqa: E402

__all__ = [
    "Setting",
    "get_setting",
    "evaluate",
    "Evaluation",
    "RegretSearch",
    "load",
    "save",
    "train",
    "__version__",
]
