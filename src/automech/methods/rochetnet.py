"""RochetNet / MenuNet: learn a single bidder's menu by gradient ascent on revenue.

Duetting et al. (2019), Section 3.2; Shen, Tang and Zuo (2019).  The menu
(:class:`~automech.mechanisms.learned.menu.MenuMechanism`) is exactly DSIC and IR for any
parameters; training maximises the objective of its softmax relaxation, with the
temperature raised over training so the relaxation approaches the argmax.
"""

from __future__ import annotations

from dataclasses import dataclass

from automech.mechanisms.learned.menu import MenuMechanism
from automech.problems.setting import Setting
from automech.training import FitContext, GradientMethod, SoftmaxOptions, TrainerOptions, option


@dataclass(frozen=True)
class RochetNetOptions(TrainerOptions, SoftmaxOptions):
    """RochetNet's options.  The defaults are measured on 1x2-uniform
    (``bench/rochetnet.py``; ``docs/results.md``): the batch matters more than the menu
    or the step count."""

    method = "rochetnet"
    menu_size: int = option(64, "menu entries besides the null entry", low=1)
    steps: int = 500
    batch_size: int = 16384
    lr: float = 0.05
    lr_final: float = 0.002
    temperature: float = 20.0
    temperature_final: float = 1000.0
    validate_every: int = 100
    checkpoint_every: int = 250


class RochetNet(GradientMethod):
    """RochetNet / MenuNet: a single bidder's menu of lotteries (Duetting et al. 2019, 3.2)."""

    name = "rochetnet"
    Options = RochetNetOptions
    mechanism = MenuMechanism

    def applicable(self, setting: Setting) -> str | None:
        return MenuMechanism.applicable(setting)

    def build(self, ctx: FitContext) -> MenuMechanism:
        return MenuMechanism(ctx.setting, menu_size=ctx.options.menu_size, init_seed=ctx.seed)
