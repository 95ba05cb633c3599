"""One run end to end: resolve options, fit, save, evaluate, write the run directory; and
:func:`load` / :func:`save` of a mechanism."""

from __future__ import annotations

import random
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from automech._version import __version__
from automech.errors import AutomechError, NotApplicableError
from automech.evaluation import (
    TEST_PROFILES,
    Evaluation,
    Ladder,
    RegretSearch,
    check_samples,
    evaluate,
)
from automech.evaluation.baselines import best_classical, comparison
from automech.mechanisms.base import Design
from automech.methods import get_method, mechanism_class
from automech.problems import get_setting
from automech.runs import CONFIG, METRICS, Run, open_run, rebuild
from automech.training import FitContext, Method, Options


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so the same seed gives the same numbers."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``["lr=0.01", "allocations=64"]`` -> ``{"lr": 0.01, "allocations": 64}``.

    Values are read as TOML values (numbers, booleans, quoted strings, lists); anything
    that is not valid TOML is kept as a bare string.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise AutomechError(f"option {pair!r} must look like key=value")
        key, raw = (s.strip() for s in pair.split("=", 1))
        try:
            out[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = raw
    return out


def options_from_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise AutomechError(f"options file {str(path)!r} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise AutomechError(f"options file {str(path)!r} is not valid TOML: {err}") from None


def resolve_options(method: Method, setting: Any, given: Mapping[str, Any] | None) -> Options:
    """``method``'s options: defaults overridden by ``given`` (unknown keys, wrong types and
    values out of range refused), then its setting-dependent choices made."""
    return method.resolve(setting, method.Options.resolve(given or {}))


def train(
    setting: Any,
    method: str,
    options: Mapping[str, Any] | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    eval_samples: int = TEST_PROFILES,
    search: RegretSearch | None = RegretSearch(),
    progress: bool = False,
    notify: Callable[[str], None] | None = None,
    baseline: bool = False,
    ladder: Ladder | bool | None = True,
) -> tuple[Design, Run]:
    """Fit ``method`` on ``setting``, save it and its evaluation into a run directory.

    Parameters
    ----------
    setting
        A :class:`~automech.problems.Setting`, or a name or TOML path for
        :func:`~automech.problems.get_setting`.
    method
        A registered method name (``automech methods`` lists them).
    options
        The method's options (``automech methods NAME``); unknown keys, wrong types and
        values out of range raise :class:`~automech.errors.OptionError`.
    seed
        Seed of everything random in the run: the same seed gives the same numbers.
    out
        Run directory (default ``runs/SETTING-METHOD-seedSEED``).  Rerunning with the
        same ``out`` resumes from the checkpoint (the config must match).
    eval_samples, search
        Test profiles and misreport search of the final evaluation
        (:func:`automech.evaluation.evaluate`); ``search=None`` skips regret.
    ladder
        Regret of the final evaluation from the budget ladder started at ``search``
        (:func:`automech.evaluation.ladder.converged_regret`: the search rerun with its
        budget doubled until mean regret moves by less than 5 % and two standard errors;
        True, the default, for :class:`~automech.evaluation.Ladder`'s defaults), or from
        the fixed budget ``search`` alone (None or False).  Static settings only.
    progress, notify
        Show progress bars; where to send lines for the user (a resumed or reused run).
    baseline
        Also score the best strategyproof classical mechanism on the same test profiles
        (:func:`automech.evaluation.baselines.best_classical`) and record it in
        ``metrics.json`` with ``below_baseline`` (the CLI does this by default).

    Returns
    -------
    (mechanism, run)
        The fitted mechanism and its :class:`~automech.runs.Run` directory, which holds
        ``config.json``, ``checkpoint.pt``, ``history.jsonl`` and ``metrics.json``.
    """
    if isinstance(setting, (str, Path)):
        setting = get_setting(setting)
    check_samples(eval_samples, "eval_samples")  # up front, not after training
    meth = get_method(method)
    problem = meth.refusal(setting)
    if problem:
        raise NotApplicableError(
            f"method {method!r} does not apply to {setting.name or 'this setting'}: {problem}"
        )
    opts = resolve_options(meth, setting, options)
    problem = meth.conflict(setting, opts)
    if problem:
        raise NotApplicableError(f"method {method!r} with these options: {problem}")
    out = Path(out) if out else Path("runs") / f"{setting.name or 'setting'}-{method}-seed{seed}"
    config = {
        "automech": __version__,
        "setting": setting.to_dict(),
        "method": method,
        "options": opts.to_dict(),
        "seed": seed,
    }
    run = open_run(out, config)
    seed_everything(seed)

    def nested(name: str, given: dict[str, Any], path: Any) -> Design:
        return train(
            setting,
            name,
            given,
            seed=seed,
            out=path,
            search=None,
            eval_samples=eval_samples,
            progress=progress,
            notify=notify,
        )[0]

    ctx = FitContext(
        setting=setting,
        options=opts,
        seed=seed,
        run=run,
        progress=progress,
        nested=nested,
        notify=notify,
    )
    mechanism = meth.fit(ctx)
    run.save(mechanism, training_state={"finished": True}, method=method)
    report = evaluate(
        mechanism,
        setting,
        samples=eval_samples,
        search=search,
        progress=progress,
        ladder=ladder,
    )
    metrics = report.to_dict()
    used = [r for r in run.history() if "steps_used" in r]
    if used:  # what the stopping rule left of the planned steps
        metrics["training"] = {
            "steps_used": used[-1]["steps_used"],
            "steps": getattr(opts, "steps", None),
            "stopped_early": used[-1]["stopped_early"],
        }
    if baseline and isinstance(report, Evaluation):
        found = best_classical(setting, samples=eval_samples, seed=report.seed)
        if found is not None:
            metrics.update(comparison(report, found))
    run.write_json(METRICS, metrics)
    return mechanism, run


def save(mechanism: Design, run_dir: str | Path) -> Run:
    """Save ``mechanism`` to ``run_dir`` so that :func:`load` can rebuild it."""
    run = Run(run_dir)
    run.save(mechanism)
    if not (run.path / CONFIG).exists():
        run.write_json(
            CONFIG,
            {
                "setting": mechanism.setting.to_dict(),
                "mechanism": mechanism.name,
                "config": mechanism.config(),
            },
        )
    return run


def load(run_dir: str | Path) -> Design:
    """The mechanism saved in ``run_dir``, rebuilt from ``checkpoint.pt`` alone.

    The checkpoint names the mechanism (and the method that fitted it); the class comes
    from the method registry (:func:`automech.methods.mechanism_class`).

    Raises
    ------
    RunError
        when the directory or checkpoint is missing, unreadable, foreign or does not
        rebuild the mechanism it names.
    """
    return rebuild(run_dir, mechanism_class)
