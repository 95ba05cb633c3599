"""The comparison table: per setting and method, mean, standard deviation and best over seeds.

``std`` is the sample standard deviation over the finished seeds (0 with one seed); ``best``
is the best seed's value: highest objective (revenue by default; lowest for an objective
the metrics mark ``maximise: false``, such as a dynamic setting's makespan), revenue and
welfare, lowest regret, IR violation and infeasibility.  Pending, failed and skipped jobs
are counted but never averaged.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from rich.console import Console
from rich.table import Table

from automech.errors import AutomechError

FORMATS = ("table", "csv", "json", "markdown")
_TEXT = ("sweep", "setting", "method", "options")

#: Aggregated metrics and whether larger is better.
METRICS = {
    "objective_value": True,
    "revenue": True,
    "welfare": True,
    "regret_mean": False,
    "regret_max": False,
    "ir_violation_rate": False,
    "infeasible_rate": False,
}


def _stats(values: list[float], higher: bool) -> dict[str, float | None]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return {"mean": None, "std": None, "best": None}
    mean = sum(values) / len(values)
    std = (
        math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        if len(values) > 1
        else 0.0
    )
    return {"mean": mean, "std": std, "best": max(values) if higher else min(values)}


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group job rows (from :meth:`Store.rows`) by sweep, setting, method and options."""
    groups: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = (
            row["sweep"],
            row["setting"],
            row["method"],
            json.dumps(row["options"], sort_keys=True),
            json.dumps(row["evaluation"], sort_keys=True),
        )
        g = groups.setdefault(
            key,
            {
                "sweep": row["sweep"],
                "setting": row["setting"],
                "method": row["method"],
                "variant": row.get("variant") or "",
                "options": row["options"],
                "evaluation": row["evaluation"],
                "jobs": 0,
                "done": 0,
                "failed": 0,
                "pending": 0,
                "skipped": 0,
                "skip_reason": None,
                "seeds": [],
                "_rows": [],
            },
        )
        g["jobs"] += 1
        status = row["status"]
        if status == "done" and row.get("metrics"):
            g["done"] += 1
            g["seeds"].append(row["seed"])
            g["_rows"].append(row)
        elif status == "failed":
            g["failed"] += 1
        elif status == "skipped":
            g["skipped"] += 1
            g["skip_reason"] = row.get("note")
        else:
            g["pending"] += 1
    # the same (setting, method, variant) under two evaluation budgets: tell them apart
    labels: dict[tuple, int] = {}
    for g in groups.values():
        k = (g["sweep"], g["setting"], g["method"], g["variant"])
        labels[k] = labels.get(k, 0) + 1
    out = []
    for g in groups.values():
        if labels[(g["sweep"], g["setting"], g["method"], g["variant"])] > 1:
            ev = g["evaluation"]
            tag = f"eval={ev.get('eval_samples')}/{ev.get('regret_profiles')}"
            g["variant"] = f"{g['variant']},{tag}" if g["variant"] else tag
        done = sorted(g.pop("_rows"), key=lambda r: r["seed"])
        g["seeds"] = sorted(g["seeds"])
        g["objective"] = done[0]["metrics"].get("objective", "revenue") if done else None
        maximise = bool(done[0]["metrics"].get("maximise", True)) if done else True
        g["metrics"] = {
            m: _stats(
                [r["metrics"].get(m) for r in done], maximise if m == "objective_value" else higher
            )
            for m, higher in METRICS.items()
        }
        g["best_seed"] = _best_seed(done, maximise)
        out.append(g)
    return out


def _best_seed(done: list[dict[str, Any]], maximise: bool) -> int | None:
    """The seed with the best objective value (highest, or lowest when minimised)."""
    scored = [(r["metrics"].get("objective_value"), r["seed"]) for r in done]
    scored = [(v if maximise else -v, seed) for v, seed in scored if v is not None]
    return max(scored, key=lambda vs: vs[0])[1] if scored else (done[0]["seed"] if done else None)


# ----------------------------------------------------------------------------- output


