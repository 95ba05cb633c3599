"""Figures of what a mechanism learned, for the command line, reports and notebooks.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot, so
nothing here needs a display or touches global plotting state (headless-safe; in a
notebook the returned figure displays itself)::

    from automech import load, plot
    mech = load("runs/1x2-uniform-rochetnet-seed0")
    plot.allocation(mech, mech.setting)          # allocation and payment maps
    plot.menu(mech)                              # menu entries in allocation space
    plot.training_curves("runs/1x2-uniform-rochetnet-seed0")
    plot.regret_histogram(mech)

* :func:`allocation`: for a chosen bidder, the probability of getting each of two items
  and the payment over that bidder's value square (the support box of the prior), the
  other bidders' values held at a reference profile (the prior mean by default), as in
  the survey's Figure 4; one item gives curves over the bidder's value instead.
* :func:`menu`: the entries a menu (or affine maximiser) actually uses on test profiles,
  with their prices (or boosts) and how often each is chosen, as in the lottery-AMA
  paper's Figures 3-4: points in the allocation square for one bidder and two items,
  small allocation matrices otherwise.
* :func:`training_curves`: objective/revenue, regret, temperature and learning rate
  against the training step, from a run's ``history.jsonl``.
* :func:`regret_histogram`: the distribution of per-profile regrets found by the
  evaluation protocol's misreport search.

:func:`save_all` writes every figure that applies to a run directory as PNG files.
"""

from __future__ import annotations

import inspect
import io
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from matplotlib.figure import Figure

from automech.errors import AutomechError
from automech.evaluation.protocol import TEST_PROFILES, TEST_SEED
from automech.evaluation.regret import RegretSearch
from automech.mechanisms.base import Mechanism
from automech.problems.setting import Setting

if TYPE_CHECKING:  # annotations only
    from automech.mechanisms.learned.gemnet import GemNetMechanism

#: Pixels per inch of saved figures.
DPI = 110
#: Profiles drawn to estimate the prior mean (fixed seed, so figures are reproducible).
MEAN_SAMPLES = 20_000
#: Largest number of profiles :func:`save_all` searches for misreports.
MAX_REGRET_PROFILES = 2_000


# ---------------------------------------------------------------------- helpers


def reference_profile(setting: Setting, others: str | float | np.ndarray = "mean") -> np.ndarray:
    """The (n, m) profile at which bidders other than the plotted one are held.

    ``"mean"``: the prior mean (estimated on a fixed sample); ``"mid"``: the centre of the
    prior's support box; a number: that value everywhere; an (n, m) array: itself.
    """
    n, m = setting.shape
    if isinstance(others, str):
        if others == "mean":
            return setting.sample(MEAN_SAMPLES, 12_345).mean(axis=0)
        if others in ("mid", "midpoint"):
            low, high = setting.prior.support()
            return (np.asarray(low, float) + np.asarray(high, float)) / 2
        try:
            others = float(others)
        except ValueError:
            raise AutomechError(
                f"others must be 'mean', 'mid', a number or an (n, m) array; got {others!r}"
            ) from None
    arr = np.asarray(others, dtype=np.float64)
    if arr.ndim == 0:
        return np.full((n, m), float(arr))
    if arr.shape != (n, m):
        raise AutomechError(f"others must have shape ({n}, {m}); got {arr.shape}")
    return arr.copy()


def _check_bidder(setting: Setting, bidder: int) -> None:
    if not 0 <= bidder < setting.num_bidders:
        raise AutomechError(
            f"bidder must be between 0 and {setting.num_bidders - 1} "
            f"(0-based) for {setting.name or 'this setting'}; got {bidder}"
        )


