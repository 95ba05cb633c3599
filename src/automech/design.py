"""``automech design``: from a setting (or a file of bids) to the best exactly
strategyproof mechanism that a time budget allows.

:func:`design` runs, in this order and within ``budget_seconds``:

1. every classical mechanism that applies (:data:`automech.mechanisms.CLASSICAL`),
   evaluated with the shared protocol;
2. the learned methods that apply (:func:`learned_candidates`): the LP on a small finite
   type space, RochetNet for one bidder, MyersonNet (one item), the lottery and
   deterministic affine maximizers and GemNet for several bidders, TEDI for unlimited
   supply with production costs; RegretNet and ALGNet (only approximately strategyproof)
   only when asked.  Each gets an equal share of what is left of the budget; a short
   timing probe (:data:`PROBE_STEPS` steps) says how many of its default ``steps`` fit in
   that share, and the steps are scaled down when they do not all fit (a method for which
   not even :data:`MIN_STEPS` fit is skipped, with the reason);
3. the choice: the candidate with the best held-out revenue (the setting's objective when
   it is not revenue) among the **exactly strategyproof** ones with no IR violation and
   no infeasible outcome on the test profiles (:data:`EXACT_LEARNED`; every classical
   mechanism but first-price).  RegretNet and ALGNet can be shown, never chosen.

The output directory (default ``runs/design-SETTING``) holds::

    design.json         every candidate: figures, interval, time, options, chosen or why not
    candidates/NAME/    each candidate's run directory (classical ones saved too)
    chosen/             a copy of the chosen one: automech evaluate / serve / export read it
    report.html         automech report of the chosen design (and the best other learned ones)

A rerun into the same directory starts afresh (it replaces ``candidates``, ``chosen`` and
the report); a directory that holds something else is refused.
"""

from __future__ import annotations

import math
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
)
from rich.text import Text

from automech._version import __version__
from automech.errors import AutomechError, NotApplicableError
from automech.evaluation import TEST_PROFILES, RegretSearch, evaluate
from automech.experiment import load, resolve_options, save, train
from automech.mechanisms import CLASSICAL
from automech.methods import METHODS, get_method
from automech.problems import Setting, get_setting
from automech.runs import CONFIG, METRICS, Run

#: Classical mechanisms that are not strategyproof (shown, never chosen).
NOT_STRATEGYPROOF = frozenset({"first-price"})
#: Learned methods whose designs are exactly strategyproof (GemNet after its adjustment).
EXACT_LEARNED = frozenset(
    {"lp", "rochetnet", "myersonnet", "lottery-ama", "deterministic-ama", "gemnet", "tedi"}
)
#: Learned methods that are only approximately strategyproof (``include_approximate``).
APPROXIMATE = ("regretnet", "algnet")
#: The learned methods design considers, in the order they are trained (GemNet after the
#: deterministic AMA, whose run it starts from).
LEARNED = (
    "lp",
    "rochetnet",
    "myersonnet",
    "deterministic-ama",
    "lottery-ama",
    "gemnet",
    "tedi",
    *APPROXIMATE,
)
#: Learned methods design trains only for several bidders (RochetNet serves one).
SEVERAL_BIDDERS = frozenset({"myersonnet", "lottery-ama", "deterministic-ama", "gemnet"})
#: Steps of the timing probe of a gradient method.
PROBE_STEPS = 6
#: Fewest steps a method is trained for (fewer: skipped as not fitting in the budget).
MIN_STEPS = 20
#: Largest LP (nonzeros of its IC block) that design solves.
LP_MAX_NONZEROS = 5_000_000
#: Opponent cells per bidder of GemNet's price adjustment in design (its own automatic
#: grid, about 1,600 cells, takes far longer than a design budget on a CPU).
GEMNET_CELLS = 64
#: Runs in the report at most (the chosen one first), and the seconds kept for each.
REPORT_RUNS = 3
REPORT_SECONDS_PER_RUN = 8.0
#: Profiles of the probe's evaluation, and of its regret search.
PROBE_SAMPLES = 1_000
PROBE_REGRET_PROFILES = 100

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_budget(text: str | float | int) -> float:
    """Seconds of a budget: ``90s``, ``10m``, ``1.5h`` or plain seconds (``600``)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*", str(text).lower())
        if not match:
            raise AutomechError(
                f"budget must be a duration like 90s, 10m or 1h, or plain seconds; got {text!r}"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not (math.isfinite(seconds) and seconds > 0):
        raise AutomechError(f"budget must be more than 0 seconds; got {text!r}")
    return seconds


def _default_steps(name: str) -> int | None:
    return get_method(name).Options.defaults().get("steps")


def learned_candidates(
    setting: Setting, include_approximate: bool = False
) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """The learned methods of :data:`LEARNED` that :func:`design` trains on ``setting``
    (in training order); those it leaves out by its own rules, with the reason (the LP on
    a continuous prior, RegretNet unless ``include_approximate``...); and those that do
    not apply to ``setting`` at all, with the method's reason."""
    plan: list[str] = []
    skipped: dict[str, str] = {}
    not_applicable: dict[str, str] = {}
    for name in LEARNED:
        if name not in METHODS:
            continue
        meth = METHODS[name]
        problem = meth.refusal(setting)
        if not problem and name in SEVERAL_BIDDERS and setting.num_bidders < 2:
            problem = "one bidder: design trains RochetNet's menu for it"
        if problem:
            not_applicable[name] = problem
            continue
        rule = _rule(name, setting, include_approximate)
        if rule:
            skipped[name] = rule
        else:
            plan.append(name)
    return plan, skipped, not_applicable


