"""MyersonNet: learn monotone virtual value functions for a single-item auction.

Duetting et al., "Optimal Auctions through Deep Learning", Section 4 (the network is
:class:`~automech.mechanisms.learned.myersonnet.MyersonNetMechanism`). Every parameter value gives
an exactly DSIC and IR auction, so training is plain revenue maximisation of the softmax
relaxation

    max_{alpha, beta}  E_v sum_i z_i(v) * phibar_i^-1( max(0, max_{k != i} phibar_k(v_k)) ),
    z = softmax(T * [phibar_1(v_1), ..., phibar_n(v_n), 0]),

by the shared loop (fresh prior samples every step, Adam), with the inverse temperature T
raised over training so the relaxation approaches SPA-0. For i.i.d. regular priors the
optimum is Myerson's auction (any common increasing transform of the true virtual value).
"""

from __future__ import annotations

from dataclasses import dataclass

from automech.mechanisms.learned.myersonnet import MyersonNetMechanism
from automech.problems.setting import Setting
from automech.training import FitContext, GradientMethod, SoftmaxOptions, TrainerOptions, option


@dataclass(frozen=True)
class MyersonNetOptions(TrainerOptions, SoftmaxOptions):
    """MyersonNet's options.  A cold start (T ~ 50) lets the relaxation pull the
    reserves to 0 and training stalls at the second-price auction, hence T from 1000."""

    method = "myersonnet"
    groups: int = option(10, "K: groups of lines (min over groups)", low=1)
    lines: int = option(10, "J: lines per group (max over lines)", low=1)
    steps: int = 1500
    batch_size: int = 4096
    lr: float = 0.01
    lr_final: float = 0.0002
    temperature: float = 1000.0
    temperature_final: float = 3000.0
    validate_every: int = 250


class MyersonNet(GradientMethod):
    """MyersonNet: monotone virtual values for one item (Duetting et al. 2019, Section 4)."""

    name = "myersonnet"
    Options = MyersonNetOptions
    mechanism = MyersonNetMechanism

    def applicable(self, setting: Setting) -> str | None:
        return MyersonNetMechanism.applicable(setting)

    def build(self, ctx: FitContext) -> MyersonNetMechanism:
        o = ctx.options
        return MyersonNetMechanism(ctx.setting, groups=o.groups, lines=o.lines, init_seed=ctx.seed)