def _box(setting: Setting, bidder: int, item: int) -> tuple[float, float]:
    low, high = (np.asarray(a, dtype=np.float64) for a in setting.prior.support())
    lo, hi = float(low[bidder, item]), float(high[bidder, item])
    if not math.isfinite(hi) or hi <= lo:
        # an unbounded law: plot up to a high quantile of the sampled values instead
        sample = setting.sample(MEAN_SAMPLES, 12_345)[:, bidder, item]
        hi = float(np.quantile(sample, 0.99))
    return lo, hi


def _title(mech: Mechanism, setting: Setting) -> str:
    return f"{mech.name} on {setting.name or setting.describe()}"


def _fmt_profile(profile: np.ndarray) -> str:
    rows = ["(" + ", ".join(f"{x:.2f}" for x in row) + ")" for row in profile]
    return ", ".join(rows)


def to_png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG file (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_png(fig))
    return path


# ---------------------------------------------------------------------- allocation maps


def outcome_grid(
    mech: Mechanism,
    setting: Setting | None = None,
    bidder: int = 0,
    items: Sequence[int] = (0, 1),
    others: Any = "mean",
    grid: int = 101,
):
    """The mechanism's outcome over bidder ``bidder``'s values of ``items``.

    Returns ``(axes, alloc, pay)``: ``axes`` the grid coordinates of each item in
    ``items`` (each (G,)); ``alloc`` (G, ..., G, m) the bidder's allocation probabilities
    and ``pay`` (G, ..., G) its payment, with ``len(items)`` grid dimensions (the first
    indexing ``items[0]``).  Every other value is held at :func:`reference_profile`.
    """
    setting = setting or mech.setting
    _check_bidder(setting, bidder)
    m = setting.num_items
    for j in items:
        if not 0 <= j < m:
            raise AutomechError(f"items must be between 0 and {m - 1}; got {list(items)}")
    base = reference_profile(setting, others)
    axes = [np.linspace(*_box(setting, bidder, j), grid) for j in items]
    mesh = np.meshgrid(*axes, indexing="ij")
    bids = np.broadcast_to(base, (*mesh[0].shape, *base.shape)).copy()
    for j, coords in zip(items, mesh):
        bids[..., bidder, j] = coords
    flat = bids.reshape(-1, *base.shape)
    alloc, pay = mech.outcome(flat)
    shape = mesh[0].shape
    return axes, alloc[:, bidder].reshape(*shape, m), pay[:, bidder].reshape(shape)


