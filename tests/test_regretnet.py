"""RegretNet, ALGNet and MyersonNet: feasibility and IR by construction, exact DSIC of
MyersonNet, the regret evaluator finds the regret of untrained networks and of first
price, a short training run lowers regret, a chunked step is the whole batch's step,
save/load and resume keep everything."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import automech
from automech import RegretSearch, evaluate
from automech.errors import OptionError
from automech.experiment import train
from automech.mechanisms import FirstPrice
from automech.mechanisms.learned.myersonnet import MyersonNetMechanism
from automech.mechanisms.learned.regretnet import (
    ALGNetMechanism,
    RegretNetMechanism,
    misreport_utilities,
    substitute,
)
from automech.methods import get_method, mechanism_class
from automech.methods.algnet import ALGNetOptions, load_misreporter, misreporter_regret
from automech.methods.regretnet import RegretNetOptions, ascend, attacker_regret
from automech.runs import Run
from automech.training import FitContext
from conftest import cached_setting, interrupt_third_step

SMALL = RegretSearch(profiles=100, random=64, scales=16, grid=8, ascent_starts=4, ascent_steps=30)
TINY_REGRETNET = {
    "steps": 4,
    "batch_size": 32,
    "train_profiles": 64,
    "misreport_steps": 3,
    "hidden": 16,
    "validate_every": 2,
    "validation_samples": 256,
    "checkpoint_every": 2,
    "log_every": 1,
}


def _scramble(mech: torch.nn.Module, scale: float, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in mech.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("cls", [RegretNetMechanism, ALGNetMechanism])
@pytest.mark.parametrize(
    "setting", ["2x2-uniform", "2x2-unit-uniform", "1x2-uniform", "3x10-uniform", "3x1-exponential"]
)
def test_networks_feasible_and_ir_by_construction(cls, setting):
    s = cached_setting(setting)
    for seed, scale in [(0, None), (1, 3.0), (2, 30.0)]:
        mech = cls(s, hidden=32, layers=2, init_seed=seed)
        if scale:
            _scramble(mech, scale, seed)
        bids = torch.as_tensor(s.sample(2_000, seed), dtype=torch.float32)
        with torch.no_grad():
            alloc, pay = mech(bids)
        assert float(s.infeasibility(alloc).max()) <= 1e-6
        assert float(s.utilities(bids, alloc, pay).min()) >= -1e-6
        assert float(pay.min()) >= 0
        # also on arbitrary reports: payments never exceed the reported value
        reports = 5 * torch.rand(500, *s.shape, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            alloc, pay = mech(reports)
        assert float(s.infeasibility(alloc).max()) <= 1e-6
        assert bool(((alloc * reports).sum(-1) - pay >= -1e-5).all())


def test_unit_demand_rows_and_columns():
    s = cached_setting("2x2-unit-uniform")
    mech = RegretNetMechanism(s, hidden=32, init_seed=3)
    _scramble(mech, 10.0, 3)
    with torch.no_grad():
        alloc, _ = mech(torch.rand(1_000, 2, 2))
    assert float(alloc.sum(-1).max()) <= 1 + 1e-6 and float(alloc.sum(-2).max()) <= 1 + 1e-6


def test_batched_misreports_match_one_bidder_at_a_time():
    s = cached_setting("2x2-uniform")
    mech = RegretNetMechanism(s, hidden=16, init_seed=0)
    v, b = torch.rand(64, 2, 2), torch.rand(64, 2, 2)
    u = misreport_utilities(mech, v, b)
    for i in range(2):
        bids = v.clone()
        bids[:, i] = b[:, i]
        alloc, pay = mech(bids)
        assert torch.allclose(u[:, i], (alloc[:, i] * v[:, i]).sum(-1) - pay[:, i], atol=1e-6)
    x = substitute(v, b)
    assert torch.equal(x[:, 0, 1], v[:, 1]) and torch.equal(x[:, 1, 1], b[:, 1])


@pytest.mark.parametrize("setting", ["3x1-uniform", "3x1-exponential", "2x1-asym-uniform"])
def test_myersonnet_dsic_and_ir_for_any_parameters(setting):
    s = cached_setting(setting)
    mech = MyersonNetMechanism(s, groups=4, lines=4, init_seed=1)
    _scramble(mech, 0.5, 1)
    y = torch.linspace(-1, 3, 50).view(-1, 1).expand(-1, s.num_bidders)
    phi = mech.virtual_bids(mech.inverse(y).unsqueeze(-1))
    assert torch.allclose(phi, y, atol=1e-4)  # the inverse is exact
    report = evaluate(mech, samples=2_000, search=SMALL)
    assert report.regret_max <= 1e-5
    assert report.ir_violation_rate == 0.0 and report.infeasible_rate == 0.0


def test_regret_evaluator_finds_regret_of_untrained_network_and_first_price():
    s = cached_setting("2x2-uniform")
    quick = RegretSearch(profiles=50, random=32, scales=8, grid=4, ascent_starts=2, ascent_steps=20)
    untrained = evaluate(RegretNetMechanism(s, hidden=32, init_seed=0), samples=1_000, search=quick)
    assert untrained.regret_mean > 1e-3 and untrained.regret_max > untrained.regret_mean
    first_price = evaluate(FirstPrice(s), samples=1_000, search=quick)
    assert first_price.regret_mean > 0.05


def test_attacker_ascent_raises_misreport_utility():
    s = cached_setting("2x2-uniform")
    mech = RegretNetMechanism(s, hidden=32, init_seed=0)
    v = torch.as_tensor(s.sample(256, 5), dtype=torch.float32)
    start = torch.rand(256, 2, 2, generator=torch.Generator().manual_seed(0))
    before = misreport_utilities(mech, v, start).sum()
    after = misreport_utilities(mech, v, ascend(mech, v, start, 10, 0.1)).sum()
    assert float(after.detach()) > float(before.detach())
    assert all(p.requires_grad for p in mech.parameters())  # unfrozen after the attack


def test_short_regretnet_run_lowers_regret(tmp_path):
    s = cached_setting("2x2-uniform")
    options = {
        "steps": 40,
        "batch_size": 64,
        "train_profiles": 640,
        "misreport_steps": 5,
        "hidden": 32,
        "lagrange_init": 20.0,
        "lr": 0.005,
        "validate_every": 40,
        "validation_samples": 512,
    }
    v = torch.as_tensor(s.sample(500, 11), dtype=torch.float32)
    before = float(attacker_regret(RegretNetMechanism(s, hidden=32, init_seed=0), v).mean())
    mech, run = train(
        s, "regretnet", options, seed=0, out=tmp_path / "run", search=None, eval_samples=1_000
    )
    after = float(attacker_regret(mech, v).mean())
    assert after < 0.5 * before, (before, after)
    history = run.history()
    assert history[-1]["step"] == 40 and "train_regret" in history[-1]


def _capture_contexts(monkeypatch, method) -> list[FitContext]:
    """The fit contexts of ``method``'s next fits (their ``state`` at the end of the run)."""
    seen: list[FitContext] = []
    original = type(method).fit

    def fit(self, ctx):
        seen.append(ctx)
        return original(self, ctx)

    monkeypatch.setattr(type(method), "fit", fit)
    return seen


