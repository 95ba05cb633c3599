"""The shared training loop's parameter averaging (option ``average``): it leaves the
live trajectory alone, returns the exponential moving average of the iterates, survives
an interrupted run, and rejects a decay outside [0, 1)."""

from __future__ import annotations

import pytest
import torch
from conftest import cached_setting, interrupt_third_step

from automech.errors import AutomechError
from automech.experiment import train
from automech.methods import METHODS

TINY = {"steps": 3, "batch_size": 64, "lr_schedule": "constant",
        "temperature_schedule": "constant", "validate_every": 1, "validation_samples": 256,
        "checkpoint_every": 2, "log_every": 1}


def _fit(tmp_path, name: str, **options):
    mech, run = train(cached_setting("1x2-uniform"), "rochetnet", {**TINY, **options},
                      seed=0, out=tmp_path / name, search=None, eval_samples=256)
    return mech, [r for r in run.history() if "val_objective" in r and "step" in r]


def test_average_is_the_ema_of_the_live_iterates(tmp_path):
    """With decay a, three steps leave ``a^3 th0 + a^2 (1-a) th1 + a (1-a) th2 + (1-a) th3``,
    the th_k being the plain run's iterates (same seed): the averaging changes what is
    validated and returned, never the steps."""
    a = 0.6
    iterates = [_fit(tmp_path, f"plain{k}", steps=k)[0].state_dict() for k in (1, 2, 3)]
    start = METHODS["rochetnet"]
    torch.manual_seed(0)
    th0 = start.build(cached_setting("1x2-uniform"), {**start.defaults, **TINY}, 0).state_dict()
    averaged, history = _fit(tmp_path, "avg", average=a)
    weights = [a ** 3, a ** 2 * (1 - a), a * (1 - a), 1 - a]
    for key, value in averaged.state_dict().items():
        if value.is_floating_point():
            expect = sum(w * s[key] for w, s in zip(weights, [th0, *iterates]))
            torch.testing.assert_close(value, expect)
    _, plain = _fit(tmp_path, "plain-again")
    assert [r["val_objective_live"] for r in history] == [r["val_objective"] for r in plain]


def test_interrupted_averaged_run_resumes_exactly(tmp_path, monkeypatch):
    whole, _ = _fit(tmp_path, "whole", steps=4, average=0.5)
    meth = METHODS["rochetnet"]
    interrupt_third_step(monkeypatch, meth)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, "cut", steps=4, average=0.5)
    monkeypatch.undo()
    resumed, _ = _fit(tmp_path, "cut", steps=4, average=0.5)
    for x, y in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(x, y)


@pytest.mark.parametrize("decay", [1.0, -0.1])
def test_average_outside_unit_interval_is_refused(tmp_path, decay):
    with pytest.raises(AutomechError, match="average"):
        _fit(tmp_path, "bad", average=decay)
