"""The registry of design methods: ``automech train SETTING --method NAME``.

Adding a method is one new module and one line in :data:`METHODS`.
"""

from __future__ import annotations

from automech.errors import NotApplicableError
from automech.mechanisms import CLASSICAL
from automech.methods.base import Classical, Method
from automech.methods.rochetnet import RochetNet

METHODS: dict[str, Method] = {
    **{cls.name: Classical(cls) for cls in CLASSICAL},
    RochetNet.name: RochetNet(),
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise NotApplicableError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[name]


__all__ = ["METHODS", "Method", "Classical", "get_method"]