@pytest.mark.parametrize("method", ["regretnet", "algnet"])
def test_interrupted_run_resumes_exactly(tmp_path, monkeypatch, method):
    s = cached_setting("1x2-uniform")
    opts = (
        dict(TINY_REGRETNET, lagrange_every=1)
        if method == "regretnet"
        else {
            "steps": 4,
            "batch_size": 32,
            "misreporter_steps": 2,
            "reset_every": 3,
            "hidden": 16,
            "misreporter_hidden": 16,
            "validate_every": 2,
            "validation_samples": 256,
            "checkpoint_every": 2,
            "log_every": 1,
        }
    )
    meth = get_method(method)
    seen = _capture_contexts(monkeypatch, meth)
    whole, _ = train(s, method, opts, seed=0, out=tmp_path / "whole", search=None, eval_samples=256)
    monkeypatch.undo()
    interrupt_third_step(monkeypatch, meth)
    with pytest.raises(KeyboardInterrupt):
        train(s, method, opts, seed=0, out=tmp_path / "cut", search=None, eval_samples=256)
    extra = Run(tmp_path / "cut").checkpoint()["training_state"]["extra"]
    assert extra is not None and extra["step"] == 1
    monkeypatch.undo()
    again = _capture_contexts(monkeypatch, meth)
    resumed, _ = train(s, method, opts, seed=0, out=tmp_path / "cut", search=None, eval_samples=256)
    monkeypatch.undo()
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    (w,), (r,) = [c.state for c in seen], [c.state for c in again]
    if method == "regretnet":
        assert torch.equal(w.misreports, r.misreports) and torch.equal(w.lagrange, r.lagrange)
        assert w.rho == r.rho and torch.equal(w.regret_sum, r.regret_sum)
    else:
        assert (w.resets, w.updates) == (r.resets, r.updates) == (1, 2)
        for a, b in zip(w.misreporter.state_dict().values(), r.misreporter.state_dict().values()):
            assert torch.equal(a, b)