def _rule(name: str, setting: Setting, include_approximate: bool) -> str | None:
    """Design's own rule for ``name`` on ``setting`` (the method applies)."""
    if name in APPROXIMATE and not include_approximate:
        return "only approximately strategyproof (--approximate trains it for comparison)"
    if name == "lp":
        return _lp_problem(setting)
    if name == "gemnet":
        from automech.methods.gemnet.compatibility import adjustable

        return adjustable(setting)
    return None


def _lp_problem(setting: Setting) -> str | None:
    """Why the LP is not solved with its defaults on ``setting`` (None: it is).  The type
    space is counted before it is built (a product of many atoms is too large to build)."""
    from automech.methods.lp import _estimated_nonzeros
    from automech.problems.finite_types import finite_types

    counts = _type_counts(setting.prior)
    if counts is None:
        return (
            "the prior is not a finite type space (the LP with its defaults needs a "
            "discrete prior; `automech train --method lp --set grid=N` discretises others)"
        )
    profiles = math.prod(counts)
    bound = 2 * (setting.num_items + 1) * profiles * sum(k - 1 for k in counts)
    if bound <= LP_MAX_NONZEROS:
        bound = _estimated_nonzeros(setting, finite_types(setting.prior, 0), "dsic")
    if bound > LP_MAX_NONZEROS:
        return (
            f"the LP on {profiles:,} type profiles would have about {bound:,} "
            f"nonzeros; design solves up to {LP_MAX_NONZEROS:,}"
        )
    return None


def _type_counts(prior: Any) -> list[int] | None:
    """Each bidder's number of types of a finite prior, None for any other prior."""
    from automech.problems.priors import DiscretePrior, IndependentDiscretePrior

    n, m = prior.num_bidders, prior.num_items
    if isinstance(prior, DiscretePrior):
        rows = np.asarray(prior.profiles, dtype=float)
        return [len(np.unique(rows[:, i, :], axis=0)) for i in range(n)]
    if isinstance(prior, IndependentDiscretePrior):
        return [len(t) for t in prior.types]
    if not prior.independent:
        return None
    counts = []
    for i in range(n):
        k = 1
        for j in range(m):
            law = prior.marginal(i, j)
            atoms = law.atoms() if law is not None else None
            if atoms is None:
                return None
            k *= len(atoms)
        counts.append(k)
    return counts


# ---------------------------------------------------------------------- candidates