def allocation(
    mech: Mechanism,
    setting: Setting | None = None,
    bidder: int = 0,
    items: Sequence[int] = (0, 1),
    others: Any = "mean",
    grid: int = 101,
    label: str | None = None,
) -> Figure:
    """Allocation probabilities and payment of ``bidder`` over its value square.

    Two or more items: three maps over bidder ``bidder``'s values for ``items`` (the
    support box of the prior): P(item ``items[0]``), P(item ``items[1]``), payment.
    One item: the allocation probability and payment as curves over the bidder's value.
    Other bidders (and the bidder's other items) are held at ``others`` (see
    :func:`reference_profile`).  Bidders and items are numbered from 0.  ``label``
    replaces "<mechanism> on <setting>" in the title.
    """
    setting = setting or mech.setting
    m = setting.num_items
    base = reference_profile(setting, others)
    held = [
        f"bidder {k}: {_fmt_profile(base[k : k + 1])}"
        for k in range(setting.num_bidders)
        if k != bidder
    ]
    if m == 1:
        axes, alloc, pay = outcome_grid(mech, setting, bidder, (0,), others, max(grid, 201))
        fig = Figure(figsize=(10, 3.8), layout="constrained")
        ax1, ax2 = fig.subplots(1, 2)
        ax1.plot(axes[0], alloc[:, 0], color="tab:blue")
        ax1.set(
            xlabel=f"value of bidder {bidder}",
            ylabel="P(item)",
            ylim=(-0.03, 1.03),
            title="allocation probability",
        )
        ax2.plot(axes[0], pay, color="tab:red")
        ax2.set(xlabel=f"value of bidder {bidder}", ylabel="payment", title="payment")
        for ax in (ax1, ax2):
            ax.grid(alpha=0.3)
    else:
        if len(items) != 2 or items[0] == items[1]:
            raise AutomechError(f"items must name two different items; got {list(items)}")
        axes, alloc, pay = outcome_grid(mech, setting, bidder, items, others, grid)
        extent = (axes[0][0], axes[0][-1], axes[1][0], axes[1][-1])
        fig = Figure(figsize=(13.5, 4.3), layout="constrained")
        panels = fig.subplots(1, 3)
        maps = [
            (alloc[..., items[0]], f"P(item {items[0]} to bidder {bidder})", "viridis", (0.0, 1.0)),
            (alloc[..., items[1]], f"P(item {items[1]} to bidder {bidder})", "viridis", (0.0, 1.0)),
            (
                pay,
                f"payment of bidder {bidder}",
                "magma",
                (float(pay.min()), max(float(pay.max()), float(pay.min()) + 1e-9)),
            ),
        ]
        for ax, (data, title, cmap, (lo, hi)) in zip(panels, maps):
            # data is indexed [items[0], items[1]]: transpose so items[0] runs along x
            im = ax.imshow(
                data.T,
                origin="lower",
                extent=extent,
                cmap=cmap,
                vmin=lo,
                vmax=hi,
                aspect="auto",
                interpolation="nearest",
            )
            ax.set(
                title=title, xlabel=f"value of item {items[0]}", ylabel=f"value of item {items[1]}"
            )
            fig.colorbar(im, ax=ax, shrink=0.9)
        if m > 2:
            held.insert(0, f"bidder {bidder}'s other items at their reference values")
    note = ("; others held at " + "; ".join(held)) if held else ""
    fig.suptitle(f"{label or _title(mech, setting)}: bidder {bidder}{note}", fontsize=10)
    return fig


def adjustment(
    mech: Mechanism,
    setting: Setting | None = None,
    bidder: int = 0,
    items: Sequence[int] = (0, 1),
    others: Any = "mean",
    grid: int = 101,
    label: str | None = None,
) -> Figure:
    """A GemNet mechanism before (top row) and after (bottom row) its price adjustment:
    allocation probabilities of ``items`` and payment of ``bidder`` over its value square,
    other bids held at ``others`` (the survey's Figure 4 view)."""
    setting = setting or mech.setting
    if not getattr(mech, "adjusted", False):
        raise AutomechError(f"{mech.name} has no price adjustment to compare with")
    if setting.num_items < 2 or len(items) != 2 or items[0] == items[1]:
        raise AutomechError(f"items must name two different items; got {list(items)}")
    network = cast("GemNetMechanism", mech).network()  # only GemNet has an adjustment
    rows = [("before adjustment", network), ("after adjustment", mech)]
    grids = [outcome_grid(m, setting, bidder, items, others, grid) for _, m in rows]
    pays = np.concatenate([g[2].ravel() for g in grids])
    fig = Figure(figsize=(13.5, 8.2), layout="constrained")
    panels = fig.subplots(2, 3)
    for (name, _), (axes, alloc, pay), row in zip(rows, grids, panels):
        extent = (axes[0][0], axes[0][-1], axes[1][0], axes[1][-1])
        maps = [
            (alloc[..., items[0]], f"P(item {items[0]} to bidder {bidder})", "viridis", 0.0, 1.0),
            (alloc[..., items[1]], f"P(item {items[1]} to bidder {bidder})", "viridis", 0.0, 1.0),
            (
                pay,
                f"payment of bidder {bidder}",
                "magma",
                float(pays.min()),
                max(float(pays.max()), float(pays.min()) + 1e-9),
            ),
        ]
        for ax, (data, title, cmap, lo, hi) in zip(row, maps):
            im = ax.imshow(
                data.T,
                origin="lower",
                extent=extent,
                cmap=cmap,
                vmin=lo,
                vmax=hi,
                aspect="auto",
                interpolation="nearest",
            )
            ax.set(
                title=f"{title}, {name}",
                xlabel=f"value of item {items[0]}",
                ylabel=f"value of item {items[1]}",
            )
            fig.colorbar(im, ax=ax, shrink=0.9)
    base = reference_profile(setting, others)
    held = "; ".join(
        f"bidder {k}: {_fmt_profile(base[k : k + 1])}"
        for k in range(setting.num_bidders)
        if k != bidder
    )
    fig.suptitle(
        f"{label or _title(mech, setting)}: bidder {bidder}, others held at {held}", fontsize=10
    )
    return fig


