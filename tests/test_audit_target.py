"""``automech audit TARGET``: any mechanism -- a NumPy or torch callable, an ONNX file, a
run -- scored by the shared protocol, with closed forms for first and second price."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

from automech.cli import app
from automech.evaluation.protocol import TEST_SEED
from automech.experiment import train
from automech.export import export_onnx
from automech.mechanisms.external import (
    NumpyCallable,
    TorchCallable,
    external_mechanism,
    load_callable,
)
from conftest import cached_setting
from test_cli import assert_clean_error

runner = CliRunner()

SAMPLES, PROFILES = 20_000, 500
MODULE = "automech_audit_auctions"

#: Single-item auctions on NumPy arrays and torch tensors (highest bid wins, ties to
#: the lowest index), and malformed callables for the error tests.
SOURCE = """
import numpy as np
import torch


def _win(bids):
    alloc = np.zeros_like(bids)
    np.put_along_axis(alloc, bids.argmax(axis=1)[:, None, :], 1.0, axis=1)
    return alloc


def first_price(bids):
    alloc = _win(bids)
    return alloc, (alloc * bids).sum(-1)


def second_price(bids):
    alloc = _win(bids)
    second = np.sort(bids, axis=1)[:, -2, :]
    return alloc, (alloc * second[:, None, :]).sum(-1)


def first_price_torch(bids):
    alloc = torch.zeros_like(bids).scatter(1, bids.argmax(dim=1, keepdim=True), 1.0)
    return alloc, (alloc * bids).sum(-1)


def detached_torch(bids):
    alloc, pay = first_price(bids.detach().numpy())
    return torch.as_tensor(alloc), torch.as_tensor(pay)


def numpy_from_torch(bids):
    return first_price(bids.detach().numpy())


def wrong_shape(bids):
    alloc, pay = first_price(bids)
    return alloc[:, :, 0], pay


def raises(bids):
    raise ValueError("boom")


def not_finite(bids):
    alloc, pay = first_price(bids)
    pay[0, 0] = np.nan
    return alloc, pay


def one_output(bids):
    return first_price(bids)[0]