@dataclass
class Candidate:
    """One design tried: a classical mechanism or a learned method's run."""

    name: str
    kind: str  # "classical" or "learned"
    exact: bool  # exactly strategyproof by construction
    status: str = "pending"  # "evaluated", "skipped" or "failed"
    reason: str | None = None  # why skipped or failed
    metrics: dict[str, Any] | None = None
    seconds: float = 0.0
    run: str | None = None  # run directory, relative to the design directory
    options: dict[str, Any] | None = None  # what design set (the rest: defaults)
    resolved_options: dict[str, Any] | None = None  # the run's full options
    steps: int | None = None
    default_steps: int | None = None
    probe: dict[str, Any] | None = None
    eligible: bool = False
    chosen: bool = False
    why: str = ""

    def score(self) -> float | None:
        """What the choice maximises: revenue, or the objective when it is not revenue."""
        m = self.metrics
        if m is None:
            return None
        return m["revenue"] if m.get("objective", "revenue") == "revenue" else m["objective_value"]

    def interval(self) -> tuple[float, float, str] | None:
        """The 95 % interval of :meth:`score`: the evaluation's bootstrap interval on a
        data prior, else the estimate +- 1.96 standard errors."""
        m = self.metrics
        if m is None:
            return None
        revenue = m.get("objective", "revenue") == "revenue"
        key = "revenue" if revenue else "objective"
        ci = m.get(f"{key}_ci", (m.get("extra") or {}).get(f"{key}_ci"))
        if isinstance(ci, dict):
            ci = (ci.get("low", ci.get("lo")), ci.get("high", ci.get("hi")))
        if isinstance(ci, (list, tuple)) and len(ci) == 2 and None not in ci:
            return float(ci[0]), float(ci[1]), "bootstrap"
        value = self.score()
        se = m.get("revenue_se" if revenue else "objective_se") or 0.0
        assert value is not None
        return value - 1.96 * se, value + 1.96 * se, "normal"

    def to_dict(self) -> dict[str, Any]:
        m = self.metrics or {}
        ci = self.interval()
        return {
            "name": self.name,
            "kind": self.kind,
            "exactly_strategyproof": self.exact,
            "status": self.status,
            "reason": self.reason,
            "revenue": m.get("revenue"),
            "revenue_se": m.get("revenue_se"),
            "objective": m.get("objective"),
            "objective_value": m.get("objective_value"),
            "score": self.score(),
            "interval": None if ci is None else [ci[0], ci[1]],
            "interval_kind": None if ci is None else ci[2],
            "welfare": m.get("welfare"),
            "regret_mean": m.get("regret_mean"),
            "regret_max": m.get("regret_max"),
            "ir_violation_rate": m.get("ir_violation_rate"),
            "infeasible_rate": m.get("infeasible_rate"),
            "samples": m.get("samples"),
            "seconds": round(self.seconds, 3),
            "run": self.run,
            "options": self.options,
            "resolved_options": self.resolved_options,
            "steps": self.steps,
            "default_steps": self.default_steps,
            "probe": self.probe,
            "eligible": self.eligible,
            "chosen": self.chosen,
            "why": self.why,
        }


@dataclass
class DesignResult:
    """What :func:`design` found; ``to_dict()`` is ``design.json``."""

    setting: Setting
    out: Path
    candidates: list[Candidate]
    chosen: Candidate | None
    reason: str
    budget_seconds: float
    seconds: float
    seed: int
    samples: int
    regret_profiles: int
    include_approximate: bool
    report: Path | None = None
    report_error: str | None = None
    mechanism: Any = None
    status: str = "done"
    not_applicable: dict[str, str] = field(default_factory=dict)

    @property
    def chosen_dir(self) -> Path | None:
        return self.out / "chosen" if self.chosen else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "automech": __version__,
            "status": self.status,
            "setting": self.setting.name,
            "description": self.setting.describe(),
            "objective": self.setting.objective.name,
            "budget_seconds": self.budget_seconds,
            "seconds": round(self.seconds, 3),
            "seed": self.seed,
            "samples": self.samples,
            "regret_profiles": self.regret_profiles,
            "include_approximate": self.include_approximate,
            "chosen": self.chosen.name if self.chosen else None,
            "chosen_dir": "chosen" if self.chosen else None,
            "reason": self.reason,
            "report": self.report.name if self.report else None,
            "report_error": self.report_error,
            "candidates": [c.to_dict() for c in self.candidates],
            "not_applicable": self.not_applicable,
        }


# ---------------------------------------------------------------------- the budget


