"""The training loop shared by every method that learns a mechanism by gradient descent.

A :class:`GradientMethod` supplies two things: ``build`` (a fresh, trainable mechanism)
and ``loss`` (what to minimise on a batch, by default minus the setting's objective under
the mechanism's softmax relaxation).  The loop is the same for all of them:

* fresh profiles from the prior every step (a NumPy generator seeded by the run seed);
* Adam, with the learning rate and the softmax temperature following schedules
  (:func:`schedule`) that are pure functions of the step, so resuming is exact;
* optional gradient accumulation over chunks of the batch, which keeps the
  (profiles x menu) temporaries small (see ``shared/reference/performance.md``);
* validation of the exact (argmax) mechanism on a held-out set every ``validate_every``
  steps, a Rich progress bar showing it, ``history.jsonl`` in the run directory;
* a checkpoint (model, optimiser, generator state) every ``checkpoint_every`` steps; a
  rerun with the same run directory resumes from it, and a finished run is not retrained;
* with ``keep_best``, the mechanism returned is the one with the best validation
  objective seen, the starting one included (early stopping on held-out profiles), not
  the last one; the step it was taken from is logged as ``selected_step``;
* with ``average`` = a in (0, 1), the mechanism validated, kept and returned is the
  exponential moving average of the iterates, ``bar theta <- a bar theta + (1 - a) theta``
  after every step (Polyak-Ruppert averaging, Polyak & Juditsky 1992, in its
  exponentially weighted form), while the steps themselves follow the live parameters:
  where the gradient estimate is mostly noise, the average keeps the drift and cancels
  much of the random walk around it (the live parameters' validation is logged as
  ``val_objective_live``).
"""

from __future__ import annotations

import json
import math
import time
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from automech.device import default_device
from automech.errors import AutomechError
from automech.mechanisms.base import Mechanism
from automech.methods.base import Method
from automech.problems.setting import Setting
from automech.runs import HISTORY, Run

SCHEDULES = ("constant", "cosine", "exponential", "linear")


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


def _float_state(mechanism: Mechanism, copy: bool = True) -> dict[str, torch.Tensor]:
    """The floating-point entries of ``mechanism``'s state dict (what ``average`` averages),
    copied unless ``copy=False``."""
    return {k: v.detach().clone() if copy else v.detach()
            for k, v in mechanism.state_dict().items() if v.is_floating_point()}


def _snapshot(mechanism: Mechanism, record: dict[str, Any]) -> dict[str, Any]:
    """What ``keep_best`` keeps of a validated mechanism: its step, validation objective
    and a copy of its parameters."""
    return {"step": record["step"], "val_objective": record["val_objective"],
            "state_dict": {k: v.detach().clone() for k, v in mechanism.state_dict().items()}}


