"""The registry of design methods: ``automech train SETTING --method NAME``.

Adding a method is one new module and one line in :data:`METHODS`.
"""

from __future__ import annotations

from automech.errors import NotApplicableError
from automech.mechanisms import CLASSICAL
from automech.methods.ama import DeterministicAMAMethod, LotteryAMAMethod
from automech.methods.algnet import ALGNet
from automech.methods.base import Classical, Method
from automech.methods.gemnet import GemNet
from automech.methods.lp import LinearProgramMethod
from automech.methods.myersonnet import MyersonNet
from automech.methods.regretnet import RegretNet
from automech.methods.rochetnet import RochetNet
from automech.methods.tedi import TEDI

METHODS: dict[str, Method] = {
    **{cls.name: Classical(cls) for cls in CLASSICAL},
    LinearProgramMethod.name: LinearProgramMethod(),
    RochetNet.name: RochetNet(),
    MyersonNet.name: MyersonNet(),
    RegretNet.name: RegretNet(),
    ALGNet.name: ALGNet(),
    LotteryAMAMethod.name: LotteryAMAMethod(),
    DeterministicAMAMethod.name: DeterministicAMAMethod(),
    TEDI.name: TEDI(),
    GemNet.name: GemNet(),
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise NotApplicableError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[name]


__all__ = ["METHODS", "Method", "Classical", "get_method"]