# ---------------------------------------------------------------------- menus


def describe_entries(
    mech: Mechanism, setting: Setting | None = None, samples: int = 100_000, seed: int = TEST_SEED
) -> dict[str, Any]:
    """``mech.describe`` on ``samples`` test profiles (or without profiles for mechanisms
    whose ``describe`` takes none)."""
    setting = setting or mech.setting
    describe: Callable[..., dict[str, Any]] = mech.describe  # the signature varies
    if not inspect.signature(describe).parameters:
        return describe()  # a table needs no profiles
    return describe(setting.test_profiles(samples, seed))


def _entry_fields(entry: dict[str, Any]) -> tuple[np.ndarray, str, float | None, float | None]:
    """(allocation, label of its scalar, scalar, share) of one described entry."""
    alloc = np.asarray(entry.get("allocation"), dtype=np.float64)
    label, scalar = "", None
    for key, short in (("price", "price"), ("payment", "price"), ("boost", "boost")):
        if key in entry and np.ndim(entry[key]) == 0:
            label, scalar = short, float(entry[key])
            break
    else:
        if "payments" in entry:
            label, scalar = "revenue", float(np.sum(entry["payments"]))
    share = entry.get("share", entry.get("probability"))
    return alloc, label, scalar, None if share is None else float(share)


def _merge_points(entries: list[tuple], tol: float = 0.01) -> list[tuple]:
    """Entries whose allocations and prices differ by less than ``tol`` drawn as one
    point: shares added, with how many entries it stands for (most used first)."""
    groups: list[list] = []
    for alloc, lab, scalar, share in entries:
        for g in groups:
            if (
                np.abs(g[0] - alloc).max() < tol
                and (scalar is None) == (g[2] is None)
                and (scalar is None or abs(scalar - g[2]) < tol)
            ):
                g[3] = None if g[3] is None or share is None else g[3] + share
                g[4] += 1
                break
        else:
            groups.append([alloc, lab, scalar, share, 1])
    merged = [tuple(g) for g in groups]
    if all(g[3] is not None for g in merged):
        merged.sort(key=lambda g: -g[3])
    return merged


def has_menu(description: dict[str, Any]) -> bool:
    """Whether a ``describe`` result lists entries with allocations."""
    entries = description.get("entries")
    return (
        bool(entries)
        and isinstance(entries, list)
        and all(isinstance(e, dict) and "allocation" in e for e in entries)
    )