@dataclass(frozen=True)
class Timing:
    """What a probe of ``steps`` steps measured: seconds per training step, per
    validation, of the fixed part of a run (set-up, start, adjustment...) and of the
    final evaluation at the design's sample sizes."""

    steps: int
    per_step: float
    per_validation: float
    fixed: float
    evaluation: float
    wall: float

    def estimate(self, steps: int, validate_every: int, init_ratio: float = 0.0) -> float:
        """Seconds of a run of ``steps`` steps (and ``init_ratio * steps`` start steps)."""
        validations = math.ceil(steps / max(1, validate_every))
        return (
            self.fixed
            + self.evaluation
            + steps * self.per_step * (1.0 + init_ratio)
            + validations * self.per_validation
        )


def fit_steps(
    timing: Timing, seconds: float, target: int, validate_every: int, init_ratio: float = 0.0
) -> int:
    """The most steps (at most ``target``) whose run :meth:`Timing.estimate` puts within
    ``seconds``; 0 when not even one step fits."""
    if timing.estimate(target, validate_every, init_ratio) <= seconds:
        return target
    low, high = 0, target  # estimate(low) fits (or low = 0), estimate(high) does not
    while high - low > 1:
        mid = (low + high) // 2
        if timing.estimate(mid, validate_every, init_ratio) <= seconds:
            low = mid
        else:
            high = mid
    return low


def _timing(run_dir: Path, wall: float, samples: int, regret_profiles: int) -> Timing:
    """A probe run's :class:`Timing`, from its ``history.jsonl`` (one line per step) and
    ``metrics.json``; the evaluation scaled from the probe's sizes to the design's."""
    run = Run(run_dir)
    times = [
        float(r["seconds"])
        for r in run.history()
        if "seconds" in r and "step" in r and r.get("step", 0) > 0
    ]
    probe_eval = float(run.read_json(METRICS).get("seconds", 0.0))
    scale = max(
        samples / min(samples, PROBE_SAMPLES),
        regret_profiles / max(1, min(regret_profiles, PROBE_REGRET_PROFILES)),
    )
    steps = max(1, len(times))
    if len(times) >= 3:
        per_step = (times[-2] - times[0]) / (len(times) - 2)
        per_validation = max(0.0, times[-1] - times[-2] - per_step)
        trained = times[-1]
    else:  # no per-step history: charge everything but the evaluation to the steps
        trained = max(0.0, wall - probe_eval)
        per_step, per_validation = trained / steps, 0.0
    return Timing(
        steps=steps,
        per_step=max(per_step, 1e-6),
        per_validation=per_validation,
        fixed=max(0.0, wall - trained - probe_eval),
        evaluation=probe_eval * scale,
        wall=wall,
    )


# ---------------------------------------------------------------------- progress


class _BudgetColumn(ProgressColumn):
    """Seconds spent of the budget."""

    def __init__(self, start: float, budget: float) -> None:
        super().__init__()
        self.start, self.budget = start, budget

    def render(self, task: Task) -> Text:
        spent = time.perf_counter() - self.start
        return Text(f"{spent:.0f}/{self.budget:.0f} s", style="progress.elapsed")


class _Display:
    """The Rich progress display (or nothing) and where lines for the user go."""

    def __init__(
        self,
        enabled: bool,
        total: int,
        start: float,
        budget: float,
        notify: Callable[[str], None] | None,
    ) -> None:
        self.notify = notify
        self.bar: Progress | None = None
        if enabled:
            self.bar = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                _BudgetColumn(start, budget),
                console=Console(stderr=True),
                transient=True,
            )
            self.task = self.bar.add_task("design", total=total)

    def __enter__(self) -> _Display:
        if self.bar:
            self.bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar:
            self.bar.stop()

    def phase(self, text: str) -> None:
        if self.bar:
            self.bar.update(self.task, description=text)

    def done(self) -> None:
        if self.bar:
            self.bar.advance(self.task)

    def say(self, line: str) -> None:
        if self.notify is not None:
            self.notify(line)
        elif self.bar:
            self.bar.console.print(line, markup=False, highlight=False)


# ---------------------------------------------------------------------- design


