"""Exporting mechanisms: the JSON description and its NumPy executor, ONNX graphs, and
``automech export``."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from automech.cli import app
from automech.errors import AutomechError
from automech.experiment import load, train
from automech.export import (
    FORMAT,
    ExportError,
    describe_json,
    execute,
    export_onnx,
    to_json,
)
from automech.mechanisms import BundlePostedPrice, GrandBundle, PostedPrice
from automech.mechanisms.learned.affine_maximizer import DeterministicAMA, LotteryAMA
from automech.mechanisms.learned.menu import MenuMechanism
from automech.mechanisms.learned.myersonnet import MyersonNetMechanism
from automech.mechanisms.learned.regretnet import ALGNetMechanism
from automech.mechanisms.learned.tedi import TEDIMechanism
from conftest import cached_setting
from test_cli import assert_clean_error

runner = CliRunner()

#: Tiny trainings: a few steps on small batches (what matters is that the parameters
#: moved away from their start, and for the AMA that pruning removed allocations).
TINY = {
    "rochetnet": (
        "1x2-uniform",
        dict(steps=20, batch_size=512, menu_size=16, validate_every=10, validation_samples=512),
    ),
    "lottery-ama": (
        "2x2-uniform",
        dict(
            steps=20,
            batch_size=512,
            chunk_size=0,
            allocations=32,
            validate_every=10,
            validation_samples=512,
            prune_after=10,
            prune_every=10,
            prune_samples=512,
        ),
    ),
    "deterministic-ama": (
        "2x2-unit-uniform",
        dict(
            steps=20, batch_size=512, validate_every=10, validation_samples=512, learn_weights=True
        ),
    ),
    "regretnet": (
        "2x2-uniform",
        dict(
            steps=5,
            batch_size=64,
            hidden=8,
            layers=1,
            validate_every=5,
            validation_samples=256,
            train_profiles=1024,
            misreport_steps=2,
            misreport_candidates=2,
        ),
    ),
    "myersonnet": (
        "2x1-uniform",
        dict(
            steps=20, batch_size=256, groups=3, lines=3, validate_every=10, validation_samples=256
        ),
    ),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run directories of briefly trained mechanisms, by method name."""
    root = tmp_path_factory.mktemp("export-runs")
    out = {}
    for method, (setting, options) in TINY.items():
        _, run = train(
            setting, method, options, seed=0, out=root / method, eval_samples=256, search=None
        )
        out[method] = run.path
    return out


def _randomised_ama(mech):
    """Random boosts and weights, a third of the allocations pruned."""
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        mech.boosts.copy_(torch.randn(mech.boosts.shape, generator=gen))
        mech.log_weights.copy_(0.3 * torch.randn(mech.log_weights.shape, generator=gen))
        if len(mech.active) > 3:
            mech.active[::3] = False
    return mech


RANDOM = {
    "menu-additive": lambda: MenuMechanism(cached_setting("1x2-uniform"), 32, init_seed=1),
    "menu-unit-demand": lambda: MenuMechanism(cached_setting("1x2-unit-uniform"), 32, 2),
    "menu-float64": lambda: MenuMechanism(cached_setting("1x10-uniform"), 32, 3).double(),
    "lottery-additive": lambda: _randomised_ama(
        LotteryAMA(cached_setting("2x2-uniform"), 32, learn_weights=True)
    ),
    "lottery-unit-demand": lambda: _randomised_ama(
        LotteryAMA(cached_setting("2x2-unit-uniform"), 32, learn_weights=True, init="random")
    ),
    "lottery-unlimited-supply": lambda: _randomised_ama(
        LotteryAMA(cached_setting("U-3x2-cp1-cd0"), 32, learn_weights=True)
    ),
    "deterministic-ama": lambda: _randomised_ama(
        DeterministicAMA(cached_setting("2x3-uniform"), learn_weights=True)
    ),
    "posted-price-additive": lambda: PostedPrice(cached_setting("2x2-uniform"), [0.6, 0.5]),
    "posted-price-unit-demand": lambda: PostedPrice(
        cached_setting("2x3-unit-uniform"), [0.5, 0.6, 0.55]
    ),
    "grand-bundle": lambda: GrandBundle(cached_setting("3x1-exponential"), reserve=0.7),
    "grand-bundle-one-bidder": lambda: GrandBundle(cached_setting("1x2-uniform"), reserve=0.8),
    "bundle-posted-price": lambda: BundlePostedPrice(cached_setting("2x2-uniform"), price=1.1),
}


def assert_executor_matches(mech, profiles: int = 3000) -> dict:
    description = json.loads(to_json(describe_json(mech)))
    values = mech.setting.sample(profiles, 11)
    alloc, pay = mech.outcome(values)
    ex_alloc, ex_pay = execute(description, values)
    assert ex_alloc.shape == alloc.shape and ex_pay.shape == pay.shape
    assert np.abs(ex_alloc - alloc).max() <= 1e-6
    assert np.abs(ex_pay - pay).max() <= 1e-6
    return description


@pytest.mark.parametrize("case", sorted(RANDOM))
def test_executor_matches_outcome_random_parameters(case):
    assert_executor_matches(RANDOM[case]())


@pytest.mark.parametrize("method", ["rochetnet", "lottery-ama", "deterministic-ama"])
def test_executor_matches_outcome_trained(runs, method):
    mech = load(runs[method])
    description = assert_executor_matches(mech)
    if method == "lottery-ama":  # pruned: only the active allocations are exported
        assert description["entries"] == int(mech.active.sum()) + 1 < 33


