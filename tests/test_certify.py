"""Exact regret certificates (automech.evaluation.certify) and the piecewise-linear
RegretNet they need: sparsemax is the projection onto the simplex, IR holds by
construction, the MILP's optimum is the network's own value at the misreport it returns,
a hand-built network's regret is certified exactly, the certificate is never below what a
search or a fine grid finds, splitting the box or not gives the same optimum, and the
command line certifies a trained run and refuses other mechanisms in one line."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

import automech
from automech import RegretSearch
from automech.evaluation.certify import (
    CertificationError,
    _utility,
    certify,
    check_certifiable,
    max_utility,
)
from automech.evaluation.profiles import profile_regrets
from automech.experiment import train
from automech.mechanisms import FirstPrice
from automech.mechanisms.learned.regretnet import RegretNetMechanism, sparsemax
from conftest import cached_setting
from test_cli import assert_clean_error, invoke

PIECEWISE = {"activation": "relu", "allocation": "sparsemax"}


def _grid_max(mech: RegretNetMechanism, values: np.ndarray, bidder: int, k: int = 101):
    """The best utility over a k x k grid of the (two-item) support box."""
    low, high = (np.asarray(a, dtype=float)[bidder] for a in mech.setting.prior.support())
    axis = np.linspace(0, 1, k)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    return float(
        _utility(copy.deepcopy(mech).double(), values, bidder, low + (high - low) * grid).max()
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small ReLU/sparsemax RegretNet trained for a few seconds on 1x2 uniform."""
    out = tmp_path_factory.mktemp("certify") / "run"
    options = {
        **PIECEWISE,
        "hidden": 16,
        "steps": 150,
        "batch_size": 64,
        "train_profiles": 2048,
        "misreport_steps": 5,
        "validate_every": 150,
        "validation_samples": 256,
        "checkpoint_every": 150,
        "log_every": 50,
    }
    mech, _ = train(
        "1x2-uniform", "regretnet", options, seed=0, out=out, eval_samples=256, search=None
    )
    return mech, out


def test_sparsemax_is_the_projection_onto_the_simplex():
    gen = torch.Generator().manual_seed(0)
    s = 2 * torch.randn(500, 4, 3, generator=gen, dtype=torch.float64)
    z = sparsemax(s, dim=1)
    assert float(z.min()) >= 0 and float((z.sum(1) - 1).abs().max()) < 1e-12
    # the threshold by bisection: sum_k (s_k - tau)_+ = 1
    lo, hi = s.amax(1, keepdim=True) - 1, s.amax(1, keepdim=True)
    for _ in range(100):
        mid = (lo + hi) / 2
        big = (s - mid).clamp_min(0).sum(1, keepdim=True) > 1
        lo, hi = torch.where(big, mid, lo), torch.where(big, hi, mid)
    assert torch.allclose(z, (s - lo).clamp_min(0), atol=1e-9)
    # a projection: no point of the simplex is closer (random simplex points)
    other = torch.distributions.Dirichlet(torch.ones(4, dtype=torch.float64)).sample((500, 3))
    assert bool(((z - s) ** 2).sum(1).le(((other.transpose(1, 2) - s) ** 2).sum(1) + 1e-12).all())


@pytest.mark.parametrize(
    "setting", ["1x2-uniform", "2x2-uniform", "2x2-unit-uniform", "3x1-exponential"]
)
def test_piecewise_networks_feasible_and_ir_by_construction(setting):
    s = cached_setting(setting)
    for seed, scale in [(0, None), (1, 3.0), (2, 30.0)]:
        mech = RegretNetMechanism(s, hidden=16, init_seed=seed, **PIECEWISE)
        if scale:
            gen = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for p in mech.parameters():
                    p.copy_(scale * torch.randn(p.shape, generator=gen))
        bids = torch.as_tensor(s.sample(2_000, seed), dtype=torch.float32)
        reports = 5 * torch.rand(500, *s.shape, generator=torch.Generator().manual_seed(seed))
        for b in (bids, reports):  # truthful bids, and arbitrary reports off the support
            with torch.no_grad():
                alloc, pay = mech(b)
            assert float(s.infeasibility(alloc).max()) <= 1e-6
            assert float(pay.min()) >= 0
            assert bool(((alloc * b).sum(-1) - pay >= -1e-5).all())


