"""Export a mechanism to run without automech: a self-contained JSON description with a
NumPy reference executor, or an ONNX graph.

**JSON** (:func:`describe_json`, :func:`to_json`, :func:`execute`) covers the designs
whose outcome is a choice from a finite table: menus (RochetNet, :class:`MenuMechanism`),
affine maximizers (:class:`LotteryAMA`, :class:`DeterministicAMA`) and the posted-price
baselines (:class:`PostedPrice`, :class:`GrandBundle`, :class:`BundlePostedPrice`).  The
description holds ``"format": "automech-mechanism/1"``, the mechanism's name, its
``"kind"`` (what :func:`execute` dispatches on), the setting (``Setting.to_dict()``), a
plain-language ``"rule"``, and the numbers as lists of float64 (float32 parameters are
written exactly, e.g. ``0.30000001192092896``), so a few lines of any language execute
it.  ``"bid_precision"`` says what :meth:`Mechanism.outcome` does to the bids first:
``"float32"``: they are rounded to float32 (the precision of the trained parameters),
``"float64"``: used as given.

:func:`execute` is the reference executor in NumPy, computing in float64: its outcomes
equal ``mechanism.outcome(bids)`` up to float rounding (about 1e-7 for float32 designs),
except where two table entries are tied within that rounding (a menu's utilities are
computed in float32 by torch, here in float64), where the two may choose differently.

**ONNX** (:func:`export_onnx`) covers the network designs, whose outcome is one pass of
a fixed graph: :class:`RegretNetMechanism`, :class:`ALGNetMechanism` and
:class:`MyersonNetMechanism`.  Input ``bids`` float32 (batch, n, m) with a dynamic batch
axis; outputs ``allocation`` (batch, n, m) and ``payments`` (batch, n).  TEDI is
refused: its exact outcome is each bidder's utility maximisation over the pricing
network, solved per profile by an iterative projected-gradient solver with candidate
selection (:meth:`TEDIMechanism.solve`), not a network pass; an ONNX graph would have
to unroll hundreds of solver steps.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from automech.errors import AutomechError
from automech.experiment import load
from automech.mechanisms.base import Mechanism
from automech.mechanisms.classical.bundle import BundlePostedPrice, GrandBundle
from automech.mechanisms.classical.posted_price import PostedPrice
from automech.mechanisms.learned.affine_maximizer import (
    AffineMaximizer,
    DeterministicAMA,
    LotteryAMA,
)
from automech.mechanisms.learned.menu import MenuMechanism
from automech.mechanisms.learned.myersonnet import MyersonNetMechanism
from automech.mechanisms.learned.regretnet import RegretNetMechanism
from automech.mechanisms.learned.tedi import TEDIMechanism

#: The ``"format"`` field of every description this module writes and reads.
FORMAT = "automech-mechanism/1"

#: Mechanism names :func:`describe_json` exports.
JSON_MECHANISMS = (
    "menu",
    "lottery-ama",
    "deterministic-ama",
    "posted-price",
    "grand-bundle",
    "bundle-posted-price",
)

#: Mechanism names :func:`export_onnx` exports.
ONNX_MECHANISMS = ("regretnet", "algnet", "myersonnet")


class ExportError(AutomechError):
    """A mechanism that cannot be exported in the asked format, or a description that
    cannot be executed."""


# ------------------------------------------------------------------ JSON description


def _floats(t: torch.Tensor | np.ndarray | float) -> Any:
    """Nested lists of float64 (float32 values converted exactly)."""
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().double().numpy()
    return np.asarray(t, dtype=np.float64).tolist()


def _precision(mech: Mechanism) -> str:
    return "float32" if mech.dtype == torch.float32 else "float64"


_PRECISION_RULE = {
    "float32": " Bids are first rounded to float32, as the trained mechanism does.",
    "float64": "",
}

_MENU_RULE = (
    "One bidder with values v (m numbers). Entry k offers the lottery allocations[k] "
    "(the probability of getting each item) at price prices[k]; entry 0 is the null "
    "entry (nothing, price 0). The bidder gets the entry k maximising its utility "
    "v . allocations[k] - prices[k] (ties go to the lowest k, so the null entry wins "
    "ties): allocation = [allocations[k]], payment = [prices[k]]."
)

_AMA_RULE = (
    "Affine maximizer. Bids v (n bidders x m items); allocations[k][i][j] is the "
    "probability that bidder i gets item j under allocation k (allocation 0 is the empty "
    "one, boost 0). Score s_k = sum_i weights[i] * (v[i] . allocations[k][i]) + boosts[k]; "
    "the chosen k* is the first k maximising s_k (the empty allocation wins ties). "
    "allocation = allocations[k*]; bidder i pays max(0, (max_k t_ik - t_ik*) / weights[i]) "
    "with t_ik = s_k - weights[i] * (v[i] . allocations[k][i]) (weighted VCG)."
)

_POSTED_RULE = (
    "Item prices prices[j]. Bidders are visited in index order, each facing the items "
    "still unsold: {demand} The bidder pays the prices of what it takes."
)
_ADDITIVE_DEMAND = "an additive bidder takes every unsold item j with v[i][j] >= prices[j]."
_UNIT_DEMAND = (
    "a unit-demand bidder takes the single unsold item j maximising v[i][j] - prices[j] "
    "(the lowest j among ties) if that surplus is >= 0."
)

_GRAND_BUNDLE_RULE = (
    "Second-price auction on the grand bundle with reserve `reserve`. Bundle bid "
    "B_i = sum_j v[i][j]; the highest B_i (the lowest i among ties) wins every item if "
    "B_i >= reserve and pays max(reserve, second-highest B_i) (max(reserve, 0) with one "
    "bidder); otherwise nothing is sold."
)

_BUNDLE_PRICE_RULE = (
    "Posted price `price` for the grand bundle: the first bidder i (in index order) with "
    "sum_j v[i][j] >= price gets every item and pays price; the others get nothing."
)


def describe_json(mechanism: Any) -> dict[str, Any]:
    """A self-contained, JSON-able description of ``mechanism`` that :func:`execute` (or
    a few lines of any language, following its ``"rule"``) runs.

    Raises
    ------
    ExportError
        for a mechanism that is not one of :data:`JSON_MECHANISMS`.
    """
    name = getattr(mechanism, "name", type(mechanism).__name__)
    describe = _DESCRIBERS.get(type(mechanism))
    if describe is None:
        onnx_ok = isinstance(mechanism, (RegretNetMechanism, MyersonNetMechanism))
        hint = "; export it with --format onnx" if onnx_ok else ""
        raise ExportError(
            f"cannot describe mechanism {name!r} as JSON (supported: "
            f"{', '.join(JSON_MECHANISMS)}){hint}"
        )
    setting = mechanism.setting
    n, m = setting.shape
    body = describe(mechanism)
    precision = body.pop("bid_precision")
    rule = body.pop("rule") + _PRECISION_RULE[precision]
    out: dict[str, Any] = {
        "format": FORMAT,
        "mechanism": name,
        "kind": body.pop("kind"),
        "rule": rule,
        "outcome": ("allocation: n x m probabilities (bidder i gets item j); payments: n numbers"),
        "bid_precision": precision,
        "bidders": n,
        "items": m,
        "setting": setting.to_dict(),
    }
    out.update(body)
    return out


def _describe_menu(mech: MenuMechanism) -> dict[str, Any]:
    with torch.no_grad():
        alloc, prices = mech.entries()
    return {
        "kind": "menu",
        "bid_precision": _precision(mech),
        "rule": _MENU_RULE,
        "entries": len(prices),
        "allocations": _floats(alloc),
        "prices": _floats(prices),
    }


def _describe_ama(mech: AffineMaximizer) -> dict[str, Any]:
    with torch.no_grad():
        alloc, boosts, _ = mech.table()
        weights = mech.weights()
    return {
        "kind": "affine-maximizer",
        # the exact AMA computes in float64 on the bids cast to the parameters' dtype
        "bid_precision": _precision(mech),
        "rule": _AMA_RULE,
        "entries": len(boosts),
        "weights": _floats(weights),
        "allocations": _floats(alloc),
        "boosts": _floats(boosts),
    }


def _describe_posted(mech: PostedPrice) -> dict[str, Any]:
    unit = mech.setting.unit_demand
    return {
        "kind": "posted-price",
        "bid_precision": _precision(mech),
        "rule": _POSTED_RULE.format(demand=_UNIT_DEMAND if unit else _ADDITIVE_DEMAND),
        "unit_demand": bool(unit),
        "prices": _floats(mech.prices),
    }


def _describe_grand_bundle(mech: GrandBundle) -> dict[str, Any]:
    return {
        "kind": "grand-bundle",
        "bid_precision": _precision(mech),
        "rule": _GRAND_BUNDLE_RULE,
        "reserve": float(mech.reserve),
    }


def _describe_bundle_price(mech: BundlePostedPrice) -> dict[str, Any]:
    return {
        "kind": "bundle-posted-price",
        "bid_precision": _precision(mech),
        "rule": _BUNDLE_PRICE_RULE,
        "price": float(mech.price),
    }


_DESCRIBERS: dict[type, Callable[[Any], dict[str, Any]]] = {
    MenuMechanism: _describe_menu,
    LotteryAMA: _describe_ama,
    DeterministicAMA: _describe_ama,
    PostedPrice: _describe_posted,
    GrandBundle: _describe_grand_bundle,
    BundlePostedPrice: _describe_bundle_price,
}


#: Lists whose JSON is at most this long are written on one line.
_LINE = 100


def _compact(obj: Any, indent: int) -> str:
    """JSON text: dicts one key a line; a list on one line when it is short or holds
    numbers only, else one element a line."""
    pad, inner = " " * indent, " " * (indent + 2)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {_compact(v, indent + 2)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    flat = json.dumps(obj, allow_nan=False)
    if isinstance(obj, list) and "{" not in flat and len(flat) <= _LINE:
        return flat
    if isinstance(obj, list) and obj and all(isinstance(x, (list, dict)) for x in obj):
        rows = [f"{inner}{_compact(x, indent + 2)}" for x in obj]
        return "[\n" + ",\n".join(rows) + f"\n{pad}]"
    return flat


def to_json(description: dict[str, Any]) -> str:
    """``description`` as readable JSON text (every number written exactly)."""
    return _compact(description, 0) + "\n"


def write_json(mechanism: Any, path: str | Path) -> Path:
    """Write :func:`describe_json` of ``mechanism`` to ``path``; returns the path."""
    path = Path(path)
    text = to_json(describe_json(mechanism))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ------------------------------------------------------------------ reference executor


def execute(description: dict[str, Any], bids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run a :func:`describe_json` description on ``bids`` (B, n, m) with NumPy alone.

    Returns the allocation (B, n, m) and payments (B, n), float64: the outcomes of
    ``mechanism.outcome(bids)`` (see the module docstring for the precision).

    Raises
    ------
    ExportError
        for a description of another format or an unknown kind, or bids of the wrong
        shape.
    """
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        got = description.get("format") if isinstance(description, dict) else description
        raise ExportError(f"not an {FORMAT} description (format {got!r})")
    kind = description.get("kind")
    run = _EXECUTORS.get(str(kind))
    if run is None:
        raise ExportError(f"unknown mechanism kind {kind!r} (known: {', '.join(_EXECUTORS)})")
    n, m = int(description["bidders"]), int(description["items"])
    try:
        v = np.asarray(bids, dtype=np.float64)
    except (TypeError, ValueError):
        raise ExportError("bids must be a numeric array of shape (B, n, m)") from None
    if v.ndim != 3 or v.shape[1:] != (n, m):
        raise ExportError(f"bids must have shape (B, {n}, {m}); got {v.shape}")
    if description.get("bid_precision") == "float32":
        v = v.astype(np.float32).astype(np.float64)
    return run(description, v)