def test_json_is_self_contained_and_readable():
    mech = RANDOM["lottery-additive"]()
    d = describe_json(mech)
    for key in ("format", "mechanism", "kind", "rule", "setting", "bidders", "items"):
        assert key in d
    assert d["format"] == FORMAT and d["mechanism"] == "lottery-ama"
    assert d["setting"] == mech.setting.to_dict()
    assert "weights" in d["rule"] and "boosts" in d["rule"]
    text = to_json(d)
    assert json.loads(text) == d  # round trip, every float exact
    assert json.loads(json.dumps(d)) == d
    # float32 parameters written as the exact float64 of the float32 value
    boosts = np.asarray(d["boosts"])
    assert np.array_equal(boosts.astype(np.float32).astype(np.float64), boosts)
    # readable: one allocation row per line, not one number per line
    assert len(text.splitlines()) < 3 * len(d["allocations"]) * d["bidders"] + 60

    menu = describe_json(RANDOM["menu-additive"]())
    assert menu["allocations"][0] == [0.0, 0.0] and menu["prices"][0] == 0.0  # null entry
    assert len(menu["allocations"]) == len(menu["prices"]) == menu["entries"] == 33


def test_json_refusals_and_executor_errors():
    with pytest.raises(ExportError, match="onnx"):
        describe_json(ALGNetMechanism(cached_setting("2x2-uniform"), hidden=4, layers=1))
    with pytest.raises(ExportError, match="cannot describe"):
        describe_json(object())
    d = describe_json(RANDOM["posted-price-additive"]())
    with pytest.raises(ExportError, match="shape"):
        execute(d, np.zeros((4, 3, 2)))
    with pytest.raises(ExportError, match="format"):
        execute({**d, "format": "other/1"}, np.zeros((4, 2, 2)))
    with pytest.raises(ExportError, match="kind"):
        execute({**d, "kind": "auction"}, np.zeros((4, 2, 2)))
    assert issubclass(ExportError, AutomechError)


def assert_onnx_matches(mech, path) -> None:
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["automech.mechanism"] == mech.name
    assert json.loads(meta["automech.setting"]) == mech.setting.to_dict()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["bids"]
    assert [o.name for o in sess.get_outputs()] == ["allocation", "payments"]
    n, m = mech.setting.shape
    for batch in (1, 37):  # the export's example has 8
        bids = mech.setting.sample(batch, batch).astype(np.float32)
        alloc, pay = sess.run(["allocation", "payments"], {"bids": bids})
        with torch.no_grad():
            t_alloc, t_pay = mech(torch.as_tensor(bids))
        assert alloc.shape == (batch, n, m) and pay.shape == (batch, n)
        assert np.abs(alloc - t_alloc.numpy()).max() <= 1e-5
        assert np.abs(pay - t_pay.numpy()).max() <= 1e-5


def test_onnx_matches_torch_algnet_unit_demand(tmp_path):
    mech = ALGNetMechanism(cached_setting("2x2-unit-uniform"), hidden=8, layers=2, init_seed=3)
    assert_onnx_matches(mech, export_onnx(mech, tmp_path / "algnet.onnx"))


def test_onnx_matches_torch_myersonnet_trained(runs, tmp_path):
    mech = load(runs["myersonnet"])
    assert isinstance(mech, MyersonNetMechanism)
    assert_onnx_matches(mech, export_onnx(mech, tmp_path / "myersonnet.onnx"))


def test_onnx_refusals():
    with pytest.raises(ExportError, match="json"):
        export_onnx(RANDOM["menu-additive"](), "unused.onnx")
    tedi = TEDIMechanism(
        cached_setting("U-1x10-cp0-cd0"), groups=[2], group_size=2, pan_hidden=4, pan_layers=1
    )
    with pytest.raises(ExportError, match="iterative solver"):
        export_onnx(tedi, "unused.onnx")
    with pytest.raises(ExportError, match="cannot describe"):
        describe_json(tedi)


# ------------------------------------------------------------------ CLI


def invoke(*args):
    return runner.invoke(app, ["export", *(str(a) for a in args)])


def test_cli_json_default_path_and_stdout(runs):
    run = runs["lottery-ama"]
    result = invoke(run, "--format", "json")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"json: {run / 'mechanism.json'}"
    description = json.loads((run / "mechanism.json").read_text())
    assert_executor_matches_description(load(run), description)

    result = invoke(runs["rochetnet"], "--format", "json", "--out", "-")
    assert result.exit_code == 0, result.output
    description = json.loads(result.stdout)
    assert description["mechanism"] == "menu"
    assert_executor_matches_description(load(runs["rochetnet"]), description)


def assert_executor_matches_description(mech, description) -> None:
    values = mech.setting.sample(2000, 3)
    for ours, theirs in zip(execute(description, values), mech.outcome(values)):
        assert np.abs(ours - theirs).max() <= 1e-6


def test_cli_onnx_regretnet(runs, tmp_path):
    out = tmp_path / "sub" / "net.onnx"
    result = invoke(runs["regretnet"], "--format", "onnx", "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"onnx: {out}"
    assert_onnx_matches(load(runs["regretnet"]), out)


def test_cli_clean_errors(runs, tmp_path):
    assert_clean_error(invoke(runs["regretnet"], "--format", "json"), "regretnet", "onnx")
    assert_clean_error(invoke(runs["rochetnet"], "--format", "onnx"), "menu", "json")
    assert_clean_error(invoke(runs["rochetnet"], "--format", "xml"), "xml")
    assert_clean_error(invoke(runs["rochetnet"], "--format", "onnx", "--out", "-"), "json only")
    assert_clean_error(invoke(tmp_path / "missing", "--format", "json"), "does not exist")
    assert not (runs["regretnet"] / "mechanism.json").exists()