def _f(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _display(groups: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    shown = [g for g in groups if g["done"] or g["failed"] or g["pending"]]
    sweeps = len({g["sweep"] for g in groups}) > 1
    variants = any(g["variant"] for g in shown)
    objectives = {g["objective"] for g in shown if g["objective"]}
    obj = objectives.pop() if len(objectives) == 1 else "objective"
    extra_revenue = obj != "revenue"
    head = (
        (["sweep"] if sweeps else [])
        + ["setting", "method"]
        + (["options"] if variants else [])
        + ["seeds", f"{obj} mean ± std", "best (seed)"]
        + (["revenue"] if extra_revenue else [])
        + ["welfare", "regret mean", "regret max", "IR viol."]
    )
    body = []
    for g in shown:
        m = g["metrics"]
        seeds = f"{g['done']}/{g['jobs'] - g['skipped']}"
        if g["failed"]:
            seeds += f" ({g['failed']} failed)"
        o = m["objective_value"]
        mean = "-" if o["mean"] is None else f"{o['mean']:.4f} ± {o['std']:.4f}"
        best = "-" if o["best"] is None else f"{o['best']:.4f} ({g['best_seed']})"
        row = (
            ([g["sweep"]] if sweeps else [])
            + [g["setting"], g["method"]]
            + ([g["variant"] or "-"] if variants else [])
            + [seeds, mean, best]
            + ([_f(m["revenue"]["mean"])] if extra_revenue else [])
            + [
                _f(m["welfare"]["mean"]),
                _f(m["regret_mean"]["mean"], 5),
                _f(m["regret_max"]["mean"], 5),
                _f(m["ir_violation_rate"]["mean"], 3),
            ]
        )
        body.append(row)
    return head, body


def notes(groups: list[dict[str, Any]]) -> list[str]:
    """Skipped pairs, and groups with unfinished jobs."""
    out = []
    for g in groups:
        tag = f" [{g['variant']}]" if g["variant"] else ""
        if g["skipped"] and not (g["done"] or g["failed"] or g["pending"]):
            out.append(f"skipped {g['method']}{tag} on {g['setting']}: {g['skip_reason']}")
        elif g["pending"]:
            out.append(
                f"{g['setting']} {g['method']}{tag}: {g['pending']} job(s) not "
                "finished (rerun the sweep)"
            )
    return out


def _flat(g: dict[str, Any]) -> dict[str, Any]:
    row = {k: g[k] for k in ("sweep", "setting", "method", "variant")}
    row["options"] = json.dumps(g["options"], sort_keys=True)
    row.update({k: g[k] for k in ("jobs", "done", "failed", "pending", "skipped")})
    row["seeds"] = " ".join(map(str, g["seeds"]))
    row["objective"] = g["objective"]
    row["best_seed"] = g["best_seed"]
    for m, s in g["metrics"].items():
        for stat, v in s.items():
            row[f"{m}_{stat}"] = v
    return row


def render(
    groups: list[dict[str, Any]],
    fmt: str = "table",
    title: str | None = None,
    width: int | None = 200,
) -> str:
    """``groups`` (from :func:`aggregate`) as ``table``, ``csv``, ``json`` or ``markdown``."""
    if fmt not in FORMATS:
        raise AutomechError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps([{k: v for k, v in g.items()} for g in groups], indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        flat = [_flat(g) for g in groups]
        if flat:
            writer = csv.DictWriter(buf, fieldnames=list(flat[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(flat)
        return buf.getvalue()
    head, body = _display(groups)
    extra = notes(groups)
    if fmt == "markdown":
        lines = ([f"**{title}**", ""] if title else []) + [
            "| " + " | ".join(head) + " |",
            "|" + "|".join("---" if c in _TEXT else "---:" for c in head) + "|",
        ]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        lines += [""] + [f"- {n}" for n in extra] if extra else []
        return "\n".join(lines) + "\n"
    table = Table(title=title)
    for col in head:
        table.add_column(col, justify="left" if col in _TEXT else "right")
    for r in body:
        table.add_row(*r)
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None)
    console.print(table)
    for n in extra:
        console.print(n)
    return buf.getvalue()
