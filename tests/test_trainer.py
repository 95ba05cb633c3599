"""The shared training loop: exact resume, keep_best, chunked gradient accumulation, and
the fit context the hooks receive."""

from __future__ import annotations

import pytest
import torch

from automech.experiment import train
from automech.methods import METHODS
from automech.runs import Run
from automech.training import FitContext, schedule
from conftest import cached_setting, interrupt_third_step

TINY = {
    "steps": 4,
    "batch_size": 64,
    "lr_schedule": "constant",
    "temperature_schedule": "constant",
    "validate_every": 1,
    "validation_samples": 256,
    "checkpoint_every": 2,
    "log_every": 1,
    "menu_size": 8,
}


def _fit(tmp_path, name: str, **options):
    mech, run = train(
        cached_setting("1x2-uniform"),
        "rochetnet",
        {**TINY, **options},
        seed=0,
        out=tmp_path / name,
        search=None,
        eval_samples=256,
    )
    return mech, [r for r in run.history() if "val_objective" in r and "step" in r]


def test_interrupted_run_resumes_exactly(tmp_path, monkeypatch):
    whole, _ = _fit(tmp_path, "whole")
    interrupt_third_step(monkeypatch, METHODS["rochetnet"])
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, "cut")
    monkeypatch.undo()
    resumed, _ = _fit(tmp_path, "cut")
    for x, y in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(x, y)


def test_keep_best_returns_the_best_validated_mechanism(tmp_path):
    _, history = _fit(tmp_path, "best", keep_best=True, lr=0.5)
    run = Run(tmp_path / "best")
    selected = [r for r in run.history() if "selected_step" in r][-1]
    best = max(history, key=lambda r: r["val_objective"])
    assert selected["selected_val_objective"] == best["val_objective"]
    assert selected["selected_step"] == best["step"]


def test_chunks_accumulate_the_whole_batch_gradient(tmp_path):
    """chunk_size only changes how the batch is cut: one step with chunks of 16 moves the
    parameters as one step on the whole batch of 64 (up to float summation order)."""
    whole, _ = _fit(tmp_path, "whole", steps=1)
    chunked, _ = _fit(tmp_path, "chunked", steps=1, chunk_size=16)
    for x, y in zip(whole.state_dict().values(), chunked.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


def test_hooks_receive_the_fit_context(tmp_path, monkeypatch):
    seen = []
    meth = METHODS["rochetnet"]
    original = type(meth).loss

    def spy(self, mechanism, values, ctx):
        assert isinstance(ctx, FitContext)
        seen.append((ctx.step, ctx.temperature, ctx.lr, len(values)))
        return original(self, mechanism, values, ctx)

    monkeypatch.setattr(type(meth), "loss", spy)
    _fit(
        tmp_path,
        "spy",
        steps=3,
        temperature=30.0,
        temperature_final=60.0,
        temperature_schedule="linear",
    )
    assert [s[0] for s in seen] == [0, 1, 2]
    assert [s[1] for s in seen] == [schedule("linear", 30.0, 60.0, k, 3) for k in range(3)]
    assert all(s[3] == 64 for s in seen)


def test_rerun_says_it_resumes_and_history_has_no_repeated_rows(tmp_path, monkeypatch):
    lines: list[str] = []
    interrupt_third_step(monkeypatch, METHODS["rochetnet"])
    with pytest.raises(KeyboardInterrupt):
        train(
            cached_setting("1x2-uniform"),
            "rochetnet",
            TINY,
            seed=0,
            out=tmp_path / "r",
            search=None,
            eval_samples=256,
        )
    monkeypatch.undo()
    train(
        cached_setting("1x2-uniform"),
        "rochetnet",
        TINY,
        seed=0,
        out=tmp_path / "r",
        search=None,
        eval_samples=256,
        notify=lines.append,
    )
    assert lines == [f"resuming {tmp_path / 'r'} from its checkpoint at step 2 of 4"]
    steps = [r["step"] for r in Run(tmp_path / "r").history() if "step" in r]
    assert steps == sorted(set(steps)) == [1, 2, 3, 4]
    train(
        cached_setting("1x2-uniform"),
        "rochetnet",
        TINY,
        seed=0,
        out=tmp_path / "r",
        search=None,
        eval_samples=256,
        notify=lines.append,
    )
    assert "finished run: reusing it" in lines[-1]


def test_a_kill_before_the_first_checkpoint_leaves_no_repeated_rows(tmp_path, monkeypatch):
    options = {**TINY, "checkpoint_every": 100}
    interrupt_third_step(monkeypatch, METHODS["rochetnet"])
    with pytest.raises(KeyboardInterrupt):
        train(
            cached_setting("1x2-uniform"),
            "rochetnet",
            options,
            seed=0,
            out=tmp_path / "r",
            search=None,
            eval_samples=256,
        )
    monkeypatch.undo()
    assert not (tmp_path / "r" / "checkpoint.pt").exists()
    train(
        cached_setting("1x2-uniform"),
        "rochetnet",
        options,
        seed=0,
        out=tmp_path / "r",
        search=None,
        eval_samples=256,
    )
    steps = [r["step"] for r in Run(tmp_path / "r").history() if "step" in r]
    assert steps == [1, 2, 3, 4]


def test_checkpoints_come_by_time_as_well_as_by_steps(tmp_path, monkeypatch):
    """checkpoint_seconds: a checkpoint after every step that took longer than it."""
    saved = []
    original = Run.save

    def spy(self, mechanism, training_state=None, method=None):
        saved.append((training_state or {}).get("step"))
        original(self, mechanism, training_state, method)

    monkeypatch.setattr(Run, "save", spy)
    _fit(tmp_path, "timed", checkpoint_every=100, checkpoint_seconds=1e-9)
    assert saved[:3] == [1, 2, 3]  # then the finished run's save
    saved.clear()
    _fit(tmp_path, "steps", checkpoint_every=100)
    assert saved == [None]  # 4 steps in well under a minute: only the end


def test_stopping_rule_stops_a_flat_curve_and_spares_a_rising_one():
    from automech.training.trainer import Stopping

    gen = torch.Generator().manual_seed(0)
    base = torch.rand(4096, generator=gen)
    flat = Stopping(patience=3, min_gain=2.0)
    verdicts = [flat.update(base + 1e-4 * torch.randn(4096, generator=gen)) for _ in range(4)]
    assert verdicts == [False, False, False, True]  # reference, then 3 stale validations
    rising = Stopping(patience=2, min_gain=2.0)
    # +0.01 a validation against per-profile noise 0.05: ~18 paired se, a real gain
    assert not any(
        rising.update(base + 0.01 * k + 0.05 * torch.randn(4096, generator=gen)) for k in range(8)
    )
    assert rising.stale == 0


def test_training_stops_when_validation_is_flat_and_says_how_many_steps(tmp_path):
    options = {**TINY, "steps": 400, "validate_every": 10, "lr": 0.05, "patience": 2}
    options["lr_schedule"] = "constant"
    _, run = train(
        cached_setting("1x2-uniform"),
        "rochetnet",
        {**options, "lr": 1e-9},  # the menu cannot move: every validation is the same
        seed=0,
        out=tmp_path / "flat",
        search=None,
        eval_samples=256,
    )
    training = run.read_json("metrics.json")["training"]
    assert training == {"steps_used": 30, "steps": 400, "stopped_early": True}
    _, run = train(
        cached_setting("1x2-uniform"),
        "rochetnet",
        {**options, "patience": 0},
        seed=0,
        out=tmp_path / "off",
        search=None,
        eval_samples=256,
    )
    assert run.read_json("metrics.json")["training"]["steps_used"] == 400
