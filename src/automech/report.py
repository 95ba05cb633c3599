"""One self-contained report of one or more runs: ``automech report RUN [RUN ...]``.

For each run: the setting; the method, seed and hyperparameters; the evaluation table
(with standard errors); a comparison with every applicable classical mechanism evaluated
on the same setting and test profiles; the reference numbers of that setting
(:mod:`automech.reference`: known optima and published results, with their sources) and
the run's gap to each; the menu entries or allocations the mechanism uses; and the
figures of :mod:`automech.plot`.  Several runs also get a side-by-side table.

The HTML file embeds its figures as base64 PNGs and its style inline: it needs no
network and no other file.  An output path ending in ``.md`` gives Markdown instead,
with the figures written next to it (``<name>_files/``).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automech._version import __version__
from automech.errors import AutomechError, NotApplicableError
from automech.evaluation import Evaluation, RegretSearch, evaluate
from automech.evaluation.protocol import TEST_PROFILES, TEST_SEED
from automech.experiment import load
from automech.mechanisms import CLASSICAL
from automech.mechanisms.base import Mechanism
from automech.methods import METHODS
from automech.problems.setting import Setting
from automech.reference import Reference, references
from automech.runs import CONFIG, METRICS, Run

#: Test profiles on which the classical baselines are evaluated inside a report.
BASELINE_SAMPLES = 20_000
#: A light misreport search for the baselines (enough to expose non-truthful ones).
BASELINE_SEARCH = RegretSearch(profiles=200, random=64, scales=16, grid=8, ascent_steps=0)
#: Test profiles on which the used menu entries / allocations are counted.
DESCRIBE_SAMPLES = 100_000
#: Most entries listed in a report's table of used entries.
MAX_LISTED_ENTRIES = 25


# ---------------------------------------------------------------------- document blocks


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str | None = None
    highlight: set[int] = field(default_factory=set)  # row indices shown in bold


@dataclass
class Text:
    text: str
    note: bool = False


@dataclass
class Code:
    text: str


@dataclass
class Image:
    name: str
    png: bytes
    caption: str


@dataclass
class Section:
    title: str
    blocks: list[Any]
    level: int = 2
    anchor: str | None = None


# ---------------------------------------------------------------------- formatting


def _num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if x != 0 and (abs(x) < 10**-digits or abs(x) >= 1e6):
            return f"{x:.{max(digits - 2, 1)}e}"
        return f"{x:.{digits}f}"
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(_num(v, min(digits, 3)) for v in x) + "]"
    return str(x)


def _plain(x: Any) -> str:
    """A hyperparameter as written in a config file."""
    return json.dumps(x) if isinstance(x, (list, dict, bool)) or x is None else str(x)


def _pm(mean: float | None, se: float | None, digits: int = 4) -> str:
    if mean is None:
        return "-"
    return _num(mean, digits) if se is None else f"{_num(mean, digits)} ± {_num(se, digits)}"


def _gap(value: float, ref: float, se: float | None) -> str:
    diff = value - ref
    text = f"{diff:+.4f} ({100 * diff / ref:+.1f}%)" if ref else f"{diff:+.4f}"
    if se:
        text += f", {diff / se:+.1f} SE"
    return text


# ---------------------------------------------------------------------- run data


@dataclass
class RunData:
    path: Path
    mechanism: Mechanism
    setting: Setting
    config: dict[str, Any]
    metrics: dict[str, Any]
    evaluated_here: bool
    history: list[dict[str, Any]]

    @property
    def method(self) -> str:
        return str(self.config.get("method") or self.config.get("mechanism") or self.mechanism.name)

    @property
    def label(self) -> str:
        return f"{self.method} on {self.setting.name or 'setting'} ({self.path.name})"


def load_run(path: str | Path, samples: int = TEST_PROFILES) -> RunData:
    """A run's mechanism, config, metrics and history; a run saved without metrics is
    evaluated with the shared protocol (``samples`` profiles, default regret search)."""
    path = Path(path)
    mech = load(path)  # RunError for a missing or unreadable run
    if not isinstance(mech, Mechanism):
        raise AutomechError(
            f"automech report covers static mechanisms; {str(path)!r} holds a "
            f"{mech.name} on the MDP {mech.setting.name!r} (see automech "
            "evaluate)"
        )
    run = Run(path)
    config = run.read_json(CONFIG) if (path / CONFIG).is_file() else {}
    if (path / METRICS).is_file():
        metrics, here = run.read_json(METRICS), False
    else:
        metrics, here = evaluate(mech, samples=samples).to_dict(), True
    return RunData(path, mech, mech.setting, config, metrics, here, run.history())


def _setting_key(setting: Setting) -> str:
    d = setting.to_dict()
    d.pop("name", None)
    return json.dumps(d, sort_keys=True)


_BASELINES: dict[tuple, dict[str, Evaluation | str]] = {}


def classical_baselines(
    setting: Setting,
    samples: int = BASELINE_SAMPLES,
    search: RegretSearch | None = BASELINE_SEARCH,
    seed: int = TEST_SEED,
) -> dict[str, Evaluation | str]:
    """Every classical mechanism on ``setting``: its evaluation, or why it does not apply.

    Results are kept for the life of the process (the mechanisms are deterministic), so
    several reports, or several runs on one setting, evaluate each baseline once.
    """
    key = (_setting_key(setting), samples, seed, json.dumps(search.to_dict() if search else None))
    if key not in _BASELINES:
        _BASELINES[key] = _classical_baselines(setting, samples, search, seed)
    return dict(_BASELINES[key])


def _classical_baselines(
    setting: Setting, samples: int, search: RegretSearch | None, seed: int
) -> dict[str, Evaluation | str]:
    out: dict[str, Evaluation | str] = {}
    for cls in CLASSICAL:
        reason = cls.applicable(setting)
        if reason:
            out[cls.name] = reason
            continue
        try:
            mech = cls(setting)
        except NotApplicableError as err:
            out[cls.name] = str(err)
            continue
        result = evaluate(mech, setting, samples=samples, seed=seed, search=search)
        assert isinstance(result, Evaluation)  # a static setting's evaluation
        out[cls.name] = result
    return out


# ---------------------------------------------------------------------- sections


def _setting_table(s: Setting) -> Table:
    return Table(
        ["", ""],
        [
            ["name", s.name or "-"],
            ["bidders", str(s.num_bidders)],
            ["items", str(s.num_items)],
            ["valuation", s.valuation],
            ["supply", s.supply],
            ["objective", s.objective.name],
            ["prior", s.prior.describe()],
        ],
    )


def _method_blocks(r: RunData) -> list[Any]:
    rows = [
        ["method", r.method],
        ["mechanism", r.mechanism.name],
        ["seed", _num(r.config.get("seed"))],
        ["automech version", str(r.config.get("automech", "-"))],
    ]
    options = r.config.get("options") or r.config.get("config") or r.mechanism.config()
    blocks: list[Any] = [Table(["", ""], rows)]
    if options:
        docs = _option_docs(r.method)
        blocks.append(
            Table(
                ["hyperparameter", "value", "meaning"],
                [[k, _plain(v), docs.get(k, "")] for k, v in sorted(options.items())],
                caption="options (defaults resolved)",
            )
        )
    return blocks


def _option_docs(method: str) -> dict[str, str]:
    """Option name -> one-line doc, from the method's options dataclass (none for a
    mechanism saved without a registered method)."""
    if method not in METHODS:
        return {}
    return {info.name: info.doc for info in METHODS[method].Options.describe()}


def _evaluation_table(m: dict[str, Any]) -> Table:
    rows = [
        ["revenue", _pm(m.get("revenue"), m.get("revenue_se"))],
        ["welfare", _pm(m.get("welfare"), m.get("welfare_se"))],
    ]
    if m.get("objective") and m.get("objective") != "revenue":
        rows.append(
            [f"objective ({m['objective']})", _pm(m.get("objective_value"), m.get("objective_se"))]
        )
    rows += [
        [
            "regret (mean over profiles and bidders)",
            _pm(m.get("regret_mean"), m.get("regret_se"), 6),
        ],
        ["regret (max)", _num(m.get("regret_max"), 6)],
        ["regret per bidder", _num(m.get("regret_per_bidder"), 6)],
        [
            "regret-adjusted revenue (sqrt P - sqrt R)^2",
            _num(m.get("revenue_adjusted")),
        ],
        ["IR violation rate", _num(m.get("ir_violation_rate"))],
        ["IR violation (mean size)", _num(m.get("ir_violation_mean"), 6)],
        ["infeasible rate", _num(m.get("infeasible_rate"))],
        ["infeasibility (max)", _num(m.get("infeasibility_max"), 6)],
        ["test profiles (seed)", f"{_num(m.get('samples'))} ({m.get('seed', '-')})"],
        ["profiles searched for misreports", _num(m.get("regret_samples"))],
    ]
    if m.get("regret_converged") is not None:
        rungs = m.get("regret_ladder") or []
        verdict = (
            f"converged at budget x{m.get('regret_budget')}"
            if m["regret_converged"]
            else "not converged"
        )
        rows.append(
            [
                "regret budget ladder",
                f"{verdict}: " + ", ".join(f"x{r['budget']} {r['regret_mean']:.6f}" for r in rungs),
            ]
        )
    training = m.get("training")
    if training:
        rows.append(
            [
                "training steps used",
                f"{training['steps_used']} of {training['steps']}"
                + (" (stopping rule)" if training.get("stopped_early") else ""),
            ]
        )
    search = m.get("search")
    if search:
        rows.append(
            ["misreport search", ", ".join(f"{k}={v}" for k, v in search.items() if k != "chunk")]
        )
    rows.append(["evaluation time (s)", _num(m.get("seconds"), 1)])
    return Table(["metric", "value ± standard error"], rows)


def _baseline_blocks(r: RunData, baselines: dict[str, Evaluation | str], samples: int) -> list[Any]:
    rev, se = r.metrics.get("revenue"), r.metrics.get("revenue_se")
    rows = [
        [
            f"this run: {r.method}",
            _pm(rev, se),
            _num(r.metrics.get("regret_mean"), 6),
            _num(r.metrics.get("ir_violation_rate"), 3),
            "-",
        ]
    ]
    skipped = []
    for name, ev in baselines.items():
        if isinstance(ev, str):
            skipped.append(f"{name}: {ev}")
            continue
        gap = "-"
        if rev is not None:
            both = float(np.hypot(se or 0.0, ev.revenue_se))
            gap = _gap(rev, ev.revenue, None)
            if both:
                gap += f", {(rev - ev.revenue) / both:+.1f} SE"
        rows.append(
            [
                name,
                _pm(ev.revenue, ev.revenue_se),
                _num(ev.regret_mean, 6),
                _num(ev.ir_violation_rate, 3),
                gap,
            ]
        )
    blocks: list[Any] = [
        Table(
            [
                "mechanism",
                "revenue ± se",
                "regret mean",
                "IR violation rate",
                "this run minus baseline",
            ],
            rows,
            highlight={0},
            caption=f"classical mechanisms evaluated for this report on {samples:,} test "
            f"profiles (seed {TEST_SEED}, regret on {BASELINE_SEARCH.profiles} profiles "
            "with a light search); the run's own numbers are from its metrics.json",
        )
    ]
    if skipped:
        blocks.append(Text("not applicable: " + "; ".join(skipped), note=True))
    return blocks


def _reference_blocks(r: RunData, refs: list[Reference]) -> list[Any]:
    if not refs:
        return [
            Text(
                f"No reference numbers for {r.setting.name or 'this setting'} "
                "(the packaged table covers the uniform benchmark settings).",
                note=True,
            )
        ]
    rev, se = r.metrics.get("revenue"), r.metrics.get("revenue_se")
    rows = []
    for ref in refs:
        regret = _num(ref.regret, 5) if ref.regret is not None else (ref.note or "-")
        rows.append(
            [
                ref.method,
                _num(ref.revenue),
                regret,
                ref.kind,
                "-" if rev is None else _gap(rev, ref.revenue, se),
                ref.source,
            ]
        )
    return [
        Table(
            ["reference", "revenue", "regret", "kind", "this run minus reference", "source"],
            rows,
            caption=f"reference numbers for {refs[0].setting} (automech/data/"
            "reference.json); 'SE' is this run's revenue standard error",
        )
    ]


def _describe_blocks(info: dict[str, Any], samples: int) -> list[Any]:
    from automech.plot import has_menu

    if not has_menu(info):
        return [Code(json.dumps(info, indent=2, default=str))]
    entries = info["entries"]
    share_key = next((k for k in ("share", "probability") if k in entries[0]), None)
    if share_key:
        entries = sorted(entries, key=lambda e: -float(e.get(share_key) or 0.0))
    keys = list(dict.fromkeys(k for e in entries for k in e))
    rows = [
        [
            _num(e.get(k), 4)
            if not isinstance(e.get(k), list)
            else json.dumps(np.round(np.asarray(e[k], dtype=float), 3).tolist())
            for k in keys
        ]
        for e in entries[:MAX_LISTED_ENTRIES]
    ]
    extra = {k: v for k, v in info.items() if k != "entries"}
    caption = (
        f"{len(entries)} entries used on {samples:,} test profiles"
        + (
            f", {len(entries) - MAX_LISTED_ENTRIES} less used ones not listed"
            if len(entries) > MAX_LISTED_ENTRIES
            else ""
        )
        + ("; " + ", ".join(f"{k}: {v}" for k, v in extra.items()) if extra else "")
    )
    return [Table(keys, rows, caption=caption)]


def _figure_blocks(
    r: RunData, info: dict[str, Any], bidder: int, describe_samples: int
) -> list[Any]:
    from automech import plot

    label = plot.run_label(r.path, r.mechanism)
    who = min(bidder, r.setting.num_bidders - 1)
    blocks: list[Any] = []
    figs: list[tuple[str, Callable[[], Any], str]] = [
        (
            "allocation",
            lambda: plot.allocation(r.mechanism, r.setting, bidder=who, label=label),
            f"allocation probabilities and payment of bidder {who} over its values"
            + (
                ", the other bidders' values held at the prior mean"
                if r.setting.num_bidders > 1
                else ""
            ),
        )
    ]
    if plot.has_menu(info):
        figs.append(
            (
                "menu",
                lambda: plot.menu(
                    r.mechanism, r.setting, label=label, samples=describe_samples, description=info
                ),
                "entries used, in allocation space, with prices and shares",
            )
        )
    if r.history:
        figs.append(
            (
                "training",
                lambda: plot.training_curves(r.history, r.setting, title=f"training: {label}"),
                "training curves: objective and revenue, regret, temperature, learning rate",
            )
        )
    figs.append(
        (
            "regret",
            lambda: plot.regret_histogram(
                plot.run_regrets(r.mechanism, r.path), title=f"{label}: per-profile regret"
            ),
            "per-profile regret found by the evaluation's misreport search",
        )
    )
    for name, make, caption in figs:
        fig = make()
        blocks.append(Image(name, plot.to_png(fig), caption))
    return blocks


def _comparison_table(runs: list[RunData]) -> Table:
    """Runs side by side: one column per run."""
    from automech.reference import best_exact

    def col(r: RunData) -> list[str]:
        m = r.metrics
        ref = best_exact(r.setting)
        published = [x for x in references(r.setting) if x.kind == "published"]
        best_pub = max(published, key=lambda x: x.revenue) if published else None
        steps = (r.config.get("options") or {}).get("steps")
        return [
            str(r.path),
            r.setting.name or "-",
            r.method,
            _num(r.config.get("seed")),
            _num(steps),
            _pm(m.get("revenue"), m.get("revenue_se")),
            _pm(m.get("welfare"), m.get("welfare_se")),
            _pm(m.get("regret_mean"), m.get("regret_se"), 6),
            _num(m.get("regret_max"), 6),
            _num(m.get("ir_violation_rate"), 3),
            _num(m.get("infeasible_rate"), 3),
            "-" if ref is None else f"{ref.revenue:.4f} ({ref.method.split(':')[0]})",
            "-"
            if ref is None or m.get("revenue") is None
            else _gap(m["revenue"], ref.revenue, m.get("revenue_se")),
            "-" if best_pub is None else f"{best_pub.revenue:.4f} ({best_pub.method})",
        ]

    names = [
        "run directory",
        "setting",
        "method",
        "seed",
        "training steps",
        "revenue ± se",
        "welfare ± se",
        "regret mean ± se",
        "regret max",
        "IR violation rate",
        "infeasible rate",
        "best exact reference",
        "gap to exact reference",
        "best published result",
    ]
    cols = [col(r) for r in runs]
    rows = [[name, *(c[i] for c in cols)] for i, name in enumerate(names)]
    return Table(
        ["", *(f"run {k + 1}" for k in range(len(runs)))],
        rows,
        caption="runs side by side (each run's own evaluation, metrics.json)",
    )


def build(
    run_dirs: Sequence[str | Path],
    baseline_samples: int = BASELINE_SAMPLES,
    bidder: int = 0,
    figures: bool = True,
    describe_samples: int = DESCRIBE_SAMPLES,
) -> list[Section]:
    """The report's sections for ``run_dirs`` (see :func:`render_html`)."""
    from automech.plot import describe_entries

    if not run_dirs:
        raise AutomechError("give at least one run directory")
    runs = [load_run(p) for p in run_dirs]
    sections: list[Section] = []
    if len(runs) > 1:
        sections.append(Section("Comparison", [_comparison_table(runs)], anchor="comparison"))
    for k, r in enumerate(runs, 1):
        baselines = classical_baselines(r.setting, samples=baseline_samples)
        info = describe_entries(r.mechanism, r.setting, describe_samples)
        evaluated = (
            " (this run had no metrics.json: evaluated for this report)" if r.evaluated_here else ""
        )
        blocks: list[Any] = [
            Section("Setting", [Text(r.setting.describe()), _setting_table(r.setting)], 3),
            Section("Method and hyperparameters", _method_blocks(r), 3),
            Section("Evaluation" + evaluated, [_evaluation_table(r.metrics)], 3),
            Section("Classical baselines", _baseline_blocks(r, baselines, baseline_samples), 3),
            Section("Reference numbers", _reference_blocks(r, references(r.setting)), 3),
            Section("What the mechanism uses", _describe_blocks(info, describe_samples), 3),
        ]
        if figures:
            blocks.append(Section("Figures", _figure_blocks(r, info, bidder, describe_samples), 3))
        sections.append(Section(f"Run {k}: {r.label}", blocks, anchor=f"run-{k}"))
    return sections