not_a_function = 3
"""


@pytest.fixture
def here(tmp_path_factory, monkeypatch):
    """A folder holding the auctions module, made the current directory: a callable is
    found there, as ``python -m`` would."""
    folder = tmp_path_factory.getbasetemp() / "auctions"
    if not folder.exists():
        folder.mkdir()
        (folder / f"{MODULE}.py").write_text(textwrap.dedent(SOURCE))
    monkeypatch.chdir(folder)
    return folder


def audit(*args) -> dict:
    """``automech audit ... --json``: the one mechanism's row."""
    result = runner.invoke(
        app,
        ["audit", *(str(a) for a in args), "--samples", SAMPLES, "--regret-profiles", PROFILES]
        + ["--json"],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["results"]
    assert len(rows) == 1
    return next(iter(rows.values()))


def fails(*args):
    return runner.invoke(app, ["audit", *(str(a) for a in args), "--samples", "1000"])


def test_first_price_regret_matches_its_closed_form(here):
    # Ex-post regret (the protocol's): against the opponent's bid w, bidder i with value
    # v gains by bidding just above w when v > w, so rgt_i = (v - w)^+, E = 1/6 per bidder
    # on U[0,1]^2 (the interim gain against an unknown w, E[v^2/4] = 1/12, is another
    # quantity).  On the searched profiles the exact mean is |v1 - v2| / 2.
    values = cached_setting("2x1-uniform").prior.test_profiles(SAMPLES, TEST_SEED)[:PROFILES]
    exact = float(np.abs(values[:, 0, 0] - values[:, 1, 0]).mean() / 2)
    assert exact == pytest.approx(1 / 6, rel=0.1)
    plain = audit(f"{MODULE}:first_price", "--setting", "2x1-uniform")
    grad = audit(f"{MODULE}:first_price_torch", "--setting", "2x1-uniform", "--torch")
    for row in (plain, grad):
        assert row["regret_mean"] == pytest.approx(1 / 6, rel=0.1)
        assert exact * 0.98 <= row["regret_mean"] <= exact + 1e-12  # no lie beats the sup
        assert row["revenue"] == pytest.approx(2 / 3, abs=4 * row["revenue_se"])
        assert row["ir_violation_rate"] == 0 and row["infeasible_rate"] == 0
        assert row["samples"] == SAMPLES and row["regret_samples"] == PROFILES
    assert grad["revenue"] == plain["revenue"]


def test_second_price_has_no_regret(here):
    row = audit(f"{MODULE}:second_price", "--setting", "2x1-uniform")
    assert row["regret_mean"] < 1e-6 and row["regret_max"] < 1e-6
    assert row["revenue"] == pytest.approx(1 / 3, abs=4 * row["revenue_se"])
    assert row["welfare"] == pytest.approx(2 / 3, abs=0.01)


def test_callables_are_adapted_and_differentiable_only_with_torch(here):
    s = cached_setting("2x1-uniform")
    assert isinstance(external_mechanism(f"{MODULE}:first_price", s), NumpyCallable)
    mech = external_mechanism(f"{MODULE}:first_price_torch", s, torch_callable=True)
    assert isinstance(mech, TorchCallable) and mech.differentiable
    assert not NumpyCallable.differentiable
    alloc, pay = mech.outcome(np.array([[[0.2], [0.7]]]))
    assert alloc.tolist() == [[[0.0], [1.0]]] and pay.tolist() == [[0.0, 0.7]]
    assert str(here) not in sys.path  # the current directory was added for the import only


@pytest.fixture(scope="module")
def onnx_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    options = dict(
        steps=20,
        batch_size=256,
        hidden=16,
        layers=2,
        validate_every=10,
        validation_samples=256,
        train_profiles=2048,
        misreport_steps=2,
        misreport_candidates=2,
    )
    mech, run = train(
        "1x2-uniform",
        "regretnet",
        options,
        seed=1,
        out=folder / "run",
        eval_samples=1000,
        search=None,
    )
    return run.path, export_onnx(mech, folder / "net.onnx")


def test_onnx_export_audits_like_its_run(onnx_run):
    # The network computes in float32 and the export takes float32 bids, so the protocol
    # scores both on the same float32 profiles; the ONNX file has no gradients, so the
    # run is audited as a black box to get the same search.  Figures agree to float32
    # rounding of the two runtimes (about 1e-7).
    run, path = onnx_run
    from_file = audit(path)  # the setting comes from the file's metadata
    black_box = audit(run, "--black-box")
    full = audit(run)
    for key in ("revenue", "welfare", "ir_violation_rate", "infeasible_rate"):
        assert from_file[key] == pytest.approx(black_box[key], rel=1e-5, abs=1e-7)
        assert full[key] == black_box[key]
    for key in ("regret_mean", "regret_max"):
        assert from_file[key] == pytest.approx(black_box[key], rel=1e-5)
    assert from_file["regret_mean"] > 0  # 20 steps: far from strategyproof
    assert full["regret_mean"] > 0
    assert audit(path, "--setting", "1x2-uniform")["revenue"] == from_file["revenue"]


def test_clean_errors(here, onnx_run, tmp_path):
    _, good_onnx = onnx_run
    s = ("--setting", "2x1-uniform")
    assert_clean_error(fails("no target here", *s), "none of", "module:callable")
    assert_clean_error(fails("automech_no_such_module:fn", *s), "no module named")
    assert_clean_error(fails(f"{MODULE}:missing", *s), "has no attribute 'missing'")
    assert_clean_error(fails(f"{MODULE}:not_a_function", *s), "not a callable")
    assert_clean_error(fails(f"{MODULE}:first_price"), "needs --setting")
    assert_clean_error(
        fails(f"{MODULE}:wrong_shape", *s),
        f"{MODULE}:wrong_shape returned allocation of shape (B, 2), expected (B, 2, 1)",
    )
    assert_clean_error(fails(f"{MODULE}:raises", *s), f"{MODULE}:raises raised ValueError: boom")
    assert_clean_error(fails(f"{MODULE}:not_finite", *s), "payments", "NaN")
    assert_clean_error(fails(f"{MODULE}:one_output", *s), "expected a pair")
    assert_clean_error(fails(f"{MODULE}:numpy_from_torch", *s, "--torch"), "torch tensors")
    assert_clean_error(fails(f"{MODULE}:detached_torch", *s, "--torch"), "detached")
    fake = tmp_path / "fake.onnx"
    fake.write_text("not a model")
    assert_clean_error(fails(fake, *s), "fake.onnx is not a readable ONNX model")
    assert_clean_error(fails(tmp_path / "absent.onnx", *s), "no such ONNX file")
    assert_clean_error(fails(good_onnx, "--setting", "2x2-uniform"), "does not match the setting")
    # a model of another signature: one (B, 3) input, one output
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 3])],
    )
    other = tmp_path / "other.onnx"
    onnx.save_model(helper.make_model(graph), str(other))
    assert_clean_error(fails(other, *s), "other.onnx does not match", "x (B, 3)")
    assert_clean_error(fails(other), "records no setting")


def test_load_callable_resolves_dotted_attributes(here):
    assert load_callable("numpy.linalg:norm") is np.linalg.norm
    assert load_callable("numpy:linalg.norm") is np.linalg.norm
