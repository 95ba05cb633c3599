"""The training loop shared by every method that learns a mechanism by gradient descent.

A :class:`GradientMethod` supplies ``build`` (a fresh, trainable mechanism) and may
override ``loss`` (by default minus the setting's objective under the mechanism's softmax
relaxation) and the other hooks; each hook receives the run's :class:`FitContext`.  The
loop is the same for all of them:

* fresh profiles from the prior every step (``ctx.rng``, a NumPy generator seeded by the
  run seed), or rows of a pool the method keeps (``sample`` returns their indices);
* Adam, with the learning rate and (methods with :class:`SoftmaxOptions`) the softmax
  temperature following schedules (:func:`schedule`) that are pure functions of the step,
  so resuming is exact;
* optional gradient accumulation over chunks of the batch (``chunk_size``), which keeps
  the (profiles x menu) temporaries small; the chunk's pool indices go to ``ctx.indices``;
* validation of the exact (argmax) mechanism on a held-out set every ``validate_every``
  steps, a Rich progress bar showing it, ``history.jsonl`` in the run directory;
* a checkpoint (model, optimiser, generator, the method's run state) every
  ``checkpoint_every`` steps and at least every ``checkpoint_seconds`` of training; a rerun
  with the same run directory resumes from it (and says so), and a finished run is not
  retrained;
* with ``keep_best``, the mechanism returned is the one with the best validation
  objective seen, the starting one included, not the last one; the step it was taken
  from is logged as ``selected_step``;
* a stopping rule on the validation curve (:class:`Stopping`): with ``patience`` k > 0,
  training stops after k validations in a row without a significant gain over the
  reference (the last validation that gained), a gain being significant when the paired
  mean difference of the per-profile objective on the validation profiles exceeds
  ``min_gain`` standard errors of that difference.  The steps used are logged
  (``steps_used``) and reach ``metrics.json``.
"""

from __future__ import annotations

import json
import math
import time
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from automech.device import default_device
from automech.errors import AutomechError
from automech.mechanisms.base import Mechanism
from automech.runs import HISTORY
from automech.training.method import FitContext, Method
from automech.training.options import Options, option

SCHEDULES = ("constant", "cosine", "exponential", "linear")
Schedule = Literal["constant", "cosine", "exponential", "linear"]


def schedule(kind: str, start: float, end: float, step: int, total: int) -> float:
    """Value at ``step`` of a schedule going from ``start`` (step 0) to ``end`` (last step).

    ``constant`` stays at ``start``; ``linear`` and ``cosine`` interpolate; ``exponential``
    interpolates geometrically (``start * (end / start) ** frac``).
    """
    frac = min(1.0, step / max(1, total - 1))
    if kind == "constant":
        return start
    if kind == "linear":
        return start + (end - start) * frac
    if kind == "cosine":
        return end + 0.5 * (start - end) * (1 + math.cos(math.pi * frac))
    if kind == "exponential":
        return start * (end / start) ** frac
    raise AutomechError(f"unknown schedule {kind!r}; known: {', '.join(SCHEDULES)}")


@dataclass(frozen=True)
class TrainerOptions(Options):
    """The options of the shared loop, which every gradient method has."""

    steps: int = option(2000, "optimiser steps", low=1)
    batch_size: int = option(4096, "training profiles per step", low=1)
    chunk_size: int = option(0, "profiles per forward/backward (0: the whole batch)", low=0)
    lr: float = option(1e-3, "Adam step size at step 0", low=0, low_open=True)
    lr_final: float = option(1e-4, "Adam step size at the last step", low=0, low_open=True)
    lr_schedule: Schedule = option("cosine", "learning-rate schedule from lr to lr_final")
    validate_every: int = option(200, "steps between validations of the exact mechanism", low=1)
    validation_samples: int = option(16384, "held-out profiles of each validation", low=1)
    checkpoint_every: int = option(500, "steps between checkpoints", low=1)
    checkpoint_seconds: float = option(
        60.0, "seconds of training between checkpoints, whatever the steps", low=0, low_open=True
    )
    log_every: int = option(10, "steps between history lines", low=1)
    keep_best: bool = option(False, "return the best validated mechanism, not the last")
    patience: int = option(
        3,
        "validations in a row without a significant gain before training stops (0: never)",
        low=0,
    )
    min_gain: float = option(
        2.0, "a gain is significant above this many standard errors (paired, validation)", low=0
    )


