"""Training: what a method is, its typed options, the fit context, the shared loop."""

from automech.training.method import Classical, FitContext, Method, NoOptions
from automech.training.options import OptionInfo, Options, option
from automech.training.trainer import (
    SCHEDULES,
    GradientMethod,
    SoftmaxOptions,
    TrainerOptions,
    schedule,
)

__all__ = [
    "Method",
    "Classical",
    "FitContext",
    "NoOptions",
    "Options",
    "OptionInfo",
    "option",
    "GradientMethod",
    "TrainerOptions",
    "SoftmaxOptions",
    "schedule",
    "SCHEDULES",
]