def _one_step(method, setting, options, chunk_size, run_dir):
    """A fresh fit's first step with ``chunk_size``: (state before the step as a copy of
    its cache, the context after it, batch rows, metrics, gradients of the mechanism)."""
    meth = get_method(method)
    opts = meth.Options.resolve({**options, "chunk_size": chunk_size})
    ctx = FitContext(setting=setting, options=opts, seed=0, run=Run(run_dir))
    mech = meth.build(ctx)
    optimizer = torch.optim.Adam(mech.parameters(), lr=opts.lr)
    ctx.rng = np.random.default_rng([0, 0])
    ctx.state = meth.start(mech, ctx)
    ctx.step, ctx.lr = 0, opts.lr
    values, indices = meth.sample(mech, ctx)
    before = ctx.state.misreports.clone() if method == "regretnet" else None
    metrics = meth.step(mech, optimizer, values, indices, ctx)
    return before, ctx, indices, metrics, [p.grad.clone() for p in mech.parameters()]


def _assert_same_step(whole, chunked):
    (_, _, rows_w, metrics_w, grads_w), (_, _, rows_c, metrics_c, grads_c) = whole, chunked
    assert torch.equal(rows_w, rows_c)
    for key in ("loss", "train_revenue", "train_regret"):
        assert metrics_c[key] == pytest.approx(metrics_w[key], rel=1e-5, abs=1e-7), key
    for gw, gc in zip(grads_w, grads_c):
        assert torch.allclose(gw, gc, rtol=1e-4, atol=1e-6), float((gw - gc).abs().max())


def test_chunked_regretnet_step_is_the_whole_batch_step(tmp_path):
    s = cached_setting("2x2-uniform")
    options = {
        "batch_size": 64,
        "train_profiles": 128,
        "hidden": 16,
        "misreport_steps": 3,
        "misreport_candidates": 4,
        "lagrange_init": 5.0,
        "rho": 50.0,
    }
    whole = _one_step("regretnet", s, options, 0, tmp_path / "whole")
    chunked = _one_step("regretnet", s, options, 24, tmp_path / "chunked")  # 24 + 24 + 16
    _assert_same_step(whole, chunked)
    before, ctx, rows, _, _ = chunked
    after = ctx.state.misreports
    outside = torch.ones(len(after), dtype=torch.bool)
    outside[rows] = False
    assert torch.equal(after[outside], before[outside])  # only the batch's rows move
    assert bool((after[rows] != before[rows]).any(dim=(1, 2)).all())
    assert torch.allclose(after, whole[1].state.misreports, atol=1e-5)
    assert torch.allclose(ctx.state.regret_sum, whole[1].state.regret_sum, rtol=1e-5)
    assert float(ctx.state.regret_sum.min()) > 0  # the penalty is exercised


