"""MyersonNet: learn monotone virtual value functions for a single-item auction.

Duetting et al., "Optimal Auctions through Deep Learning", Section 4 (the network is
:class:`~automech.mechanisms.myersonnet.MyersonNetMechanism`). Every parameter value gives
an exactly DSIC and IR auction, so training is plain revenue maximisation of the softmax
relaxation

    max_{alpha, beta}  E_v sum_i z_i(v) * phibar_i^-1( max(0, max_{k != i} phibar_k(v_k)) ),
    z = softmax(T * [phibar_1(v_1), ..., phibar_n(v_n), 0]),

by the shared loop (fresh prior samples every step, Adam), with the inverse temperature T
raised over training so the relaxation approaches SPA-0. For i.i.d. regular priors the
optimum is Myerson's auction (any common increasing transform of the true virtual value).
"""

from __future__ import annotations

from typing import Any

from automech.mechanisms.myersonnet import MyersonNetMechanism
from automech.problems.setting import Setting
from automech.training.trainer import GradientMethod


class MyersonNet(GradientMethod):
    name = "myersonnet"
    defaults = {
        **GradientMethod.defaults,
        "groups": 10,             # K: groups of lines (min over groups)
        "lines": 10,              # J: lines per group (max over lines)
        "steps": 1500,
        "batch_size": 4096,
        "lr": 0.01,
        "lr_final": 0.0002,
        "temperature": 1000.0,    # a cold start (T ~ 50) lets the relaxation pull the
        "temperature_final": 3000.0,  # reserves to 0 and training stalls at SPA
        "validate_every": 250,
    }

    def applicable(self, setting: Setting) -> str | None:
        return MyersonNetMechanism.applicable(setting)

    def build(self, setting: Setting, options: dict[str, Any], seed: int) -> MyersonNetMechanism:
        return MyersonNetMechanism(setting, groups=options["groups"], lines=options["lines"],
                                   init_seed=seed)