def _execute_menu(d: dict[str, Any], v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    alloc = np.asarray(d["allocations"], dtype=np.float64)  # (K, m)
    prices = np.asarray(d["prices"], dtype=np.float64)  # (K,)
    utility = v[:, 0] @ alloc.T - prices  # (B, K)
    k = utility.argmax(axis=1)  # first maximum
    return alloc[k][:, None], prices[k][:, None]


def _execute_ama(d: dict[str, Any], v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    alloc = np.asarray(d["allocations"], dtype=np.float64)  # (K, n, m)
    boosts = np.asarray(d["boosts"], dtype=np.float64)  # (K,)
    w = np.asarray(d["weights"], dtype=np.float64)  # (n,)
    wu = np.einsum("bnm,knm->bnk", v, alloc) * w[:, None]  # (B, n, K)
    s = wu.sum(axis=1) + boosts  # (B, K)
    t = s[:, None, :] - wu  # (B, n, K): scores without bidder i
    k = s.argmax(axis=1)  # first maximum
    at_k = np.take_along_axis(t, k[:, None, None], axis=2)[..., 0]  # (B, n)
    pay = np.maximum((t.max(axis=2) - at_k) / w, 0.0)
    return alloc[k], pay


def _execute_posted(d: dict[str, Any], v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    prices = np.asarray(d["prices"], dtype=np.float64)  # (m,)
    batch, n, m = v.shape
    unsold = np.ones((batch, m), dtype=bool)
    alloc = np.zeros_like(v)
    rows = np.arange(batch)
    for i in range(n):
        surplus = v[:, i] - prices
        if d["unit_demand"]:
            surplus = np.where(unsold, surplus, -np.inf)
            j = surplus.argmax(axis=1)
            buy = np.zeros_like(unsold)
            buy[rows, j] = surplus[rows, j] >= 0
        else:
            buy = (surplus >= 0) & unsold
        alloc[:, i] = buy
        unsold &= ~buy
    return alloc, alloc @ prices


def _execute_grand_bundle(d: dict[str, Any], v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reserve = float(d["reserve"])
    bundle = v.sum(axis=2)  # (B, n)
    batch, n, m = v.shape
    winner = bundle.argmax(axis=1)
    best = bundle[np.arange(batch), winner]
    second = np.sort(bundle, axis=1)[:, -2] if n > 1 else np.zeros(batch)
    won = np.zeros((batch, n))
    won[np.arange(batch), winner] = best >= reserve
    price = np.maximum(second, reserve)
    return np.repeat(won[:, :, None], m, axis=2), won * price[:, None]


def _execute_bundle_price(d: dict[str, Any], v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    price = float(d["price"])
    wants = v.sum(axis=2) >= price  # (B, n)
    first = wants & (np.cumsum(wants, axis=1) == 1)
    won = first.astype(np.float64)
    return np.repeat(won[:, :, None], v.shape[2], axis=2), won * price


_EXECUTORS: dict[str, Callable[[dict[str, Any], np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "menu": _execute_menu,
    "affine-maximizer": _execute_ama,
    "posted-price": _execute_posted,
    "grand-bundle": _execute_grand_bundle,
    "bundle-posted-price": _execute_bundle_price,
}


# ------------------------------------------------------------------ ONNX


class _Float32(torch.nn.Module):
    """The mechanism's forward on float32 bids, as a plain module to export."""

    def __init__(self, mechanism: Mechanism) -> None:
        super().__init__()
        self.mechanism = mechanism

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mechanism(bids)


def export_onnx(mechanism: Any, path: str | Path, example_batch: int = 8) -> Path:
    """Write ``mechanism`` (one of :data:`ONNX_MECHANISMS`) as an ONNX graph to ``path``.

    Input ``bids``: float32 (batch, n, m), the batch axis dynamic; outputs
    ``allocation`` (batch, n, m) and ``payments`` (batch, n), what ``mechanism(bids)``
    gives in float32.  The model's metadata holds the format, mechanism name and setting
    (``automech.format``, ``automech.mechanism``, ``automech.setting`` as JSON).

    Raises
    ------
    ExportError
        for another mechanism: table designs go to JSON (:func:`describe_json`); TEDI is
        refused because its outcome comes from an iterative solver, not a network pass.
    """
    name = getattr(mechanism, "name", type(mechanism).__name__)
    if isinstance(mechanism, TEDIMechanism):
        raise ExportError(
            f"cannot export {name!r} to ONNX: its outcome solves each bidder's utility "
            "maximisation with an iterative solver, not one network pass"
        )
    if not isinstance(mechanism, (RegretNetMechanism, MyersonNetMechanism)):
        hint = "; export it with --format json" if type(mechanism) in _DESCRIBERS else ""
        raise ExportError(
            f"cannot export mechanism {name!r} to ONNX (supported: "
            f"{', '.join(ONNX_MECHANISMS)}){hint}"
        )
    import onnx  # heavy: only here

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mech = copy.deepcopy(mechanism).float().cpu().eval()
    module = _Float32(mech).eval()
    example = torch.as_tensor(mech.setting.sample(example_batch, 0), dtype=torch.float32)
    batch = torch.export.Dim("batch", min=1)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # e.g. "torchvision is not installed" notices
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                input_names=["bids"],
                output_names=["allocation", "payments"],
                dynamic_shapes={"bids": {0: batch}},
                external_data=False,
                verbose=False,
            )
    finally:
        quiet.setLevel(level)
    if program is None:  # pragma: no cover - dynamo export always returns a program
        raise ExportError(f"ONNX export of {name!r} failed")
    model = program.model_proto
    meta = {
        "automech.format": FORMAT,
        "automech.mechanism": name,
        "automech.setting": json.dumps(mech.setting.to_dict()),
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save_model(model, str(path))
    return path


# ------------------------------------------------------------------ run directories

#: Export formats and the file each writes into a run directory by default.
FORMATS = {"json": "mechanism.json", "onnx": "mechanism.onnx"}


def export_run(run_dir: str | Path, fmt: str, out: str | Path | None = None) -> Path:
    """Export the mechanism saved in ``run_dir`` as ``fmt`` (``"json"`` or ``"onnx"``) to
    ``out`` (default ``RUN/mechanism.json`` or ``RUN/mechanism.onnx``); returns the path.

    Raises
    ------
    ExportError
        for an unknown format or a mechanism the format does not cover;
    RunError
        for a missing or unreadable run directory.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r} (use {' or '.join(FORMATS)})")
    mechanism = load(run_dir)
    path = Path(out) if out is not None else Path(run_dir) / FORMATS[fmt]
    if fmt == "json":
        return write_json(mechanism, path)
    return export_onnx(mechanism, path)
