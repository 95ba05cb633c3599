"""The registry of design methods: ``automech train SETTING --method NAME``.

Every method lives in its own module and is imported only when first used.  Adding a
method is one new module and one line in :data:`REGISTRY` (``"name": "module:Class"``);
``tests/test_design_layer.py`` then walks it through train, save, load and evaluate.
The closed-form mechanisms of :data:`automech.mechanisms.CLASSICAL` are methods too.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping

from automech.errors import NotApplicableError
from automech.mechanisms import CLASSICAL
from automech.training.method import Classical, Method

#: Method name -> ``"module:Class"`` of a learned (or optimised) method.
REGISTRY: dict[str, str] = {
    "lp": "automech.methods.lp:LinearProgramMethod",
    "rochetnet": "automech.methods.rochetnet:RochetNet",
    "myersonnet": "automech.methods.myersonnet:MyersonNet",
    "regretnet": "automech.methods.regretnet:RegretNet",
    "algnet": "automech.methods.algnet:ALGNet",
    "lottery-ama": "automech.methods.ama:LotteryAMAMethod",
    "deterministic-ama": "automech.methods.ama:DeterministicAMAMethod",
    "tedi": "automech.methods.tedi:TEDI",
    "gemnet": "automech.methods.gemnet:GemNet",
    "grid-search": "automech.methods.dynamic:GridSearch",
    "zeroth-order": "automech.methods.dynamic:ZerothOrder",
    "regularized-lp": "automech.methods.dynamic:RegularizedLP",
}


class _Methods(MutableMapping[str, Method]):
    """Name -> method instance, importing a method's module on first access."""

    def __init__(self) -> None:
        self._specs: dict[str, str | Method] = {
            **{cls.name: Classical(cls) for cls in CLASSICAL},
            **REGISTRY,
        }

    def __getitem__(self, name: str) -> Method:
        spec = self._specs[name]
        if isinstance(spec, str):
            module, _, attr = spec.partition(":")
            spec = self._specs[name] = getattr(importlib.import_module(module), attr)()
        return spec

    def __setitem__(self, name: str, method: Method) -> None:
        self._specs[name] = method

    def __delitem__(self, name: str) -> None:
        del self._specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)


#: Every method by name (classical mechanisms first), imported lazily.
METHODS = _Methods()


def get_method(name: str) -> Method:
    """The method registered as ``name``.

    Raises
    ------
    NotApplicableError
        when no method has that name (the message lists the known ones).
    """
    if name not in METHODS:
        raise NotApplicableError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    return METHODS[name]


def mechanism_class(name: str, method: str | None = None) -> type | None:
    """The mechanism class called ``name`` (what a checkpoint records): a classical
    one, or the ``mechanism`` a registered method declares (``method`` first, when the
    checkpoint names it).  None when no method produces it."""
    order = ([method] if method is not None and method in METHODS else []) + [
        m for m in METHODS if m != method
    ]
    for key in order:
        cls = METHODS[key].mechanism
        if cls is not None and getattr(cls, "name", None) == name:
            return cls
    return None


__all__ = ["METHODS", "REGISTRY", "Method", "Classical", "get_method", "mechanism_class"]
