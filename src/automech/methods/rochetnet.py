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
        # Measured on 1x2-uniform ("tried" in bench/results/rochetnet.json): the batch matters
        # more than the menu or the step count.  With 64 entries, 500 steps of 16,384
        # profiles came within 0.15% of the optimum in 8 of 8 seeds (~30 s on 2 busy cores);
        # 4,096 or 8,192 profiles per step often settled 0.6-1% below it, even over 1,500-3,000
        # steps.  The optimal menu has 3 entries.
        "menu_size": 64,
        "steps": 500,
        "batch_size": 16384,
        "lr": 0.05,
        "lr_final": 0.002,
        "temperature": 20.0,
        "temperature_final": 1000.0,
        "validate_every": 100,
        "checkpoint_every": 250,
    }

    def applicable(self, setting: Setting) -> str | None:
        return MenuMechanism.applicable(setting)

    def build(self, setting: Setting, options: dict[str, Any], seed: int) -> MenuMechanism:
        return MenuMechanism(setting, menu_size=options["menu_size"], init_seed=seed)
