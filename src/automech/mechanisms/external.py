"""Mechanisms from outside automech: a Python callable or an ONNX file, to be audited.

``automech audit TARGET`` scores any mechanism with the shared protocol
(:mod:`automech.evaluation.protocol`: revenue, IR, feasibility, and the regret
``rgt_i(v) = max_b u_i(v_i; (b, v_-i)) - u_i(v_i; v)`` of Duetting et al., section 2.2,
by misreport search); these adapters make a foreign mechanism an automech
:class:`~automech.mechanisms.base.Mechanism`:

* :class:`NumpyCallable` -- ``f(bids) -> (allocation, payments)`` on NumPy arrays:
  bids float64 (B, n, m), allocation (B, n, m), payments (B, n).  No gradients: the
  misreport search uses its gradient-free stages only.
* :class:`TorchCallable` -- the same signature on torch tensors (``--torch``).  The
  outcome must be differentiable in the bids (almost everywhere): the search refines
  its best points by projected gradient ascent on
  ``u_i = v_i . x_i(b_i, v_-i) - p_i(b_i, v_-i)`` (its gradient stage).
* :class:`OnnxMechanism` -- an ONNX graph run by onnxruntime with one input (B, n, m)
  and two outputs, allocation (B, n, m) and payments (B, n) (``automech export RUN
  --format onnx`` writes such a file).  An ONNX file is data, not code: only onnxruntime
  reads it.  No gradients.
* :class:`BlackBox` -- any automech mechanism seen as an opaque function (no gradients),
  so a run can be audited with exactly the search its ONNX export gets.

Every outcome a callable or graph returns is checked before it is used: a tuple of two
arrays of the expected shapes, real numbers, all finite; anything else (including an
exception raised by the callable) is an :class:`ExternalError` whose one line names the
target and the problem.

Loading ``module:callable`` (:func:`load_callable`) imports ``module`` with
:func:`importlib.import_module` and follows the dotted attribute path.  The module is
looked up on ``sys.path`` first and then in the current directory (appended for the
import only: what ``python -m`` would find, without letting a file in the current
directory shadow an installed module of the same name).
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from automech.errors import AutomechError
from automech.mechanisms.base import Mechanism
from automech.problems.setting import Setting

#: File suffix that makes an audit target an ONNX file.
ONNX_SUFFIX = ".onnx"

#: Profiles a foreign mechanism is first run on, to check its signature.
PROBE = 4

#: onnxruntime element types accepted for the bids, and the torch precision each means.
_ONNX_DTYPES = {"tensor(float)": torch.float32, "tensor(double)": torch.float64}


class ExternalError(AutomechError):
    """A mechanism from outside automech (callable or ONNX file) that cannot be loaded,
    or whose outcome is malformed; the message names the target and the problem."""


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    line = text.splitlines()[0] if text else ""
    line = line if len(line) <= 300 else line[:297] + "..."
    return f"{type(err).__name__}: {line}" if line else type(err).__name__


def _shape(shape: tuple[int, ...], batch: int) -> str:
    """``(B, 2, 3)`` when the first axis is the batch, else the plain shape."""
    if len(shape) >= 1 and shape[0] == batch:
        return "(" + ", ".join(["B", *(str(d) for d in shape[1:])]) + ")"
    return f"{tuple(shape)} (for B = {batch})"


def _expected(batch: int, *dims: int) -> str:
    return _shape((batch, *dims), batch)


class _External(Mechanism):
    """Shared checks of the outcome of a foreign mechanism (``label`` names it)."""

    name = "external"

    def __init__(self, setting: Setting, label: str) -> None:
        super().__init__(setting)
        self.label = label
        # the per-instance name the evaluation reports (the class attribute is a default)
        self.__dict__["name"] = label

    def _fail(self, problem: str) -> ExternalError:
        return ExternalError(f"{self.label} {problem}")

    def _check_pair(self, out: Any) -> tuple[Any, Any]:
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            what = f"a {type(out).__name__}"
            if isinstance(out, (tuple, list)):
                what += f" of length {len(out)}"
            raise self._fail(f"returned {what}, expected a pair (allocation, payments)")
        return out[0], out[1]

    def _check_array(self, what: str, x: np.ndarray | torch.Tensor, batch: int, *dims: int):
        shape = tuple(int(d) for d in x.shape)
        if shape != (batch, *dims):
            raise self._fail(
                f"returned {what} of shape {_shape(shape, batch)}, "
                f"expected {_expected(batch, *dims)}"
            )
        finite = torch.isfinite(x) if isinstance(x, torch.Tensor) else np.isfinite(x)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            raise self._fail(f"returned {what} with {bad} NaN or infinite value(s)")

    def _check_numpy(self, what: str, x: Any, batch: int, *dims: int) -> np.ndarray:
        try:
            arr = np.asarray(x)
        except Exception as err:  # anything np.asarray cannot read
            raise self._fail(f"returned {what} that is not an array ({_first_line(err)})") from None
        if arr.dtype == np.bool_ or not (
            np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
        ):
            raise self._fail(
                f"returned {what} of dtype {arr.dtype}, expected real numbers (float or int)"
            )
        arr = arr.astype(np.float64, copy=False)
        self._check_array(what, arr, batch, *dims)
        return arr


class NumpyCallable(_External):
    """``fn(bids) -> (allocation, payments)`` on NumPy arrays.

    ``fn`` receives bids as a float64 array (B, n, m) and returns the allocation
    (B, n, m), ``x_ij`` the probability that bidder i gets item j, and payments (B, n);
    outputs of any real dtype (or array-likes) are converted to float64.  Not
    differentiable: the regret search runs its gradient-free stages only.
    """

    differentiable = False

    def __init__(self, setting: Setting, fn: Callable[..., Any], label: str) -> None:
        super().__init__(setting, label)
        self.__dict__["_fn"] = fn  # never a registered submodule: float64 bids always

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, m = bids.shape
        x = bids.detach().cpu().to(torch.float64).numpy().copy()
        try:
            out = self.__dict__["_fn"](x)
        except Exception as err:  # the callable is foreign code: any error is its own
            raise self._fail(f"raised {_first_line(err)}") from None
        alloc, pay = self._check_pair(out)
        alloc = self._check_numpy("allocation", alloc, b, n, m)
        pay = self._check_numpy("payments", pay, b, n)
        return (
            torch.as_tensor(alloc, dtype=bids.dtype, device=bids.device),
            torch.as_tensor(pay, dtype=bids.dtype, device=bids.device),
        )


class TorchCallable(_External):
    """``fn(bids) -> (allocation, payments)`` on torch tensors, differentiable in the bids.

    Bids are a (B, n, m) tensor in the mechanism's precision (float64, or the dtype of
    ``fn``'s parameters when ``fn`` is a ``torch.nn.Module``, which is then moved with
    the mechanism); the outputs are cast to it.  The regret search uses projected
    gradient ascent on the misreport, so an outcome detached from the bids (computed
    through NumPy, say) is refused when a gradient is asked for.
    """

    differentiable = True

    def __init__(self, setting: Setting, fn: Callable[..., Any], label: str) -> None:
        super().__init__(setting, label)
        if isinstance(fn, torch.nn.Module):
            self.fn = fn  # registered: .to(device) and .dtype follow its parameters
        else:
            self.__dict__["_plain"] = fn

    def _call(self, bids: torch.Tensor) -> Any:
        fn = self.__dict__["_plain"] if "_plain" in self.__dict__ else self.fn
        return fn(bids)

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, m = bids.shape
        try:
            out = self._call(bids)
        except Exception as err:  # the callable is foreign code: any error is its own
            raise self._fail(f"raised {_first_line(err)}") from None
        alloc, pay = self._check_pair(out)
        for what, x in (("allocation", alloc), ("payments", pay)):
            if not isinstance(x, torch.Tensor):
                raise self._fail(
                    f"returned {what} as a {type(x).__name__}; with --torch it must "
                    "return torch tensors (without --torch, NumPy arrays)"
                )
            if x.is_complex() or x.dtype == torch.bool:
                raise self._fail(f"returned {what} of dtype {x.dtype}, expected real numbers")
        self._check_array("allocation", alloc.detach(), b, n, m)
        self._check_array("payments", pay.detach(), b, n)
        if bids.requires_grad and torch.is_grad_enabled():
            if not (alloc.requires_grad or pay.requires_grad):
                raise self._fail(
                    "returned an outcome detached from the bids (no gradient): "
                    "audit it without --torch, as a NumPy callable"
                )
        return alloc.to(bids.dtype), pay.to(bids.dtype)


class OnnxMechanism(_External):
    """An ONNX graph with one input, bids (B, n, m), and two outputs, allocation
    (B, n, m) and payments (B, n), run by onnxruntime on the CPU.

    The outputs are found by name (``allocation`` and ``payments``, what ``automech
    export`` writes) or, failing that, by rank (the rank-3 and the rank-2 output).  The
    bids are given in the input's element type (float32 or float64), which is also the
    precision the protocol evaluates in (:attr:`dtype`), so an exported float32 network
    is scored on the same float32 profiles as the run it came from.  Not differentiable.
    """

    differentiable = False

    def __init__(self, setting: Setting, path: str | Path) -> None:
        path = Path(path)
        super().__init__(setting, str(path))
        session = _session(path)
        n, m = setting.shape
        inputs, outputs = session.get_inputs(), session.get_outputs()
        wanted = "one input bids (B, n, m) and outputs allocation (B, n, m), payments (B, n)"

        def listing(args) -> str:
            return ", ".join(f"{a.name} {_dims(a.shape)} {a.type}" for a in args) or "none"

        found = f"it has input(s) {listing(inputs)}; output(s) {listing(outputs)}"
        if len(inputs) != 1 or len(outputs) < 2:
            raise self._fail(f"does not match: expected {wanted}; {found}")
        bids = inputs[0]
        if bids.type not in _ONNX_DTYPES:
            raise self._fail(
                f"input {bids.name!r} has element type {bids.type}, expected float or double"
            )
        names = {o.name: o for o in outputs}
        if "allocation" in names and "payments" in names:
            alloc, pay = names["allocation"], names["payments"]
        else:
            by_rank = {len(o.shape): o for o in outputs if isinstance(o.shape, list)}
            if len(outputs) != 2 or set(by_rank) != {2, 3}:
                raise self._fail(f"does not match: expected {wanted}; {found}")
            alloc, pay = by_rank[3], by_rank[2]
        for arg, dims in ((bids, (n, m)), (alloc, (n, m)), (pay, (n,))):
            if not isinstance(arg.shape, list):
                continue  # no static shape recorded: the outputs are checked per call
            shape = arg.shape
            if len(shape) != len(dims) + 1 or any(
                isinstance(d, int) and d != want for d, want in zip(shape[1:], dims, strict=True)
            ):
                raise self._fail(
                    f"does not match the setting ({n} bidders x {m} items): "
                    f"{arg.name} has shape {_dims(shape)}, expected {_dims(['B', *dims])}"
                )
        self._session = session
        self._input = bids.name
        self._outputs = [alloc.name, pay.name]
        self._dtype = _ONNX_DTYPES[bids.type]

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, m = bids.shape
        x = bids.detach().cpu().to(self._dtype).numpy()
        try:
            alloc, pay = self._session.run(self._outputs, {self._input: x})
        except Exception as err:  # onnxruntime's own failures (ops, shapes)
            raise self._fail(f"failed in onnxruntime: {_first_line(err)}") from None
        alloc = self._check_numpy("allocation", alloc, b, n, m)
        pay = self._check_numpy("payments", pay, b, n)
        return (
            torch.as_tensor(alloc, dtype=bids.dtype, device=bids.device),
            torch.as_tensor(pay, dtype=bids.dtype, device=bids.device),
        )


class BlackBox(Mechanism):
    """``mechanism`` seen as an opaque function: the same outcomes, no gradients, so the
    misreport search runs only its gradient-free stages (what a NumPy callable or an ONNX
    file gets).  Auditing a run this way and auditing its ONNX export use the same search
    on the same profiles."""

    name = "black-box"
    differentiable = False

    def __init__(self, mechanism: Mechanism) -> None:
        super().__init__(mechanism.setting)
        self.inner = mechanism  # registered: dtype and device follow it
        self.__dict__["name"] = mechanism.name

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return self.inner(bids)


def _dims(shape: Any) -> str:
    if not isinstance(shape, list):
        return "(unknown)"
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _session(path: Path) -> Any:
    """An onnxruntime session of ``path`` on the CPU, or one clear line."""
    if not path.is_file():
        raise ExternalError(f"{path}: no such ONNX file")
    import onnxruntime as ort  # heavy: only when an ONNX file is audited

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only, on stderr
    try:
        return ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as err:  # a file onnxruntime cannot parse is not an ONNX model
        raise ExternalError(f"{path} is not a readable ONNX model ({_first_line(err)})") from None


def onnx_setting(path: str | Path) -> Setting | None:
    """The setting recorded in an ONNX file's metadata by ``automech export``
    (``automech.setting``, ``Setting.to_dict()`` as JSON), or None when there is none."""
    meta = _session(Path(path)).get_modelmeta().custom_metadata_map
    spec = meta.get("automech.setting")
    if spec is None:
        return None
    try:
        data = json.loads(spec)
    except json.JSONDecodeError:
        raise ExternalError(f"{path}: its automech.setting metadata is not JSON") from None
    return Setting.from_dict(data, source=f"{path} (automech.setting metadata)")


def is_callable_spec(target: str) -> bool:
    """Whether ``target`` has the form ``module:attr`` (dotted names on both sides)."""
    module, sep, attr = target.partition(":")
    return bool(sep) and all(
        part.isidentifier() for name in (module, attr) for part in name.split(".")
    )


def load_callable(target: str) -> Callable[..., Any]:
    """The object ``module:attr`` names: ``importlib.import_module(module)`` then the
    dotted attribute path ``attr``; the module is looked up on ``sys.path``, then in the
    current directory.

    Raises
    ------
    ExternalError
        when ``target`` is not of that form, the module cannot be imported (missing, or
        its import raises), the attribute is missing, or it is not callable.
    """
    if not is_callable_spec(target):
        raise ExternalError(
            f"{target!r} is not module:callable (e.g. mypackage.auctions:first_price)"
        )
    module_name, _, attr = target.partition(":")
    cwd = str(Path.cwd())
    added = cwd not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and (
            module_name == err.name or module_name.startswith(err.name + ".")
        ):
            raise ExternalError(
                f"{target}: no module named {err.name!r} on the Python path or in the "
                "current directory"
            ) from None
        raise ExternalError(
            f"{target}: importing {module_name!r} raised {_first_line(err)}"
        ) from None
    except Exception as err:  # the module is foreign code: any error is its own
        raise ExternalError(
            f"{target}: importing {module_name!r} raised {_first_line(err)}"
        ) from None
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ExternalError(f"{target}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ExternalError(f"{target}: {attr!r} is a {type(obj).__name__}, not a callable")
    return obj


def external_mechanism(target: str, setting: Setting, torch_callable: bool = False) -> Mechanism:
    """The mechanism ``target`` names, on ``setting``: an ONNX file (a path ending in
    ``.onnx``) or ``module:callable`` (NumPy arrays, or torch tensors with
    ``torch_callable``).  It is run once on :data:`PROBE` profiles of the prior, so that
    a callable or graph of the wrong signature is refused before an evaluation starts."""
    mech: _External
    if target.lower().endswith(ONNX_SUFFIX):
        if torch_callable:
            raise ExternalError(f"{target}: --torch is for a callable, not an ONNX file")
        mech = OnnxMechanism(setting, target)
    else:
        fn = load_callable(target)
        mech = (TorchCallable if torch_callable else NumpyCallable)(setting, fn, target)
    mech.outcome(setting.sample(PROBE, 0))
    return mech