def test_ir_cap_is_within_a_quarter_piece_of_the_reported_value():
    """With a huge amount the payment is the cap: ``0 <= z.b - p <= m (H - L) / (4K)``,
    and exact for deterministic allocations."""
    s = cached_setting("2x2-uniform")
    mech = RegretNetMechanism(s, hidden=8, init_seed=1, **PIECEWISE).double()
    with torch.no_grad():
        mech.payment[-1].bias.fill_(100.0)
        mech.allocation[-1].weight.mul_(30.0)  # crisp allocations on part of the box
    bids = torch.as_tensor(s.sample(4_000, 3))
    with torch.no_grad():
        alloc, pay = mech(bids)
    slack = (alloc * bids).sum(-1) - pay
    assert float(slack.min()) >= -1e-12 and float(slack.max()) <= 2 / (4 * mech.cap_pieces)
    crisp = ((alloc < 1e-12) | (alloc > 1 - 1e-12)).all(-1)
    assert bool(crisp.any()) and float(slack[crisp].abs().max()) < 1e-9


def test_hand_built_network_has_its_known_regret():
    """Both items always sold to the bidder (sparsemax of scores 5 vs the dummy's 0), the
    payment ``alpha * sum_j (b_j - 0.3)_+`` (two ambiguous ReLUs; the IR cap sum_j b_j
    never binds): the best lie is any b <= 0.3, regret ``alpha * sum_j (v_j - 0.3)_+``."""
    s = cached_setting("1x2-uniform")
    mech = RegretNetMechanism(s, hidden=2, layers=1, **PIECEWISE)
    alpha = 0.7
    with torch.no_grad():
        alloc, pay = mech.allocation, mech.payment
        alloc[0].weight.zero_(), alloc[0].bias.zero_(), alloc[2].weight.zero_()
        alloc[2].bias.copy_(torch.tensor([5.0, 5.0, 0.0, 0.0]))  # bidder's two scores, dummy's
        pay[0].weight.copy_(torch.eye(2)), pay[0].bias.fill_(-0.3)
        pay[2].weight.fill_(alpha / 2), pay[2].bias.zero_()  # c = 2: c |t| = alpha sum (.)_+
    for v in ([0.9, 0.6], [0.2, 0.8], [0.1, 0.25]):
        values = np.array([v])
        for split in (True, False):
            cert = max_utility(mech, values, 0, split=split)
            exact = alpha * sum(max(x - 0.3, 0.0) for x in v)
            assert cert.status == "Optimal"
            assert abs(cert.regret - exact) < 1e-7 and abs(cert.attained_regret - exact) < 1e-7
            assert np.all(cert.misreport <= 0.3 + 1e-7)


@pytest.mark.parametrize("setting", ["2x2-uniform", "2x2-unit-uniform"])
def test_certificate_matches_the_network_and_beats_a_fine_grid(setting):
    """Random (untrained) networks: the MILP's misreport gives the certified utility, the
    split and unsplit searches agree, and no grid point does better."""
    s = cached_setting(setting)
    mech = RegretNetMechanism(s, hidden=12, init_seed=3, **PIECEWISE)
    values = s.sample(2, np.random.default_rng(4))
    for v in values:
        for i in range(s.num_bidders):
            split = max_utility(mech, v, i)
            whole = max_utility(mech, v, i, split=False)
            for cert in (split, whole):
                assert cert.status == "Optimal" and cert.gap <= 1e-6
                assert (
                    abs(
                        _utility(copy.deepcopy(mech).double(), v, i, cert.misreport[None])[0]
                        - cert.attained
                    )
                    < 1e-9
                )
            assert abs(split.bound - whole.bound) <= 1e-6
            assert split.bound >= _grid_max(mech, v, i) - 1e-9