def design(
    setting: Setting | str | Path,
    budget_seconds: float | str = 600,
    out: str | Path | None = None,
    include_approximate: bool = False,
    seed: int = 0,
    progress: bool = False,
    notify: Callable[[str], None] | None = None,
    samples: int = TEST_PROFILES,
    regret_profiles: int = RegretSearch().profiles,
    max_steps: int | None = None,
    methods: Sequence[str] | None = None,
) -> DesignResult:
    """Design the best exactly strategyproof mechanism for ``setting`` within a budget.

    Parameters
    ----------
    setting
        A :class:`~automech.problems.Setting`, a setting name or a TOML file (a
        ``[prior] kind = "data"`` file of bids included).
    budget_seconds
        Wall-clock budget of the whole design (seconds, or a string for
        :func:`parse_budget`); respected roughly: a run in progress is not cut short.
    out
        The design directory (default ``runs/design-SETTING``).
    include_approximate
        Also train RegretNet and ALGNet (shown for comparison, never chosen).
    seed
        Seed of every training run.
    progress, notify
        Show a Rich progress display (on stderr); where to send lines for the user.
    samples, regret_profiles
        Test profiles of every evaluation and profiles searched for misreports.
    max_steps
        Train no method for more steps than this (for quick checks and tests).
    methods
        Only these learned methods (of those that apply); None: all of them.

    Returns
    -------
    DesignResult
        Every candidate, the chosen one (``out/chosen``, loaded as ``.mechanism``) and
        why; ``design.json`` in ``out`` holds the same.

    Raises
    ------
    AutomechError
        for a dynamic setting, a bad budget, a directory that is not a design's, or when
        no candidate is exactly strategyproof, IR and feasible.
    """
    start = time.perf_counter()
    budget = parse_budget(budget_seconds)
    given = get_setting(setting) if isinstance(setting, (str, Path)) else setting
    if getattr(given, "kind", "static") != "static" or not isinstance(given, Setting):
        raise AutomechError(
            f"{given.name} is a dynamic setting: automech design covers static ones "
            "(`automech train --method grid-search` designs dynamic AMAs)"
        )
    s: Setting = given
    if max_steps is not None and max_steps < 1:
        raise AutomechError(f"max_steps must be >= 1, got {max_steps}")
    if methods is not None:
        unknown = sorted(set(methods) - set(LEARNED))
        if unknown:
            raise AutomechError(
                f"unknown learned method(s) {', '.join(unknown)}; "
                f"design trains {', '.join(LEARNED)}"
            )
    out = Path(out) if out else Path("runs") / f"design-{s.name or 'setting'}"
    _prepare(out)
    search = RegretSearch(profiles=regret_profiles)
    classical = [cls for cls in CLASSICAL if not cls.applicable(s)]
    not_applicable = {cls.name: str(cls.applicable(s)) for cls in CLASSICAL if cls.applicable(s)}
    plan, skipped, unfit = learned_candidates(s, include_approximate)
    if methods is not None:
        for name in plan:
            if name not in methods:
                skipped[name] = "not asked for"
        plan = [name for name in plan if name in methods]
    result = DesignResult(
        setting=s,
        out=out,
        candidates=[],
        chosen=None,
        reason="",
        budget_seconds=budget,
        seconds=0.0,
        seed=seed,
        samples=samples,
        regret_profiles=regret_profiles,
        include_approximate=include_approximate,
        status="running",
        not_applicable={**not_applicable, **unfit},
    )
    _write(result)
    reserve = min(max(5.0, 0.1 * budget), 60.0)  # for the report
    with _Display(progress, len(classical) + len(plan), start, budget, notify) as show:
        for cls in classical:
            show.phase(f"classical: {cls.name}")
            cand = _classical(cls, s, out, samples, search)
            result.candidates.append(cand)
            _tell(show, cand, s)
            show.done()
        for k, name in enumerate(plan):
            left = budget - (time.perf_counter() - start) - reserve
            share = left / (len(plan) - k)
            show.phase(f"{name}: {share:.0f} s")
            cand = _learned(
                name, s, out, share, seed, samples, regret_profiles, search, max_steps, result, show
            )
            result.candidates.append(cand)
            _tell(show, cand, s)
            show.done()
        for name, reason in skipped.items():
            result.candidates.append(
                Candidate(name, "learned", name in EXACT_LEARNED, status="skipped", reason=reason)
            )
        _choose(result)
        show.phase("report")
        _finish(result, start, show)
    shutil.rmtree(out / "probes", ignore_errors=True)
    result.seconds = time.perf_counter() - start
    result.status = "done"
    _write(result)
    if result.chosen is None:
        raise AutomechError(
            f"no candidate on {s.name} is exactly strategyproof with no IR violation and no "
            f"infeasible outcome ({out / 'design.json'} lists them)"
        )
    return result