# ---------------------------------------------------------------------- rendering

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1400px;padding:0 1.5em;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;
margin-top:2em}h3{margin-top:1.4em;color:#333}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}tr.hl td{font-weight:bold;background:#fffbe6}
td{font-variant-numeric:tabular-nums}
caption{caption-side:bottom;text-align:left;font-size:.85em;color:#666;padding-top:.3em}
.note{color:#666;font-size:.9em}pre{background:#f6f6f6;padding:.8em;overflow-x:auto;
font-size:.85em}figure{margin:1em 0 2em}figure img{max-width:100%;height:auto;
border:1px solid #eee}figcaption{font-size:.85em;color:#555}
nav a{margin-right:1em}
"""


def _html_block(block: Any) -> str:
    esc = html.escape
    if isinstance(block, Section):
        tag = f"h{min(block.level, 6)}"
        anchor = f' id="{esc(block.anchor)}"' if block.anchor else ""
        inner = "\n".join(_html_block(b) for b in block.blocks)
        return f"<section{anchor}><{tag}>{esc(block.title)}</{tag}>\n{inner}</section>"
    if isinstance(block, Table):
        cap = f"<caption>{esc(block.caption)}</caption>" if block.caption else ""
        head = "".join(f"<th>{esc(h)}</th>" for h in block.headers)
        head = f"<thead><tr>{head}</tr></thead>" if any(block.headers) else ""
        body = "".join(
            f"<tr{' class=hl' if i in block.highlight else ''}>"
            + "".join(f"<td>{esc(c)}</td>" for c in row)
            + "</tr>"
            for i, row in enumerate(block.rows)
        )
        return f"<table>{cap}{head}<tbody>{body}</tbody></table>"
    if isinstance(block, Text):
        return f"<p{' class=note' if block.note else ''}>{esc(block.text)}</p>"
    if isinstance(block, Code):
        return f"<pre>{esc(block.text)}</pre>"
    if isinstance(block, Image):
        data = base64.b64encode(block.png).decode("ascii")
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{esc(block.name)}: '
            f'{esc(block.caption)}"><figcaption>{esc(block.caption)}</figcaption>'
            "</figure>"
        )
    raise TypeError(f"unknown block {type(block).__name__}")


def _header(run_dirs: Sequence[str | Path]) -> tuple[str, str]:
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return "automech report", (
        f"{len(run_dirs)} run(s), generated {stamp} by automech {__version__}"
    )


def render_html(sections: list[Section], run_dirs: Sequence[str | Path]) -> str:
    """A self-contained HTML page: inline style, figures as data URIs, no scripts."""
    title, sub = _header(run_dirs)
    nav = " ".join(
        f'<a href="#{html.escape(s.anchor)}">{html.escape(s.title)}</a>'
        for s in sections
        if s.anchor
    )
    body = "\n".join(_html_block(s) for s in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>"
        f"<h1>{html.escape(title)}</h1><p class=note>{html.escape(sub)}</p>"
        f"<nav>{nav}</nav>\n{body}\n</body></html>\n"
    )


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_block(block: Any, files: Path, rel: str) -> str:
    if isinstance(block, Section):
        inner = "\n\n".join(_md_block(b, files, rel) for b in block.blocks)
        return f"{'#' * min(block.level, 6)} {block.title}\n\n{inner}"
    if isinstance(block, Table):
        headers = block.headers if any(block.headers) else [" "] * len(block.headers)
        lines = [
            "| " + " | ".join(_md_cell(h) for h in headers) + " |",
            "|" + "---|" * len(headers),
        ]
        for i, row in enumerate(block.rows):
            cells = [_md_cell(c) for c in row]
            if i in block.highlight:
                cells = [f"**{c}**" if c else c for c in cells]
            lines.append("| " + " | ".join(cells) + " |")
        if block.caption:
            lines.append(f"\n*{block.caption}*")
        return "\n".join(lines)
    if isinstance(block, Text):
        return f"*{block.text}*" if block.note else block.text
    if isinstance(block, Code):
        return f"```\n{block.text}\n```"
    if isinstance(block, Image):
        files.mkdir(parents=True, exist_ok=True)
        name = f"{block.name}.png"
        k = 1
        while (files / name).exists():
            k += 1
            name = f"{block.name}-{k}.png"
        (files / name).write_bytes(block.png)
        return f"![{block.caption}]({rel}/{name})"
    raise TypeError(f"unknown block {type(block).__name__}")


def render_markdown(sections: list[Section], run_dirs: Sequence[str | Path], out: Path) -> str:
    """Markdown with the figures written to ``<out stem>_files/`` beside ``out``."""
    title, sub = _header(run_dirs)
    files = out.parent / f"{out.stem}_files"
    if files.exists():
        for old in files.glob("*.png"):
            old.unlink()
    body = "\n\n".join(_md_block(s, files, files.name) for s in sections)
    return f"# {title}\n\n*{sub}*\n\n{body}\n"


def write(
    run_dirs: Sequence[str | Path],
    out: str | Path = "report.html",
    baseline_samples: int = BASELINE_SAMPLES,
    bidder: int = 0,
    figures: bool = True,
) -> Path:
    """Write the report of ``run_dirs`` to ``out`` (HTML, or Markdown for ``.md``)."""
    out = Path(out)
    sections = build(run_dirs, baseline_samples=baseline_samples, bidder=bidder, figures=figures)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() in (".md", ".markdown"):
        text = render_markdown(sections, run_dirs, out)
    else:
        text = render_html(sections, run_dirs)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out


__all__ = [
    "build",
    "write",
    "render_html",
    "render_markdown",
    "classical_baselines",
    "load_run",
    "Section",
    "Table",
    "Text",
    "Code",
    "Image",
]
