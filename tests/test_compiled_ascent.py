"""The compiled inner ascent of RegretNet and ALGNet: the same misreports as the eager
ascent, the ``compile`` policy, and the fallback when compilation fails."""

from __future__ import annotations

import pytest
import torch

from automech.errors import AutomechError
from automech.experiment import train
from automech.mechanisms.learned.regretnet import RegretNetMechanism
from automech.methods import get_method
from automech.methods import regretnet as rn
from automech.methods.regretnet import COMPILE_MIN_STEPS, ascend, compiled_ascent, compiles
from conftest import cached_setting
from test_regretnet import _one_step

TINY = {
    "steps": 3,
    "batch_size": 32,
    "hidden": 8,
    "validate_every": 3,
    "validation_samples": 128,
    "checkpoint_every": 3,
    "log_every": 1,
}


def _first_step(compile: str, run_dir):
    """A fresh RegretNet fit's first training step: run state, metrics, gradients."""
    options = {
        "batch_size": 64,
        "train_profiles": 128,
        "hidden": 16,
        "misreport_steps": 6,
        "misreport_candidates": 4,
        "compile": compile,
    }
    _, ctx, _, metrics, grads = _one_step(
        "regretnet", cached_setting("2x2-uniform"), options, 0, run_dir
    )
    return ctx.state, metrics, grads


def test_compiled_step_is_the_eager_step(monkeypatch, tmp_path):
    """Blocks of 3 unrolled Adam steps chained twice (the bias corrections continue
    across blocks) and the compiled loss give the eager step up to float rounding."""
    monkeypatch.setattr(rn, "UNROLL", 3)
    eager, m_eager, g_eager = _first_step("off", tmp_path / "off")
    fused, m_fused, g_fused = _first_step("on", tmp_path / "on")
    assert fused.compiled
    assert fused.compile_proven == {"restart candidates", "misreport ascent", "loss"}
    assert not eager.compiled
    assert torch.allclose(fused.misreports, eager.misreports, atol=1e-5)
    for key in ("loss", "train_revenue", "train_regret"):
        assert m_fused[key] == pytest.approx(m_eager[key], rel=1e-4, abs=1e-6), key
    for a, b in zip(g_fused, g_eager, strict=True):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-5), float((a - b).abs().max())


def test_compiled_ascent_leaves_the_network_as_it_was():
    s = cached_setting("2x2-uniform")
    mech = RegretNetMechanism(s, hidden=16, init_seed=1)
    before = [p.detach().clone() for p in mech.parameters()]
    gen = torch.Generator().manual_seed(0)
    values, start = torch.rand(64, 2, 2, generator=gen), torch.rand(64, 2, 2, generator=gen)
    out = compiled_ascent(mech, values, start, 5, 0.1)
    assert torch.allclose(out, ascend(mech, values, start, 5, 0.1), atol=1e-5)
    assert all(p.requires_grad for p in mech.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, mech.parameters(), strict=True))


@pytest.mark.parametrize("method", ["regretnet", "algnet"])
def test_auto_compiles_long_runs_only(method):
    options = get_method(method).Options
    assert compiles(options.resolve({"steps": COMPILE_MIN_STEPS}))
    assert not compiles(options.resolve({"steps": COMPILE_MIN_STEPS - 1}))
    assert compiles(options.resolve({"steps": 5, "compile": "on"}))
    assert not compiles(options.resolve({"compile": "off"}))
    with pytest.raises(AutomechError, match="compile"):
        options.resolve({"compile": "yes"})


def _broken() -> object:
    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no C++ compiler found\nsecond line")

    return fail


@pytest.mark.parametrize("method", ["regretnet", "algnet"])
def test_a_failed_compile_falls_back_under_auto_and_is_refused_under_on(
    method, monkeypatch, tmp_path
):
    monkeypatch.setattr(rn, "_compiled_block", _broken)
    lines: list[str] = []
    with pytest.raises(
        AutomechError,
        match=r"compile=on: torch.compile of the misreport ascent failed .*no C\+\+ compiler",
    ):
        train(
            "1x2-uniform",
            method,
            {**TINY, "compile": "on"},
            out=tmp_path / "on",
            eval_samples=128,
            search=None,
        )
    monkeypatch.setattr(rn, "COMPILE_MIN_STEPS", 1)
    fallback, _ = train(
        "1x2-uniform",
        method,
        TINY,
        out=tmp_path / "auto",
        eval_samples=128,
        search=None,
        notify=lines.append,
    )
    eager, _ = train(
        "1x2-uniform",
        method,
        {**TINY, "compile": "off"},
        out=tmp_path / "off",
        eval_samples=128,
        search=None,
    )
    assert [line for line in lines if "running eagerly" in line] == [
        "compile=auto: torch.compile failed (RuntimeError: no C++ compiler found); running eagerly"
    ]
    for a, b in zip(fallback.parameters(), eager.parameters(), strict=True):
        assert torch.equal(a, b)  # the fallback is the eager run