def test_chunked_algnet_step_is_the_whole_batch_step(tmp_path):
    s = cached_setting("2x2-uniform")
    options = {
        "batch_size": 64,
        "hidden": 16,
        "misreporter_hidden": 16,
        "misreporter_steps": 2,
        "refine_steps": 2,
    }
    whole = _one_step("algnet", s, options, 0, tmp_path / "whole")
    chunked = _one_step("algnet", s, options, 24, tmp_path / "chunked")
    _assert_same_step(whole, chunked)
    w, c = whole[1].state, chunked[1].state
    assert torch.allclose(w.reports, c.reports, atol=1e-5) and w.updates == c.updates == 2
    for a, b in zip(w.misreporter.parameters(), c.misreporter.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_options_are_typed_and_checked():
    assert RegretNetOptions().misreport_steps == 25 and ALGNetOptions().reset_every == 1_000
    for cls in (RegretNetOptions, ALGNetOptions):
        assert "temperature" not in cls.defaults()  # no softmax relaxation
    for bad in (
        {"misreport_steps": -1},
        {"rho": -1.0},
        {"lagrange_every": 0},
        {"train_profiles": 0},
        {"misreport_lr": 0.0},
        {"hidden": 1.5},
    ):
        with pytest.raises(OptionError, match=f"regretnet: option '{next(iter(bad))}'"):
            RegretNetOptions.resolve(bad)
    for bad in ({"reset_every": -1}, {"misreporter_steps": -2}, {"refine_lr": 0.0}):
        with pytest.raises(OptionError, match="algnet: option"):
            ALGNetOptions.resolve(bad)


def test_save_load_and_describe(tmp_path):
    for name, setting in [
        ("regretnet", "2x2-uniform"),
        ("algnet", "2x2-unit-uniform"),
        ("myersonnet", "3x1-uniform"),
    ]:
        s = cached_setting(setting)
        cls = mechanism_class(name)
        mech = cls(s, init_seed=4)
        automech.save(mech, tmp_path / name)
        loaded = automech.load(tmp_path / name)
        assert type(loaded) is cls and loaded.config() == mech.config()
        bids = s.sample(300, 2)
        for a, b in zip(mech.outcome(bids), loaded.outcome(bids)):
            np.testing.assert_array_equal(a, b)
        info = loaded.describe(bids)
        assert info["kind"] == name and "revenue" in info


def test_algnet_short_run_and_misreporter_reset(tmp_path):
    s = cached_setting("2x2-uniform")
    options = {
        "steps": 7,
        "batch_size": 32,
        "misreporter_steps": 2,
        "reset_every": 3,
        "hidden": 16,
        "misreporter_hidden": 16,
        "refine_steps": 2,
        "validate_every": 3,
        "validation_samples": 256,
        "checkpoint_every": 2,
    }
    mech, run = train(
        s, "algnet", options, seed=0, out=tmp_path / "run", search=None, eval_samples=256
    )
    state = load_misreporter(run.path, s)  # the final misreporter
    assert state.resets == 2 and state.updates == 2
    assert all(np.isfinite(r["loss"]) for r in run.history())
    r = misreporter_regret(mech, torch.rand(64, 2, 2), run.path)
    assert r.shape == (64, 2) and float(r.min()) >= 0
    loaded = automech.load(run.path)
    assert torch.equal(
        misreporter_regret(loaded, r.new_ones(3, 2, 2), state),
        misreporter_regret(mech, r.new_ones(3, 2, 2), run.path),
    )
    automech.save(loaded, tmp_path / "saved")  # no misreporter with it
    assert (
        misreporter_regret(
            automech.load(tmp_path / "saved"), torch.rand(4, 2, 2), tmp_path / "saved"
        )
        is None
    )
    assert misreporter_regret(loaded, torch.rand(4, 2, 2), None) is None
    refined = misreporter_regret(mech, torch.rand(64, 2, 2), state, refine_steps=3)
    assert refined.shape == (64, 2)


def test_myersonnet_short_run_learns_a_reserve(tmp_path):
    s = cached_setting("2x1-uniform")
    mech, _ = train(
        s,
        "myersonnet",
        {
            "steps": 150,
            "batch_size": 1024,
            "groups": 4,
            "lines": 4,
            "validate_every": 150,
            "validation_samples": 1024,
        },
        seed=0,
        out=tmp_path / "run",
        search=None,
        eval_samples=1_000,
    )
    reserves = mech.describe(s.sample(10, 0))["reserve_prices"]
    assert all(r > 0.2 for r in reserves), reserves  # Myerson's reserve is 0.5
