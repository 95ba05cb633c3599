"""RochetNet / MenuNet: learn a single bidder's menu by gradient ascent on revenue.

Duetting et al. (2019), Section 3.2; Shen, Tang and Zuo (2019).  The menu
(:class:`~automech.mechanisms.menu.MenuMechanism`) is exactly DSIC and IR for any
parameters; training maximises the objective of its softmax relaxation, with the
temperature raised over training so the relaxation approaches the argmax.
"""

from __future__ import annotations

from typing import Any

from automech.mechanisms.menu import MenuMechanism
from automech.problems.setting import Setting
from automech.training.trainer import GradientMethod


class RochetNet(GradientMethod):
    name = "rochetnet"
    defaults = {
        **GradientMethod.defaults,
        "menu_size": 256,
        "steps": 3000,
        "batch_size": 8192,
        "lr": 0.05,
        "lr_final": 0.002,
        "temperature": 20.0,
        "temperature_final": 1000.0,
        "validate_every": 250,
    }

    def applicable(self, setting: Setting) -> str | None:
        return MenuMechanism.applicable(setting)

    def build(self, setting: Setting, options: dict[str, Any], seed: int) -> MenuMechanism:
        return MenuMechanism(setting, menu_size=options["menu_size"], init_seed=seed)