def menu(
    mech: Mechanism,
    setting: Setting | None = None,
    samples: int = 100_000,
    seed: int = TEST_SEED,
    max_entries: int = 16,
    description: dict[str, Any] | None = None,
    label: str | None = None,
) -> Figure:
    """The entries the mechanism uses on ``samples`` test profiles.

    One bidder and two items: each entry is a point in the allocation square
    (P(item 0), P(item 1)), coloured by its price, its area growing with how often it is
    chosen, labelled with price and share.  Otherwise: the ``max_entries`` most used
    entries as small bidders x items allocation matrices, titled with their price or boost.
    ``description`` (a ``describe`` result) skips recomputing it; ``label`` replaces
    "<mechanism> on <setting>" in the title.
    """
    setting = setting or mech.setting
    info = (
        description if description is not None else describe_entries(mech, setting, samples, seed)
    )
    if not has_menu(info):
        raise AutomechError(
            f"{mech.name} does not describe menu entries with allocations "
            "(a menu plot needs a menu or affine-maximiser mechanism)"
        )
    entries = [_entry_fields(e) for e in info["entries"]]
    if all(e[3] is not None for e in entries):
        entries.sort(key=lambda e: -cast(float, e[3]))  # every share is known
    shown: list[tuple] = entries[:max_entries]
    more = len(entries) - len(shown)
    if setting.num_items == 2 and all(e[0].size == 2 for e in entries):
        shown = _merge_points(entries)[:max_entries]
        more = len(entries) - sum(e[4] for e in shown)
        fig = Figure(figsize=(6.8, 5.8), layout="constrained")
        ax = fig.subplots()
        xy = np.array([e[0].reshape(2) for e in shown])
        prices = np.array([e[2] if e[2] is not None else np.nan for e in shown])
        shares = np.array([e[3] if e[3] is not None else 1.0 / len(shown) for e in shown])
        sizes = 60 + 1400 * shares / max(shares.max(), 1e-12)
        sc = ax.scatter(
            xy[:, 0],
            xy[:, 1],
            s=sizes,
            c=prices,
            cmap="plasma",
            edgecolors="black",
            linewidths=0.8,
            alpha=0.85,
            zorder=3,
        )
        fig.colorbar(sc, ax=ax, label=shown[0][1] or "price")
        for a, lab, p, share, count in shown:
            text = f"{lab[:1] or 'p'}={p:.3f}" if p is not None else ""
            if share is not None:
                text += f"\n{100 * share:.1f}%"
            if count > 1:
                text += f" ({count} entries)"
            ax.annotate(
                text, a.reshape(2), xytext=(8, 6), textcoords="offset points", fontsize=8, zorder=4
            )
        ax.set(
            xlim=(-0.06, 1.12),
            ylim=(-0.06, 1.12),
            xlabel="P(item 0)",
            ylabel="P(item 1)",
            title=f"{len(entries)} entries used"
            + (f" ({more} less used ones not shown)" if more else ""),
        )
        ax.plot([0, 1, 1, 0, 0], [0, 0, 1, 1, 0], color="grey", lw=0.8, zorder=1)
        ax.grid(alpha=0.3)
    else:
        cols = min(4, len(shown))
        rows = math.ceil(len(shown) / cols)
        fig = Figure(figsize=(3.1 * cols + 0.8, 2.1 * rows + 0.9), layout="constrained")
        axs = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
        im = None
        for ax, (a, lab, p, share) in zip(axs, shown):
            mat = a.reshape(1, -1) if a.ndim == 1 else a
            im = ax.imshow(
                mat, vmin=0, vmax=1, cmap="viridis", aspect="auto", interpolation="nearest"
            )
            head = f"{lab}={p:.3f}" if p is not None else ""
            if share is not None:
                head += f", {100 * share:.1f}%"
            ax.set_title(head, fontsize=9)
            ax.set_xlabel("item", fontsize=8)
            ax.set_ylabel("bidder", fontsize=8)
            ax.set_yticks(range(mat.shape[0]))
            ax.set_xticks(range(mat.shape[1]))
            ax.tick_params(labelsize=7)
            if mat.size <= 24:  # small matrices: print the probabilities
                for (r, c), x in np.ndenumerate(mat):
                    ax.text(
                        c,
                        r,
                        f"{x:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if x < 0.6 else "black",
                    )
        for ax in axs[len(shown) :]:
            ax.set_axis_off()
        if im is not None:
            fig.colorbar(im, ax=list(axs[: len(shown)]), label="allocation probability", shrink=0.8)
        if more:
            fig.text(0.01, 0.01, f"+{more} less used entries not shown", fontsize=8)
    counted = any("share" in e for e in info["entries"])
    what = f"entries used on {samples:,} test profiles" if counted else "entries"
    fig.suptitle(f"{label or _title(mech, setting)}: {what}", fontsize=10)
    return fig