class GradientMethod(Method):
    """A method trained by the shared loop; subclasses implement ``build`` (and may
    override ``loss``) and extend :attr:`defaults`."""

    defaults: ClassVar[dict[str, Any]] = {
        "steps": 2000,            # optimiser steps
        "batch_size": 4096,       # fresh prior profiles per step
        "chunk_size": 0,          # profiles per forward/backward (0: the whole batch)
        "lr": 1e-3,               # Adam step size at step 0
        "lr_final": 1e-4,         # ... and at the last step
        "lr_schedule": "cosine",  # one of SCHEDULES
        "temperature": 100.0,     # softmax inverse temperature at step 0
        "temperature_final": 100.0,
        "temperature_schedule": "exponential",
        "validate_every": 200,    # steps between validations of the exact mechanism
        "validation_samples": 16384,
        "checkpoint_every": 500,  # steps between checkpoints
        "log_every": 10,          # steps between history lines
        "keep_best": False,       # return the best validated mechanism, not the last
        "average": 0.0,           # EMA decay of the iterates validated and returned (0: off)
    }

    @abstractmethod
    def build(self, setting: Setting, options: dict[str, Any], seed: int) -> Mechanism:
        """A fresh trainable mechanism; it must implement ``relaxed(bids, temperature)``."""

    def loss(self, mechanism: Mechanism, values: torch.Tensor, options: dict[str, Any],
             temperature: float, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Minus the objective of the relaxed mechanism, averaged over ``values``."""
        alloc, pay = mechanism.relaxed(values, temperature)
        objective = mechanism.setting.objective.value(values, alloc, pay).mean()
        return -objective, {"train_objective": float(objective.detach())}

    # ---------------------------------------------------------------- the loop

    def fit(self, setting: Setting, options: dict[str, Any], seed: int, run: Run,
            progress: bool = False) -> Mechanism:
        for key in ("lr_schedule", "temperature_schedule"):
            if options[key] not in SCHEDULES:
                raise AutomechError(f"option {key!r} must be one of {SCHEDULES}, "
                                    f"got {options[key]!r}")
        if not 0.0 <= options["average"] < 1.0:
            raise AutomechError(f"option 'average' (an EMA decay) must be in [0, 1), "
                                f"got {options['average']}")
        device = default_device()
        mechanism = self.build(setting, options, seed).to(device)
        optimizer = torch.optim.Adam(mechanism.parameters(), lr=options["lr"])
        rng = np.random.default_rng([seed, 0])
        self._best: dict[str, Any] | None = None
        self._average: dict[str, torch.Tensor] | None = None
        start_step = self._resume(run, mechanism, optimizer, rng)
        if start_step is None:
            return mechanism.eval()
        if start_step == 0:
            self.initialise(mechanism, setting, options, seed, run, progress)
        decay = options["average"]
        if decay and self._average is None:
            self._average = _float_state(mechanism)
        validation = torch.as_tensor(setting.sample(options["validation_samples"],
                                                    np.random.default_rng([seed, 1])),
                                     dtype=mechanism.dtype, device=device)
        if options["keep_best"] and start_step == 0:   # the start is a candidate too
            record = {"step": 0, **self.validate(mechanism, validation)}
            run.log(record)
            self._best = _snapshot(mechanism, record)
        steps, started = options["steps"], time.perf_counter()
        columns = (TextColumn("[bold]{task.description}"), BarColumn(),
                   TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                   TimeRemainingColumn(), TextColumn("{task.fields[status]}"))
        with Progress(*columns, disable=not progress, transient=False) as bar:
            task = bar.add_task(f"{self.name} on {setting.name}", total=steps,
                                completed=start_step, status="")
            for step in range(start_step, steps):
                lr = schedule(options["lr_schedule"], options["lr"], options["lr_final"],
                              step, steps)
                temperature = schedule(options["temperature_schedule"], options["temperature"],
                                       options["temperature_final"], step, steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                mechanism.train()
                values = self.sample(mechanism, setting, options, rng, step)
                metrics = self._step(mechanism, optimizer, values, options, temperature, step)
                if decay:
                    with torch.no_grad():
                        for key, value in _float_state(mechanism, copy=False).items():
                            self._average[key].lerp_(value, 1.0 - decay)
                record = {"step": step + 1, "lr": lr, "temperature": temperature, **metrics}
                last = step + 1 == steps
                if (step + 1) % options["validate_every"] == 0 or last:
                    if decay:
                        live = self.validate(mechanism, validation)["val_objective"]
                        record["val_objective_live"] = live
                        live_state = _float_state(mechanism)
                        mechanism.load_state_dict(self._average, strict=False)
                    record.update(self.validate(mechanism, validation))
                    bar.update(task, status=f"val {setting.objective.name} "
                               f"{record['val_objective']:.4f}")
                    if options["keep_best"] and (self._best is None or record["val_objective"]
                                                 > self._best["val_objective"]):
                        self._best = _snapshot(mechanism, record)
                    if decay and not last:
                        mechanism.load_state_dict(live_state, strict=False)
                if (step + 1) % options["log_every"] == 0 or "val_objective" in record:
                    record["seconds"] = time.perf_counter() - started
                    run.log(record)
                if (step + 1) % options["checkpoint_every"] == 0 and not last:
                    self._checkpoint(run, mechanism, optimizer, rng, step + 1)
                bar.advance(task)
        if self._best is not None:
            mechanism.load_state_dict(self._best["state_dict"])
            run.log({"selected_step": self._best["step"],
                     "selected_val_objective": self._best["val_objective"]})
        return mechanism.eval()

    def _step(self, mechanism, optimizer, values, options, temperature, step) -> dict[str, float]:
        optimizer.zero_grad(set_to_none=True)
        chunk = options["chunk_size"] or len(values)
        totals: dict[str, float] = {}
        for s in range(0, len(values), chunk):
            part = values[s:s + chunk]
            weight = len(part) / len(values)
            loss, metrics = self.loss(mechanism, part, options, temperature, step)
            (loss * weight).backward()
            for k, v in {"loss": float(loss.detach()), **metrics}.items():
                totals[k] = totals.get(k, 0.0) + weight * v
        optimizer.step()
        self.after_step(mechanism, options)
        return totals

    def initialise(self, mechanism: Mechanism, setting: Setting, options: dict[str, Any],
                   seed: int, run: Run, progress: bool = False) -> None:
        """Hook run once before the first step of a fresh run (not on resume), e.g. to
        start from another design; by default nothing."""

    def after_step(self, mechanism: Mechanism, options: dict[str, Any]) -> None:
        """Hook run after each optimiser step (e.g. a projection of parameters)."""

    def sample(self, mechanism: Mechanism, setting: Setting, options: dict[str, Any],
               rng: np.random.Generator, step: int) -> torch.Tensor:
        """The training profiles of ``step``: by default ``batch_size`` fresh draws from the
        prior with the run's generator ``rng`` (a method may cycle a fixed training set)."""
        return torch.as_tensor(setting.sample(options["batch_size"], rng),
                               dtype=mechanism.dtype, device=mechanism.device)

    def training_state(self, mechanism: Mechanism) -> dict[str, Any] | None:
        """Extra state a method keeps outside the mechanism's parameters (misreport caches,
        Lagrange multipliers, an adversary network...), saved in checkpoints."""
        return None

    def load_training_state(self, mechanism: Mechanism, state: dict[str, Any]) -> None:
        """Restore what :meth:`training_state` saved (on resume)."""

    @staticmethod
    def validate(mechanism: Mechanism, values: torch.Tensor) -> dict[str, float]:
        """Objective and revenue of the exact mechanism on the validation profiles."""
        mechanism.eval()
        with torch.no_grad():
            alloc, pay = mechanism(values)
            objective = mechanism.setting.objective.value(values, alloc, pay).mean()
        return {"val_objective": float(objective), "val_revenue": float(pay.sum(-1).mean())}

    # ---------------------------------------------------------------- checkpoints

    def _checkpoint(self, run, mechanism, optimizer, rng, step) -> None:
        run.save(mechanism, training_state={
            "method": self.name, "step": step, "finished": False,
            "optimizer": optimizer.state_dict(), "rng": rng.bit_generator.state,
            "extra": self.training_state(mechanism), "best": self._best,
            "average": self._average,
        })

    def _resume(self, run, mechanism, optimizer, rng) -> int | None:
        """Restore from ``run``'s checkpoint: the step to continue from, None if finished."""
        if not (run.path / "checkpoint.pt").exists():
            return 0
        payload = run.checkpoint()
        state = payload.get("training_state") or {}
        if payload.get("mechanism") != mechanism.name:
            raise AutomechError(f"checkpoint in {run.path} holds a {payload.get('mechanism')!r} "
                                f"mechanism, not {mechanism.name!r}")
        mechanism.load_state_dict(payload["state_dict"])
        if state.get("finished"):
            return None
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        if state.get("extra") is not None:
            self.load_training_state(mechanism, state["extra"])
        self._best = state.get("best")
        self._average = state.get("average")
        step = int(state["step"])
        kept = [r for r in run.history() if r.get("step", 0) <= step]
        (run.path / HISTORY).write_text("".join(json.dumps(r) + "\n" for r in kept))
        return step