def _prepare(out: Path) -> None:
    """Make ``out`` ready for a fresh design: refuse a directory that is not a design's,
    clear what a previous design left."""
    if out.exists() and not out.is_dir():
        raise AutomechError(f"{str(out)!r} exists and is not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / "design.json").is_file():
        raise AutomechError(
            f"{str(out)!r} exists and holds something else than a design (no design.json); "
            "choose another --out"
        )
    for sub in ("candidates", "probes", "chosen"):
        shutil.rmtree(out / sub, ignore_errors=True)
    (out / "report.html").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _write(result: DesignResult) -> None:
    Run(result.out).write_json("design.json", result.to_dict())


def _label(s: Setting) -> str:
    return "revenue" if s.objective.name == "revenue" else s.objective.name


def _tell(show: _Display, cand: Candidate, s: Setting) -> None:
    if cand.status == "evaluated":
        score, ci = cand.score(), cand.interval()
        assert score is not None and ci is not None
        steps = f", {cand.steps} steps" if cand.steps is not None else ""
        show.say(
            f"{cand.name}: {_label(s)} {score:.4f} [{ci[0]:.4f}, {ci[1]:.4f}] "
            f"({cand.seconds:.1f} s{steps})"
        )
    else:
        show.say(f"{cand.name}: {cand.status}: {cand.reason}")


def _classical(cls: Any, s: Setting, out: Path, samples: int, search: RegretSearch) -> Candidate:
    cand = Candidate(cls.name, "classical", cls.name not in NOT_STRATEGYPROOF)
    reason = cls.applicable(s)
    if reason:
        cand.status, cand.reason = "skipped", reason
        return cand
    began = time.perf_counter()
    try:
        mech = cls(s)
    except NotApplicableError as err:
        cand.status, cand.reason = "skipped", str(err)
        return cand
    report = evaluate(mech, s, samples=samples, search=search)
    path = Path("candidates") / cls.name
    run = save(mech, out / path)
    run.write_json(METRICS, report.to_dict())
    cand.metrics, cand.run, cand.status = report.to_dict(), str(path), "evaluated"
    cand.seconds = time.perf_counter() - began
    return cand


def _learned(
    name: str,
    s: Setting,
    out: Path,
    share: float,
    seed: int,
    samples: int,
    regret_profiles: int,
    search: RegretSearch,
    max_steps: int | None,
    result: DesignResult,
    show: _Display,
) -> Candidate:
    """Probe, size and train ``name`` within ``share`` seconds."""
    cand = Candidate(name, "learned", name in EXACT_LEARNED)
    began = time.perf_counter()
    if share <= 0:
        cand.status, cand.reason = "skipped", "no time left in the budget"
        return cand
    meth = get_method(name)
    defaults = meth.Options.defaults()
    options: dict[str, Any] = {}
    if name == "lp":
        options["time_limit"] = float(min(defaults["time_limit"], max(1.0, share)))
    if name == "gemnet":
        options["grid"] = max(2, round(GEMNET_CELLS ** (1 / s.num_items)))
        ama = next(
            (
                c
                for c in result.candidates
                if c.name == "deterministic-ama" and c.status == "evaluated" and c.run
            ),
            None,
        )
        options["init"] = str(out / ama.run) if ama and ama.run else "random"
    default = defaults.get("steps")
    cand.default_steps = default
    try:
        init_default = _init_steps(name, s, options)
        if default is not None:
            target = min(default, max_steps) if max_steps else default
            init_ratio = (init_default or 0) / default
            steps = target
            if target > PROBE_STEPS:
                show.phase(f"{name}: timing probe")
                timing, probe_seconds = _probe(
                    name, s, out, options, seed, samples, regret_profiles, search
                )
                available = share - probe_seconds
                every = int(defaults.get("validate_every", target))
                steps = fit_steps(timing, available, target, every, init_ratio)
                cand.probe = {
                    "steps": timing.steps,
                    "seconds": round(probe_seconds, 3),
                    "seconds_per_step": timing.per_step,
                    "seconds_per_validation": timing.per_validation,
                    "fixed_seconds": round(timing.fixed, 3),
                    "evaluation_seconds": round(timing.evaluation, 3),
                    "estimate_seconds": round(timing.estimate(steps, every, init_ratio), 3),
                    "share_seconds": round(share, 3),
                }
                if steps < min(MIN_STEPS, target):
                    cand.status = "skipped"
                    cand.reason = (
                        f"does not fit: {min(MIN_STEPS, target)} steps would take about "
                        f"{timing.estimate(min(MIN_STEPS, target), every, init_ratio):.0f} s, "
                        f"its share of the budget was {share:.0f} s "
                        f"(the {timing.steps}-step probe took {probe_seconds:.1f} s)"
                    )
                    cand.seconds = time.perf_counter() - began
                    return cand
            options["steps"] = steps
            if init_default:
                options["init_steps"] = max(1, round(init_default * steps / default))
            cand.steps = steps
        show.phase(f"{name}: training" + (f" {cand.steps} steps" if cand.steps else ""))
        path = Path("candidates") / name
        _, run = train(
            s,
            name,
            options,
            seed=seed,
            out=out / path,
            eval_samples=samples,
            search=search,
        )
    except Exception as err:  # one failing candidate does not end the design
        cand.status = "failed"
        cand.reason = f"{type(err).__name__}: {err}".splitlines()[0]
        cand.options = options
        cand.seconds = time.perf_counter() - began
        return cand
    cand.options = options
    cand.resolved_options = run.read_json(CONFIG).get("options")
    cand.metrics, cand.run, cand.status = run.read_json(METRICS), str(path), "evaluated"
    cand.seconds = time.perf_counter() - began
    return cand


def _init_steps(name: str, s: Setting, options: dict[str, Any]) -> int | None:
    """Start steps that scale with the training steps: GemNet's distillation from an
    AMA, TEDI's distilled separable start; None where there are none."""
    if name == "gemnet":
        if options.get("init") == "random":
            return None
        return int(get_method(name).Options.defaults()["init_steps"])
    if name == "tedi":
        from automech.methods.tedi import DISTILLED

        opts: Any = resolve_options(get_method(name), s, options)
        return DISTILLED.get(opts.init) if not opts.init_steps else int(opts.init_steps)
    return None


def _probe(
    name: str,
    s: Setting,
    out: Path,
    options: dict[str, Any],
    seed: int,
    samples: int,
    regret_profiles: int,
    search: RegretSearch,
) -> tuple[Timing, float]:
    """Train ``name`` for :data:`PROBE_STEPS` steps, logging every step; its timing."""
    began = time.perf_counter()
    probe = {
        **options,
        "steps": PROBE_STEPS,
        "log_every": 1,
        "validate_every": PROBE_STEPS,
    }
    if _init_steps(name, s, options):
        probe["init_steps"] = PROBE_STEPS
    path = out / "probes" / name
    small = RegretSearch(
        **{**search.to_dict(), "profiles": min(PROBE_REGRET_PROFILES, regret_profiles)}
    )
    train(
        s,
        name,
        probe,
        seed=seed,
        out=path,
        eval_samples=min(PROBE_SAMPLES, samples),
        search=small,
    )
    wall = time.perf_counter() - began
    return _timing(path, wall, samples, regret_profiles), wall


def _choose(result: DesignResult) -> None:
    """Mark the eligible candidates, the chosen one, and why every other one is not."""
    label = _label(result.setting)
    for c in result.candidates:
        m = c.metrics
        if c.status != "evaluated" or m is None:
            c.why = f"{c.status}: {c.reason}"
        elif not c.exact:
            regret = m.get("regret_mean")
            shown = "" if regret is None else f" (regret mean {regret:.4g})"
            c.why = (
                "not strategyproof: bidders gain by misreporting" + shown
                if c.kind == "classical"
                else "only approximately strategyproof" + shown + "; shown for comparison"
            )
        elif (m.get("ir_violation_rate") or 0) > 0:
            c.why = f"violates IR on {m['ir_violation_rate']:.2%} of the test profiles"
        elif (m.get("infeasible_rate") or 0) > 0:
            c.why = f"infeasible on {m['infeasible_rate']:.2%} of the test profiles"
        else:
            c.eligible = True
    eligible = [c for c in result.candidates if c.eligible]
    if not eligible:
        result.reason = "no candidate is exactly strategyproof, IR and feasible"
        return
    best = eligible[0]
    for c in eligible[1:]:  # strictly better: ties go to the first (classical first)
        if (c.score() or 0.0) > (best.score() or 0.0):
            best = c
    best.chosen = True
    top, ci = best.score() or 0.0, best.interval()
    assert ci is not None
    best.why = (
        f"highest held-out {label} of the {len(eligible)} exactly strategyproof "
        "candidates with no IR violation or infeasibility"
    )
    for c in eligible:
        if c is not best:
            gap = top - (c.score() or 0.0)
            c.why = (
                f"{label} {c.score():.4f}, {gap:.4f} below {best.name}"
                if gap > 0
                else f"ties with {best.name}, which comes first"
            )
    others = sorted((c for c in eligible if c is not best), key=lambda c: -(c.score() or 0.0))
    runner = f"; next: {others[0].name} {others[0].score():.4f}" if others else ""
    kind = "95% bootstrap CI" if ci[2] == "bootstrap" else "95% CI"
    result.chosen = best
    result.reason = (
        f"{best.name} ({best.kind}): {label} {top:.4f}, {kind} [{ci[0]:.4f}, {ci[1]:.4f}], "
        f"the highest of {len(eligible)} exactly strategyproof candidates with no IR "
        f"violation or infeasibility{runner}"
    )


def _finish(result: DesignResult, start: float, show: _Display) -> None:
    """Copy the chosen run to ``out/chosen``, load it, write the report."""
    best, out = result.chosen, result.out
    if best is None or best.run is None:
        return
    chosen = out / "chosen"
    shutil.copytree(out / best.run, chosen)
    Run(chosen).write_json(
        "chosen.json",
        {"candidate": best.name, "kind": best.kind, "from": best.run, "why": best.why},
    )
    result.mechanism = load(chosen)
    runs = [chosen]
    others = sorted(
        (
            c
            for c in result.candidates
            if c.kind == "learned" and c.status == "evaluated" and c is not best and c.run
        ),
        key=lambda c: (not c.eligible, -(c.score() or 0.0)),
    )
    for c in others:
        left = result.budget_seconds - (time.perf_counter() - start)
        if len(runs) >= REPORT_RUNS or left < REPORT_SECONDS_PER_RUN * (len(runs) + 1):
            break
        runs.append(out / str(c.run))
    from automech.report import write as write_report

    try:
        result.report = write_report(runs, out / "report.html", baseline_samples=result.samples)
    except AutomechError as err:
        result.report_error = str(err)
        show.say(f"report not written: {err}")


def summary_rows(result: DesignResult) -> list[dict[str, Any]]:
    """One row per candidate for a table: name, kind, score and interval, regret, IR,
    infeasibility, steps, seconds, and its status (chosen, eligible, ...)."""
    rows = []
    for c in result.candidates:
        d = c.to_dict()
        if c.chosen:
            status = "chosen"
        elif c.status != "evaluated":
            status = c.status
        elif not c.exact:
            status = "not SP" if c.kind == "classical" else "approx. SP"
        elif not c.eligible:
            status = "IR/infeasible"
        else:
            status = "exact SP"
        rows.append({**d, "status_short": status})
    return rows


__all__ = [
    "design",
    "parse_budget",
    "learned_candidates",
    "fit_steps",
    "Timing",
    "Candidate",
    "DesignResult",
    "summary_rows",
    "EXACT_LEARNED",
    "APPROXIMATE",
    "LEARNED",
]
