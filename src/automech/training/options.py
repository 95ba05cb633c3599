"""Typed, documented, validated method options.

Every method declares its options as a frozen dataclass deriving from :class:`Options`,
one field per option, each made with :func:`option` (default, one-line doc, valid range or
choices).  A subclass that only changes a default writes the field with a plain default
(``steps: int = 500``): the doc and the range are inherited from the base's field.

:meth:`Options.resolve` turns user input (``--set key=value``, a TOML file, a dict) into
an instance, refusing an unknown key, a value of the wrong type, or one outside the range,
with a message naming the option and what it accepts::

    >>> from automech.methods import get_method
    >>> get_method("rochetnet").Options.resolve({"steps": -5})
    Traceback (most recent call last):
    ...
    automech.errors.OptionError: rochetnet: option 'steps' must be an integer >= 1, got -5
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar, Union

from automech.errors import OptionError

T = TypeVar("T", bound="Options")


def option(
    default: Any,
    doc: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> Any:
    """A dataclass field for one option: its default, a one-line ``doc`` and, for numbers,
    the valid range ``[low, high]`` (``low_open``/``high_open`` exclude the bound).
    Choices of a string option come from its ``Literal[...]`` annotation."""
    meta = {"doc": doc, "low": low, "high": high, "low_open": low_open, "high_open": high_open}
    if isinstance(default, list):
        default = tuple(default)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class OptionInfo:
    """What ``automech methods NAME`` prints of one option."""

    name: str
    type: str
    default: Any
    range: str
    doc: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Options:
    """Base of every method's options dataclass (no options of its own)."""

    #: The method's name, for messages (set by the registry's method classes).
    method: ClassVar[str] = "method"

    # ------------------------------------------------------------------ resolution

    @classmethod
    def resolve(cls: type[T], given: Mapping[str, Any] | None = None) -> T:
        """Defaults overridden by ``given``; every key, type and range checked.

        Raises
        ------
        OptionError
            naming the first offending option and what it accepts.
        """
        given = dict(given or {})
        names = {f.name for f in dataclasses.fields(cls)}
        for key in given:
            if key not in names:
                known = ", ".join(sorted(names)) or "none"
                raise OptionError(
                    f"{cls.method}: no option {key!r} (options: {known}; "
                    f"`automech methods {cls.method}` lists them)"
                )
        return cls(**given)

    @classmethod
    def _check(cls, key: str, hint: Any, value: Any) -> Any:
        checked = _coerce(hint, value)
        meta = cls.meta(key)
        if checked is _INVALID or (
            isinstance(checked, (int, float))
            and not isinstance(checked, bool)
            and not _in_range(checked, meta)
        ):
            raise OptionError(
                f"{cls.method}: option {key!r} must be {describe_type(hint)}"
                f"{_range_text(meta)}, got {value!r}"
            )
        return checked

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            object.__setattr__(
                self, f.name, type(self)._check(f.name, hints[f.name], getattr(self, f.name))
            )
        self.validate()

    def validate(self) -> None:
        """Checks that involve several options; raise :class:`OptionError`.  None here."""

    # ------------------------------------------------------------------ introspection

    @classmethod
    def meta(cls, name: str) -> Mapping[str, Any]:
        """The doc and range of option ``name``, from the nearest class that documents it."""
        for klass in cls.__mro__:
            fields = getattr(klass, "__dataclass_fields__", {})
            if name in fields and fields[name].metadata:
                return fields[name].metadata
        return {}

    @classmethod
    def describe(cls) -> list[OptionInfo]:
        """Every option with its type, default, range and doc (declaration order)."""
        hints = typing.get_type_hints(cls)
        mro = cls.__mro__

        def owner(name: str) -> int:  # the method's own options first, shared ones after
            return max(
                i for i, k in enumerate(mro) if name in getattr(k, "__dataclass_fields__", {})
            )

        out = []
        for f in sorted(dataclasses.fields(cls), key=lambda f: owner(f.name)):
            meta = cls.meta(f.name)
            out.append(
                OptionInfo(
                    f.name,
                    short_type(hints[f.name]),
                    _plain(f.default),
                    _range_text(meta).removeprefix(" ") or "-",
                    meta.get("doc", ""),
                )
            )
        return out

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The default value of every option."""
        return {f.name: _plain(f.default) for f in dataclasses.fields(cls)}

    def to_dict(self) -> dict[str, Any]:
        """The options as plain JSON-able values (what ``config.json`` records)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self: T, **changes: Any) -> T:
        """A copy with ``changes`` applied (checked as :meth:`resolve` checks)."""
        return type(self).resolve({**self.to_dict(), **changes})

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