@dataclass(frozen=True)
class SoftmaxOptions(Options):
    """The inverse-temperature schedule of methods trained on a softmax relaxation."""

    temperature: float = option(
        100.0, "softmax inverse temperature at step 0", low=0, low_open=True
    )
    temperature_final: float = option(100.0, "... and at the last step", low=0, low_open=True)
    temperature_schedule: Schedule = option("exponential", "temperature schedule")


class Stopping:
    """The stopping rule on the validation curve (see the module docstring).

    The reference is the per-profile validation objective ``r`` (V,) of the last
    validation that gained; a new one ``o`` gains when ``mean(o - r) > min_gain *
    std(o - r) / sqrt(V)``.  Pairing on the same validation profiles removes the
    profiles' own spread from the comparison, so a flat curve is told apart from a
    slowly rising one at a fraction of the unpaired standard error."""

    def __init__(self, patience: int, min_gain: float) -> None:
        self.patience, self.min_gain = patience, min_gain
        self.reference: torch.Tensor | None = None
        self.stale = 0

    def update(self, objective: torch.Tensor) -> bool:
        """Record a validation's per-profile objective; True when training should stop."""
        objective = objective.detach().double().cpu()
        if self.reference is None:
            self.reference, self.stale = objective, 0
            return False
        diff = objective - self.reference
        se = float(diff.std() / math.sqrt(len(diff))) if len(diff) > 1 else 0.0
        if float(diff.mean()) > self.min_gain * se and float(diff.mean()) > 0:
            self.reference, self.stale = objective, 0
        else:
            self.stale += 1
        return self.stale >= self.patience

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "stale": self.stale}

    def load(self, saved: dict[str, Any] | None) -> None:
        if saved:
            self.reference, self.stale = saved["reference"], int(saved["stale"])


def _snapshot(mechanism: Mechanism, record: dict[str, Any]) -> dict[str, Any]:
    """What ``keep_best`` keeps of a validated mechanism: its step, validation objective
    and a copy of its parameters."""
    return {
        "step": record["step"],
        "val_objective": record["val_objective"],
        "state_dict": {k: v.detach().clone() for k, v in mechanism.state_dict().items()},
    }