def test_certified_regret_is_at_least_the_searched_regret(trained):
    mech, _ = trained
    search = RegretSearch(profiles=6, random=64, grid=16, ascent_starts=4, ascent_steps=50)
    searched = profile_regrets(mech, search=search)
    values = mech.setting.test_profiles(10_000, 987654321)[:6]  # the protocol's first six
    report = certify(mech, values, searched=searched)
    assert report.proven and report.certified.shape == searched.shape
    assert np.all(report.certified >= searched - 1e-6), (report.certified, searched)
    assert np.all(report.gap <= 1e-6)
    m64 = copy.deepcopy(mech).double()
    for p, row in enumerate(report.certificates):
        for cert in row:  # the incumbent misreport, put back into the network
            bids = torch.as_tensor(values[p : p + 1].copy())
            bids[0, cert.bidder] = torch.as_tensor(cert.misreport)
            with torch.no_grad():
                alloc, pay = m64(bids)
            u = float(
                (alloc[0, cert.bidder] * bids.new_tensor(values[p, cert.bidder])).sum()
                - pay[0, cert.bidder]
            )
            assert abs(u - cert.bound) <= 1e-6
            assert cert.bound >= _grid_max(mech, values[p], cert.bidder, 41) - 1e-9
    data = report.to_dict()
    assert data["search_below_certificate"] and data["missed_max"] >= -1e-6


def test_certify_refuses_what_is_not_piecewise_linear(trained, tmp_path):
    s = cached_setting("1x2-uniform")
    for mech, fragment in [
        (RegretNetMechanism(s, hidden=8), "activation=tanh"),
        (RegretNetMechanism(s, hidden=8, activation="relu"), "allocation=softmax"),
        (FirstPrice(s), "first"),
    ]:
        with pytest.raises(CertificationError, match=fragment):
            check_certifiable(mech)
    tanh = tmp_path / "tanh"
    automech.save(RegretNetMechanism(s, hidden=8), tanh)
    assert_clean_error(invoke("certify", tanh, "--profiles", "2"), "activation=relu")
    assert_clean_error(invoke("certify", trained[1], "--profiles", "0"), "--profiles")


def test_cli_certify_json(trained):
    result = invoke("certify", trained[1], "--profiles", "3", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["profiles"] == 3 and data["proven"] and data["search_below_certificate"]
    rows = data["per_profile"]
    assert [r["profile"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert r["certified_regret"] >= r["searched_regret"] - 1e-6 and r["gap"] <= 1e-6
        assert abs(r["missed"] - (r["certified_regret"] - r["searched_regret"])) < 1e-9
    assert (
        abs(data["certified_regret_mean"] - np.mean([r["certified_regret"] for r in rows])) < 1e-9
    )
    table = invoke("certify", trained[1], "--profiles", "2")
    assert table.exit_code == 0 and "certified regret mean" in table.stdout


def test_piecewise_network_exports_to_onnx(tmp_path):
    from automech.export import export_onnx
    from test_export import assert_onnx_matches

    # unit demand: both sparsemaxes and their minimum
    mech = RegretNetMechanism(
        cached_setting("2x2-unit-uniform"), hidden=8, init_seed=3, **PIECEWISE
    )
    assert_onnx_matches(mech, export_onnx(mech, tmp_path / "net.onnx"))


def test_workers_give_the_same_certificates():
    s = cached_setting("2x2-uniform")
    mech = RegretNetMechanism(s, hidden=8, init_seed=5, **PIECEWISE)
    values = s.sample(3, np.random.default_rng(6))
    one, two = certify(mech, values), certify(mech, values, workers=2)
    np.testing.assert_array_equal(one.certified, two.certified)
    np.testing.assert_array_equal(one.attained, two.attained)


def test_algnet_trains_a_certifiable_network(tmp_path):
    """ALGNet takes the same activation/allocation options: a ReLU/sparsemax ALGNet run is
    certified, and its certificate bounds the searched regret on every profile."""
    options = {
        **PIECEWISE,
        "hidden": 12,
        "misreporter_hidden": 12,
        "steps": 40,
        "batch_size": 64,
        "validate_every": 40,
        "validation_samples": 128,
        "checkpoint_every": 40,
        "log_every": 20,
    }
    mech, run = train(
        "1x2-uniform",
        "algnet",
        options,
        seed=0,
        out=tmp_path / "run",
        eval_samples=128,
        search=None,
    )
    assert mech.name == "algnet" and mech.piecewise_linear
    assert run.read_json("config.json")["options"]["activation"] == "relu"
    search = RegretSearch(profiles=3, random=64, grid=16, ascent_starts=2, ascent_steps=30)
    searched = profile_regrets(mech, search=search)
    values = mech.setting.test_profiles(10_000, 987654321)[:3]
    report = certify(mech, values, searched=searched)
    assert report.proven and np.all(report.certified >= searched - 1e-6)