# ---------------------------------------------------------------------- type checking

_INVALID = object()


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _coerce(hint: Any, value: Any) -> Any:
    """``value`` as an instance of ``hint``, or ``_INVALID``."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return (
            value
            if any(value == c and type(value) is type(c) for c in typing.get_args(hint))
            else _INVALID
        )
    if origin in (Union, types.UnionType):
        for arm in typing.get_args(hint):
            out = _coerce(arm, value)
            if out is not _INVALID:
                return out
        return _INVALID
    if origin in (tuple, list):
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            return _INVALID
        inner = args[0] if args else Any
        items = [_coerce(inner, v) for v in value]
        return _INVALID if any(i is _INVALID for i in items) else tuple(items)
    if hint is bool:
        return value if isinstance(value, bool) else _INVALID
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return _INVALID
        return int(value) if float(value).is_integer() else _INVALID
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return _INVALID
        return float(value) if math.isfinite(value) else _INVALID
    if hint is str:
        return value if isinstance(value, str) else _INVALID
    if hint is type(None):
        return None if value is None else _INVALID
    return value


def _in_range(value: float, meta: Mapping[str, Any]) -> bool:
    low, high = meta.get("low"), meta.get("high")
    if low is not None and (value < low or (meta.get("low_open") and value == low)):
        return False
    if high is not None and (value > high or (meta.get("high_open") and value == high)):
        return False
    return True


def describe_type(hint: Any) -> str:
    """``int`` -> "an integer", ``Literal["a", "b"]`` -> 'one of "a", "b"', ..."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = ", ".join(
            f'"{c}"' if isinstance(c, str) else str(c).lower() for c in typing.get_args(hint)
        )
        return f"one of {choices}"
    if origin in (Union, types.UnionType):
        return " or ".join(describe_type(a) for a in typing.get_args(hint))
    if origin in (tuple, list):
        args = typing.get_args(hint)
        return f"a list of {describe_type(args[0]).removeprefix('an ').removeprefix('a ')}s"
    return {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        type(None): "none",
    }.get(hint, getattr(hint, "__name__", str(hint)))


def short_type(hint: Any) -> str:
    """``int``, ``float``, ``"a" | "b"``, ``list[int]``, ``float | "auto"``..."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return " | ".join(
            f'"{c}"' if isinstance(c, str) else str(c).lower() for c in typing.get_args(hint)
        )
    if origin in (Union, types.UnionType):
        return " | ".join(short_type(a) for a in typing.get_args(hint))
    if origin in (tuple, list):
        args = typing.get_args(hint)
        return f"list[{short_type(args[0]) if args else 'any'}]"
    return getattr(hint, "__name__", str(hint))


def _range_text(meta: Mapping[str, Any]) -> str:
    low, high = meta.get("low"), meta.get("high")
    if low is None and high is None:
        return ""
    lo = ">" if meta.get("low_open") else ">="
    hi = "<" if meta.get("high_open") else "<="
    if low is not None and high is not None:
        return (
            f" in {'(' if meta.get('low_open') else '['}{low:g}, {high:g}"
            f"{')' if meta.get('high_open') else ']'}"
        )
    return f" {lo} {low:g}" if low is not None else f" {hi} {high:g}"