# ---------------------------------------------------------------------- training curves


def _history(history: str | Path | Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(history, (str, Path)):
        from automech.runs import HISTORY, Run

        path = Path(history)
        if path.is_dir():
            if not (path / HISTORY).is_file():
                return []
            return Run(path).history()
        raise AutomechError(f"run directory {str(path)!r} does not exist")
    return list(history)


def _series(records: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [
        (r["step"], r[key])
        for r in records
        if key in r
        and "step" in r
        and isinstance(r[key], (int, float))
        and r[key] is not None
        and math.isfinite(r[key])
    ]
    if not pts:
        return np.zeros(0), np.zeros(0)
    arr = np.asarray(pts, dtype=np.float64)
    return arr[:, 0], arr[:, 1]


def training_curves(
    history: str | Path | Sequence[dict[str, Any]],
    setting: Setting | None = None,
    title: str | None = None,
) -> Figure:
    """Objective/revenue, regret, temperature and learning rate against the step.

    ``history``: a run directory or its ``history.jsonl`` records.  With ``setting``,
    the revenue panel shows the best exact reference revenue of that setting, if any.
    """
    records = _history(history)
    if not records:
        raise AutomechError(
            "no training history to plot (history.jsonl is missing or empty; "
            "closed-form mechanisms are not trained)"
        )
    fig = Figure(figsize=(12, 7.2), layout="constrained")
    (ax_obj, ax_reg), (ax_temp, ax_lr) = fig.subplots(2, 2)

    step, val = _series(records, "train_objective")
    if len(step):
        ax_obj.plot(step, val, color="tab:blue", lw=1, alpha=0.7, label="train objective (relaxed)")
    for key, color, marker in (
        ("val_revenue", "tab:red", "o"),
        ("val_objective", "tab:green", "s"),
    ):
        s, v = _series(records, key)
        if not len(s):
            continue
        if key == "val_objective":
            s2, v2 = _series(records, "val_revenue")
            if len(s2) == len(s) and np.allclose(v2, v):
                continue  # revenue is the objective: drawn once
        ax_obj.plot(
            s, v, color=color, marker=marker, ms=4, lw=1.5, label=key.replace("_", " ") + " (exact)"
        )
    if setting is not None:
        from automech.reference import best_exact

        ref = best_exact(setting)
        if ref is not None:
            ax_obj.axhline(
                ref.revenue,
                color="black",
                ls="--",
                lw=1,
                label=f"reference {ref.revenue:.4f} ({ref.method.split(':')[0]})",
            )
    ax_obj.set(title="objective / revenue", xlabel="step")
    ax_obj.legend(fontsize=8, loc="lower right")

    regret_keys = sorted({k for r in records for k in r if "regret" in k.lower()})
    for key in regret_keys:
        s, v = _series(records, key)
        if len(s):
            ax_reg.plot(s, v, lw=1.2, marker="." if len(s) < 60 else None, label=key)
    if regret_keys:
        ax_reg.legend(fontsize=8)
    else:
        ax_reg.text(
            0.5,
            0.5,
            "no regret logged in training\n(this design is DSIC by "
            "construction,\nor regret is only measured at evaluation)",
            ha="center",
            va="center",
            transform=ax_reg.transAxes,
            fontsize=9,
            color="dimgray",
        )
        ax_reg.set_yticks([])
    ax_reg.set(title="regret", xlabel="step")

    for ax, key, color in ((ax_temp, "temperature", "tab:purple"), (ax_lr, "lr", "tab:orange")):
        s, v = _series(records, key)
        if len(s):
            ax.plot(s, v, color=color, lw=1.5)
            if v.min() > 0 and v.max() / v.min() > 20:
                ax.set_yscale("log")
        else:
            ax.text(
                0.5,
                0.5,
                f"{key} not logged",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="dimgray",
            )
        ax.set(
            title="softmax temperature" if key == "temperature" else "learning rate", xlabel="step"
        )
    for ax in (ax_obj, ax_reg, ax_temp, ax_lr):
        ax.grid(alpha=0.3)
    fig.suptitle(title or "training curves", fontsize=10)
    return fig


# ---------------------------------------------------------------------- regret histogram


def regret_histogram(
    source: Mechanism | np.ndarray,
    setting: Setting | None = None,
    search: RegretSearch | None = None,
    seed: int = TEST_SEED,
    samples: int = TEST_PROFILES,
    bins: int = 40,
    title: str | None = None,
) -> Figure:
    """Histogram of per-profile regrets, one colour per bidder.

    ``source``: an array (P, n) of regrets (see
    :func:`automech.evaluation.profiles.profile_regrets`) or a mechanism, whose regrets
    are then searched with ``search`` on the protocol's test profiles (``seed``,
    ``samples``).
    """
    if isinstance(source, Mechanism):
        from automech.evaluation.profiles import profile_regrets

        setting = setting or source.setting
        regrets = profile_regrets(source, setting, search, seed, samples)
        head = title or f"{_title(source, setting)}: regret on {len(regrets):,} test profiles"
    else:
        regrets = np.asarray(source, dtype=np.float64)
        if regrets.ndim == 1:
            regrets = regrets[:, None]
        head = title or f"regret on {len(regrets):,} profiles"
    if regrets.ndim != 2 or regrets.size == 0:
        raise AutomechError("regrets must be a non-empty (profiles, bidders) array")
    fig = Figure(figsize=(8, 4.6), layout="constrained")
    ax = fig.subplots()
    top = float(regrets.max())
    mean = float(regrets.mean())
    n = regrets.shape[1]
    if top <= 0:
        ax.bar([0.0], [regrets.size], width=0.04, color="tab:blue", label="regret 0")
        ax.set_xlim(-0.05, 1.0)
        ax.text(
            0.55,
            0.55,
            f"every regret is 0: no profitable misreport found\n"
            f"for any of the {regrets.size:,} profile-bidder pairs",
            ha="center",
            va="center",
            transform=ax.transAxes,
            fontsize=10,
            bbox={"facecolor": "white", "edgecolor": "lightgray"},
        )
    else:
        edges = np.linspace(0, top, bins + 1)
        labels = [f"bidder {i}" for i in range(n)]
        ax.hist(
            [regrets[:, i] for i in range(n)],
            bins=edges,  # type: ignore[arg-type]  # matplotlib's stub omits arrays for bins
            stacked=True,
            label=labels if n > 1 else None,
        )
        ax.set_yscale("log")
        ax.axvline(mean, color="black", ls="--", lw=1, label=f"mean {mean:.2e}")
        ax.axvline(top, color="tab:red", ls=":", lw=1, label=f"max {top:.2e}")
        ax.legend(fontsize=8)
        zero = float((regrets <= 0).mean())
        ax.text(
            0.98,
            0.7,
            f"{100 * zero:.1f}% of pairs: regret 0",
            ha="right",
            transform=ax.transAxes,
            fontsize=9,
        )
    ax.set(
        xlabel="regret (best misreport utility - truthful utility)",
        ylabel="profile-bidder pairs",
        title=head,
    )
    ax.grid(alpha=0.3)
    return fig


# ---------------------------------------------------------------------- a run's figures


def _metrics(run_dir: Path) -> dict[str, Any] | None:
    from automech.runs import METRICS

    path = run_dir / METRICS
    return json.loads(path.read_text()) if path.is_file() else None


def run_regrets(
    mech: Mechanism, run_dir: str | Path, max_profiles: int = MAX_REGRET_PROFILES
) -> np.ndarray:
    """Per-profile regrets of a run with the budget its evaluation used (``metrics.json``),
    on at most ``max_profiles`` profiles; the default budget if the run has no metrics."""
    from automech.evaluation.profiles import profile_regrets, search_from_dict

    metrics = _metrics(Path(run_dir)) or {}
    search = search_from_dict(metrics.get("search")) or RegretSearch()
    if search.profiles > max_profiles:
        search = RegretSearch(**{**search.to_dict(), "profiles": max_profiles})
    return profile_regrets(
        mech,
        mech.setting,
        search,
        seed=metrics.get("seed", TEST_SEED),
        samples=metrics.get("samples", TEST_PROFILES),
    )


def run_label(run_dir: str | Path, mech: Mechanism) -> str:
    """ "<method> on <setting>" for a run (the method from its config.json)."""
    path = Path(run_dir) / "config.json"
    method = None
    if path.is_file():
        config = json.loads(path.read_text())
        method = config.get("method") or config.get("mechanism")
    name = mech.name if not method or method == mech.name else f"{method} ({mech.name})"
    return f"{name} on {mech.setting.name or mech.setting.describe()}"


def figures(
    run_dir: str | Path,
    bidder: int = 0,
    others: Any = "mean",
    items: Sequence[int] = (0, 1),
    describe_samples: int = 100_000,
) -> tuple[dict[str, Figure], dict[str, str]]:
    """Every figure that applies to a run: ``({name: figure}, {name: why skipped})``.

    Names: ``allocation``, ``adjustment`` (GemNet: before and after the price
    adjustment), ``menu``, ``training``, ``regret``.
    """
    from automech.experiment import load

    run_dir = Path(run_dir)
    mech = load(run_dir)
    setting = mech.setting
    if not isinstance(mech, Mechanism):
        raise AutomechError(
            f"automech plot draws static mechanisms; {str(run_dir)!r} holds a "
            f"{mech.name} on the MDP {setting.name!r} (see automech evaluate)"
        )
    label = run_label(run_dir, mech)
    figs: dict[str, Figure] = {}
    skipped: dict[str, str] = {}
    _check_bidder(setting, bidder)
    figs["allocation"] = allocation(
        mech, setting, bidder=bidder, items=items, others=others, label=label
    )
    if getattr(mech, "adjusted", False) and setting.num_items >= 2:
        figs["adjustment"] = adjustment(
            mech, setting, bidder=bidder, items=items, others=others, label=label
        )
    info = describe_entries(mech, setting, describe_samples)
    if has_menu(info):
        figs["menu"] = menu(mech, setting, samples=describe_samples, description=info, label=label)
    else:
        skipped["menu"] = f"{mech.name} has no menu entries to show"
    records = _history(run_dir)
    if records:
        figs["training"] = training_curves(records, setting, title=f"training: {label}")
    else:
        skipped["training"] = "no training history (closed-form mechanism)"
    regrets = run_regrets(mech, run_dir)
    figs["regret"] = regret_histogram(
        regrets, title=f"{label}: regret on {len(regrets):,} test profiles"
    )
    return figs, skipped


def save_all(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    bidder: int = 0,
    others: Any = "mean",
    items: Sequence[int] = (0, 1),
) -> tuple[dict[str, Path], dict[str, str]]:
    """Write every figure of :func:`figures` as ``OUT/<name>.png`` (default
    ``RUN/figures``); returns ``({name: path}, {name: why skipped})``."""
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "figures"
    figs, skipped = figures(run_dir, bidder=bidder, others=others, items=items)
    paths = {name: save(fig, out / f"{name}.png") for name, fig in figs.items()}
    return paths, skipped


__all__ = [
    "allocation",
    "adjustment",
    "menu",
    "training_curves",
    "regret_histogram",
    "save_all",
    "figures",
    "outcome_grid",
    "reference_profile",
    "describe_entries",
    "run_regrets",
    "to_png",
    "save",
]