class GradientMethod(Method):
    """A method trained by the shared loop; subclasses implement ``build`` and declare
    ``Options`` deriving from :class:`TrainerOptions` (and :class:`SoftmaxOptions` when
    they train a softmax relaxation)."""

    Options: ClassVar[type[Options]] = TrainerOptions

    @abstractmethod
    def build(self, ctx: FitContext) -> Mechanism:
        """A fresh trainable mechanism for ``ctx.setting``."""

    def loss(
        self, mechanism: Mechanism, values: torch.Tensor, ctx: FitContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Minus the objective of the relaxed mechanism at ``ctx.temperature``, averaged
        over ``values``; the mechanism must implement ``relaxed(bids, temperature)``."""
        alloc, pay = mechanism.relaxed(values, ctx.temperature)  # type: ignore[operator]
        objective = ctx.setting.objective.value(values, alloc, pay).mean()
        return -objective, {"train_objective": float(objective.detach())}

    # ---------------------------------------------------------------- hooks

    def start(self, mechanism: Mechanism, ctx: FitContext) -> Any:
        """The method's run state (``ctx.state``), built for every run, fresh or resumed
        (a resumed run then loads :meth:`training_state`'s output into it); None here."""
        return None

    def initialise(self, mechanism: Mechanism, ctx: FitContext) -> None:
        """Hook run once before the first step of a fresh run (not on resume), e.g. to
        start from another design; by default nothing."""

    def sample(
        self, mechanism: Mechanism, ctx: FitContext
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The training profiles of step ``ctx.step`` and their rows in the method's
        pool (None: fresh draws).  By default ``batch_size`` fresh prior draws from
        ``ctx.rng``."""
        values = ctx.setting.sample(ctx.options.batch_size, ctx.rng)
        return torch.as_tensor(values, dtype=mechanism.dtype, device=mechanism.device), None

    def step(
        self,
        mechanism: Mechanism,
        optimizer: torch.optim.Optimizer,
        values: torch.Tensor,
        indices: torch.Tensor | None,
        ctx: FitContext,
    ) -> dict[str, float]:
        """One optimiser step on ``values``: gradients accumulated over chunks of
        ``chunk_size`` profiles (each chunk's pool rows in ``ctx.indices``), weighted by
        the chunk's share of the batch, then :meth:`after_step`."""
        optimizer.zero_grad(set_to_none=True)
        chunk = ctx.options.chunk_size or len(values)
        totals: dict[str, float] = {}
        for s in range(0, len(values), chunk):
            part = values[s : s + chunk]
            ctx.indices = None if indices is None else indices[s : s + chunk]
            weight = len(part) / len(values)
            loss, metrics = self.loss(mechanism, part, ctx)
            (loss * weight).backward()
            for k, v in {"loss": float(loss.detach()), **metrics}.items():
                totals[k] = totals.get(k, 0.0) + weight * v
        ctx.indices = indices
        optimizer.step()
        self.after_step(mechanism, ctx)
        return totals

    def after_step(self, mechanism: Mechanism, ctx: FitContext) -> None:
        """Hook run after each optimiser step (e.g. a projection of parameters)."""

    def training_state(self, ctx: FitContext) -> dict[str, Any] | None:
        """What of ``ctx.state`` checkpoints keep (misreport caches, multipliers, an
        adversary network...); None here."""
        return None

    def load_training_state(self, ctx: FitContext, saved: dict[str, Any]) -> None:
        """Restore what :meth:`training_state` saved into ``ctx.state`` (on resume)."""

    def validate(self, mechanism: Mechanism, values: torch.Tensor) -> dict[str, float]:
        """Objective and revenue of the exact mechanism on the validation profiles."""
        mechanism.eval()
        with torch.no_grad():
            alloc, pay = mechanism(values)
            objective = mechanism.setting.objective.value(values, alloc, pay).mean()
        return {"val_objective": float(objective), "val_revenue": float(pay.sum(-1).mean())}

    def validation_objective(self, mechanism: Mechanism, values: torch.Tensor) -> torch.Tensor:
        """The exact mechanism's objective at each validation profile (V,): what the
        stopping rule compares between validations."""
        mechanism.eval()
        with torch.no_grad():
            alloc, pay = mechanism(values)
            return mechanism.setting.objective.value(values, alloc, pay)

    # ---------------------------------------------------------------- the loop

    def fit(self, ctx: FitContext) -> Mechanism:
        options, setting, run = ctx.options, ctx.setting, ctx.run
        device = default_device()
        mechanism = self.build(ctx).to(device)
        optimizer = torch.optim.Adam(mechanism.parameters(), lr=options.lr)
        ctx.rng = np.random.default_rng([ctx.seed, 0])
        ctx.state = self.start(mechanism, ctx)
        stopping = Stopping(options.patience, options.min_gain) if options.patience else None
        ctx.stopping = stopping
        start_step = self._resume(ctx, mechanism, optimizer)
        if start_step is None:
            return mechanism.eval()
        if start_step == 0:
            self.initialise(mechanism, ctx)
        validation = torch.as_tensor(
            setting.sample(options.validation_samples, np.random.default_rng([ctx.seed, 1])),
            dtype=mechanism.dtype,
            device=device,
        )
        if options.keep_best and start_step == 0:  # the start is a candidate too
            record = {"step": 0, **self.validate(mechanism, validation)}
            run.log(record)
            ctx.best = _snapshot(mechanism, record)
        steps, started = options.steps, time.perf_counter()
        used = steps  # the steps the run ends at (fewer when the stopping rule stops it)
        saved_at = started
        softmax = isinstance(options, SoftmaxOptions)
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
        )
        with Progress(*columns, disable=not ctx.progress, transient=False) as bar:
            task = bar.add_task(
                f"{self.name} on {setting.name}", total=steps, completed=start_step, status=""
            )
            for step in range(start_step, steps):
                ctx.step = step
                ctx.lr = schedule(options.lr_schedule, options.lr, options.lr_final, step, steps)
                if softmax:
                    ctx.temperature = schedule(
                        options.temperature_schedule,
                        options.temperature,
                        options.temperature_final,
                        step,
                        steps,
                    )
                for group in optimizer.param_groups:
                    group["lr"] = ctx.lr
                mechanism.train()
                values, indices = self.sample(mechanism, ctx)
                metrics = self.step(mechanism, optimizer, values, indices, ctx)
                record = {
                    "step": step + 1,
                    "lr": ctx.lr,
                    **({"temperature": ctx.temperature} if softmax else {}),
                    **metrics,
                }
                last = step + 1 == steps
                if (step + 1) % options.validate_every == 0 or last:
                    record.update(self.validate(mechanism, validation))
                    bar.update(
                        task, status=f"val {setting.objective.name} {record['val_objective']:.4f}"
                    )
                    if options.keep_best and (
                        ctx.best is None or record["val_objective"] > ctx.best["val_objective"]
                    ):
                        ctx.best = _snapshot(mechanism, record)
                    if stopping is not None and not last:
                        done = stopping.update(self.validation_objective(mechanism, validation))
                        record["val_stale"] = stopping.stale
                        if done:
                            used, last = step + 1, True
                if last:  # the final record says how many of the planned steps ran
                    record.update(steps_used=used, stopped_early=used < steps)
                if (step + 1) % options.log_every == 0 or "val_objective" in record:
                    record["seconds"] = time.perf_counter() - started
                    run.log(record)
                due = (step + 1) % options.checkpoint_every == 0 or (
                    time.perf_counter() - saved_at >= options.checkpoint_seconds
                )
                if due and not last:
                    self._checkpoint(ctx, mechanism, optimizer, step + 1)
                    saved_at = time.perf_counter()
                bar.advance(task)
                if last:
                    break
        if ctx.best is not None:
            mechanism.load_state_dict(ctx.best["state_dict"])
            run.log(
                {
                    "selected_step": ctx.best["step"],
                    "selected_val_objective": ctx.best["val_objective"],
                }
            )
        return mechanism.eval()

    # ---------------------------------------------------------------- checkpoints

    def _checkpoint(
        self, ctx: FitContext, mechanism: Mechanism, optimizer: torch.optim.Optimizer, step: int
    ) -> None:
        ctx.run.save(
            mechanism,
            training_state={
                "method": self.name,
                "step": step,
                "finished": False,
                "optimizer": optimizer.state_dict(),
                "rng": ctx.rng.bit_generator.state,
                "extra": self.training_state(ctx),
                "best": ctx.best,
                "stopping": None if ctx.stopping is None else ctx.stopping.to_dict(),
            },
        )

    def _resume(
        self, ctx: FitContext, mechanism: Mechanism, optimizer: torch.optim.Optimizer
    ) -> int | None:
        """Restore from the run's checkpoint: the step to continue from, None if finished.
        The history is cut to the step resumed from (emptied when there is no checkpoint,
        e.g. after a kill before the first one), so a rerun never repeats rows."""
        run = ctx.run
        if not (run.path / "checkpoint.pt").exists():
            (run.path / HISTORY).unlink(missing_ok=True)
            return 0
        payload = run.checkpoint()
        state = payload.get("training_state") or {}
        if payload.get("mechanism") != mechanism.name:
            raise AutomechError(
                f"checkpoint in {run.path} holds a {payload.get('mechanism')!r} "
                f"mechanism, not {mechanism.name!r}"
            )
        mechanism.load_state_dict(payload["state_dict"])
        if state.get("finished"):
            ctx.say(
                f"{run.path} holds a finished run: reusing it (choose another --out, or "
                "delete the directory, to train again)"
            )
            return None
        optimizer.load_state_dict(state["optimizer"])
        ctx.rng.bit_generator.state = state["rng"]
        if state.get("extra") is not None:
            self.load_training_state(ctx, state["extra"])
        ctx.best = state.get("best")
        if ctx.stopping is not None:
            ctx.stopping.load(state.get("stopping"))
        step = int(state["step"])
        ctx.say(f"resuming {run.path} from its checkpoint at step {step} of {ctx.options.steps}")
        kept = [r for r in run.history() if r.get("step", 0) <= step]
        (run.path / HISTORY).write_text("".join(json.dumps(r) + "\n" for r in kept))
        return step
