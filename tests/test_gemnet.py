"""GemNet: DSIC and IR by construction, over-allocation detected before and absent after
the MILP price adjustment, the certificate, save/load, training and errors."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from automech import evaluate, get_setting, load
from automech.errors import AutomechError, NotApplicableError, OptionError
from automech.evaluation import RegretSearch
from automech.experiment import save, train
from automech.mechanisms.learned.affine_maximizer import DeterministicAMA
from automech.mechanisms.learned.gemnet import GemNetMechanism
from automech.methods import METHODS
from automech.methods.gemnet import compatibility as mc
from automech.methods.gemnet import distil, incompatibility

SEARCH = RegretSearch(profiles=200, random=64, scales=8, grid=8)


@pytest.fixture(scope="module")
def toy():
    """A random (untrained) 2x2 menu network and its adjustment on a coarse grid."""
    setting = get_setting("2x2-uniform")
    network = GemNetMechanism(setting, menu_size=6, hidden=(16,), init_seed=3, grid=6)
    adjusted, report = mc.adjust(network, snap=0.01)
    return setting, network, adjusted, report


@pytest.mark.parametrize("name", ["2x2-uniform", "2x3-unit-uniform", "3x10-uniform"])
@pytest.mark.parametrize("seed", [0, 1])
def test_random_networks_are_dsic_and_ir(name, seed):
    setting = get_setting(name)
    mech = GemNetMechanism(setting, menu_size=8, hidden=(16,), init_seed=seed).double()
    report = evaluate(mech, setting, samples=2000, search=SEARCH)
    assert report.ir_violation_rate == 0
    assert report.regret_max < 1e-9


def test_unit_demand_entries_are_feasible_per_bidder():
    setting = get_setting("2x3-unit-uniform")
    mech = GemNetMechanism(setting, menu_size=8, hidden=(16,), init_seed=0)
    alloc, _ = mech.network_menus(torch.rand(100, 2, 3))
    assert alloc.min() >= 0 and (alloc.sum(-1) <= 1 + 1e-6).all()


def test_evaluator_detects_over_allocation_of_unadjusted_menus(toy):
    setting, network, _, _ = toy
    report = evaluate(network, setting, samples=20_000, search=None)
    assert report.infeasible_rate > 0.01
    assert report.infeasibility_max > 0.1


def test_adjustment_removes_over_allocation(toy):
    setting, _, adjusted, report = toy
    assert report.violating_pairs_before > 0 and report.violating_pairs_after == 0
    assert report.binaries < report.binaries_without_speedup
    evaluation = evaluate(adjusted, setting, samples=50_000, search=SEARCH)
    assert evaluation.infeasible_rate == 0 and evaluation.infeasibility_max <= 1e-9
    assert evaluation.ir_violation_rate == 0
    assert evaluation.regret_max < 1e-9


def test_certificate_covers_cell_edges_and_bids_outside_the_support(toy):
    """Bids on the grid lines, at 0, and far above the support never over-allocate."""
    setting, _, adjusted, _ = toy
    rng = np.random.default_rng(0)
    edges = np.linspace(0, 1, 7)
    bids = rng.choice(edges, size=(20_000, 2, 2))
    bids[:5000] = rng.uniform(0, 3, size=(5000, 2, 2))  # above the support too
    alloc, pay = adjusted.outcome(bids)
    assert (alloc.sum(axis=1) <= 1 + 1e-9).all()
    capped = np.minimum(bids, 1.0)
    assert ((bids * alloc).sum(-1) - pay >= -1e-9).all()  # IR at the true (uncapped) bid
    assert ((capped * alloc).sum(-1) - pay >= -1e-9).all()


def test_certify_counts_violations_of_a_clashing_pair():
    """Two fixed menus that both sell item 0 cheaply clash everywhere; the adjustment
    must leave at most one of them able to sell it."""
    grid, k = 2, 1
    alloc = np.zeros((2, grid * grid, k + 1, 2))
    alloc[:, :, 1, 0] = 1.0
    price = np.zeros((2, grid * grid, k + 1))
    price[:, :, 1] = 0.1
    corners = mc.own_boxes(np.zeros(2), np.ones(2), grid)
    assert mc.certify(alloc, price, corners) > 0
    stats = {
        "milps": 0,
        "binaries": 0,
        "binaries_without_speedup": 0,
        "rows": 0,
        "trims_skipped": 0,
    }
    mc.adjust_bidder(alloc, price, corners, 0, False, stats)
    assert mc.certify(alloc, price, corners) == 0 and stats["milps"] > 0


def test_save_load_round_trip(toy, tmp_path):
    setting, _, adjusted, _ = toy
    save(adjusted, tmp_path / "run")
    again = load(tmp_path / "run")
    bids = setting.sample(1000, 1)
    for a, b in zip(adjusted.outcome(bids), again.outcome(bids)):
        np.testing.assert_array_equal(a, b)
    assert again.config()["adjusted"] is True


def test_unadjusted_view_matches_the_network(toy):
    setting, network, adjusted, _ = toy
    bids = setting.sample(500, 2)
    np.testing.assert_allclose(
        adjusted.network().outcome(bids)[1], network.double().outcome(bids)[1], atol=1e-6
    )


def test_pairwise_incompatibility_sees_split_choices():
    """Two bidders indifferent between nothing and two entries selling item 0: the mean
    allocations (2/3 each) over-allocate by 1/3, the independent draws by 4/9."""
    setting = get_setting("2x2-uniform")
    mech = GemNetMechanism(setting, menu_size=2, hidden=(4,), init_seed=0)
    with torch.no_grad():
        for w in mech.weights:
            w.zero_()
        bias = mech.biases[-1]
        bias.zero_()
        bias[:, 0], bias[:, 1] = 50.0, -50.0  # entry 1 = item 0 only
        bias[:, 2], bias[:, 3] = 50.0, -50.0  # entry 2 = item 0 only
        bias[:, 4] = bias[:, 5] = 0.0  # both free
    values = torch.full((4, 2, 2), 0.0)  # indifferent: 3-way tie
    with torch.no_grad():
        alloc, _, util = mech.network_utilities(values)
        over = float(incompatibility(alloc, util, temperature=1.0))
    assert over == pytest.approx((2 / 3) ** 2, rel=1e-3)


def test_short_training_run_then_adjustment(tmp_path):
    setting = get_setting("2x2-uniform")
    _, run = train(
        setting,
        "gemnet",
        {
            "steps": 150,
            "batch_size": 1024,
            "menu_size": 8,
            "hidden": 32,
            "grid": 6,
            "validate_every": 75,
            "lr": 3e-3,
            "lr_final": 1e-4,
            "temperature": 20.0,
            "temperature_final": 200.0,
            "penalty": 1.0,
            "init": "random",
        },
        seed=0,
        out=tmp_path / "run",
        eval_samples=20_000,
        search=SEARCH,
    )
    metrics = run.read_json("metrics.json")
    assert metrics["infeasible_rate"] == 0
    assert metrics["regret_max"] < 1e-9
    assert (tmp_path / "run" / "adjustment.json").exists()
    assert (tmp_path / "run" / "unadjusted.json").exists()
    assert metrics["revenue"] > 0.5  # a random menu network earns about 0.25
    # a finished, adjusted run is reused, not retrained
    first = load(tmp_path / "run")
    again, _ = train(
        setting,
        "gemnet",
        run.read_json("config.json")["options"],
        seed=0,
        out=tmp_path / "run",
        eval_samples=1_000,
        search=None,
    )
    assert again.config()["adjusted"] is True
    bids = setting.sample(1_000, 5)
    for a, b in zip(first.outcome(bids), again.outcome(bids)):
        np.testing.assert_array_equal(a, b)


def test_ama_menus_are_second_price_with_reserve():
    """VCG with reserve r as a deterministic AMA: bidder 0's cheapest entry for item 0
    alone costs max(v_10, r), for both items the sum of those."""
    setting = get_setting("2x2-uniform")
    ama = DeterministicAMA(setting).double()
    ama.reset_boosts(0.3)
    bids = torch.as_tensor(setting.sample(200, 4))
    alloc, prices = ama.menus(bids)
    share = alloc[:, 0]
    only_first = (share == torch.tensor([1.0, 0.0], dtype=share.dtype)).all(dim=1)
    both = (share == 1).all(dim=1)
    expected = torch.maximum(bids[:, 1], torch.tensor(0.3, dtype=bids.dtype))
    np.testing.assert_allclose(
        prices[:, 0, only_first].min(dim=1).values, expected[:, 0], atol=1e-12
    )
    np.testing.assert_allclose(
        prices[:, 0, both].min(dim=1).values, expected.sum(dim=1), atol=1e-12
    )


def test_distilled_network_reproduces_the_ama():
    setting = get_setting("2x2-uniform")
    ama = DeterministicAMA(setting).double()
    ama.reset_boosts(0.3)
    net = GemNetMechanism(setting, menu_size=4, hidden=(32, 32), init_seed=0, grid=10)
    error = distil(net, ama, steps=300, batch_size=1024, lr=3e-3, rng=np.random.default_rng(0))
    assert error < 0.05
    target = evaluate(ama, setting, samples=20_000, search=None).revenue
    copy = evaluate(net.double(), setting, samples=20_000, search=None)
    assert copy.revenue == pytest.approx(target, abs=0.03)


def test_errors():
    with pytest.raises(NotApplicableError, match="unit-supply"):
        GemNetMechanism(get_setting("U-1x10-cp0-cd0"))
    with pytest.raises(AutomechError, match="two bidders"):
        mc.adjust(GemNetMechanism(get_setting("3x10-uniform"), menu_size=2, hidden=(4,)))
    with pytest.raises(NotApplicableError, match="grid"):
        GemNetMechanism(get_setting("2x2-uniform"), adjusted=True)


def test_bad_options_name_the_problem(tmp_path):
    setting = get_setting("2x2-uniform")
    with pytest.raises(AutomechError, match="affine maximizer"):
        train(setting, "gemnet", {"init": "rochetnet", "grid": 4}, out=tmp_path / "a", search=None)
    with pytest.raises(AutomechError, match="recipe"):
        train(setting, "lottery-ama", {"recipe": "bogus"}, out=tmp_path / "b", search=None)


def test_ama_tables_price_like_the_ama_and_adjust_to_compatible():
    """Second price with reserve 0.3 (a deterministic AMA) tabulated on opponent cells:
    bidder 0's price for item 0 alone on each cell is ``max(centre, 0.3)``; the tables
    over-allocate on some profiles until ``make_compatible`` certifies them, after which
    the evaluator finds none, and the revenue stays within half a cell width."""
    setting = get_setting("2x2-uniform")
    ama = DeterministicAMA(setting).double()
    ama.reset_boosts(0.3)
    grid = 5
    alloc, price = mc.affine_maximizer_tables(ama, grid)
    plain = GemNetMechanism(setting, menu_size=alloc.shape[2] - 1, hidden=(1,), grid=grid)
    centres = plain.cell_centres().numpy()
    entry = [d for d in range(alloc.shape[2]) if list(alloc[0, 0, d]) == [1.0, 0.0]][0]
    np.testing.assert_allclose(price[0, :, entry], np.maximum(centres[:, 0], 0.3), atol=1e-12)
    before = evaluate(plain.with_tables(alloc, price, 0.0), setting, samples=20_000, search=None)
    assert before.infeasible_rate > 0
    new_alloc, new_price, stats = mc.make_compatible(alloc, price, np.zeros(2), np.ones(2), grid)
    assert stats["violating_pairs_before"] > 0 and stats["violating_pairs_after"] == 0
    after = evaluate(
        plain.with_tables(new_alloc, new_price, 0.0), setting, samples=20_000, search=SEARCH
    )
    assert after.infeasible_rate == 0 and after.regret_mean < 1e-9
    target = evaluate(ama, setting, samples=20_000, search=None).revenue
    assert after.revenue == pytest.approx(target, abs=0.5 / grid)  # 0.046 below it here


TINY = {
    "steps": 2,
    "batch_size": 256,
    "menu_size": 4,
    "hidden": 16,
    "adjust": False,
    "validate_every": 2,
    "validation_samples": 256,
    "init_steps": 10,
}


def test_start_from_an_ama_run_directory(tmp_path):
    """``init`` = an AMA run directory: its mechanism (rebuilt from the checkpoint) is
    distilled into the network; a run directory of anything else is refused."""
    setting = get_setting("2x2-uniform")
    train(
        setting,
        "deterministic-ama",
        {"steps": 2, "batch_size": 256, "validation_samples": 256},
        out=tmp_path / "ama",
        search=None,
        eval_samples=256,
    )
    _, run = train(
        setting,
        "gemnet",
        {**TINY, "init": str(tmp_path / "ama")},
        out=tmp_path / "net",
        search=None,
        eval_samples=256,
    )
    init = run.read_json("init.json")
    assert init["init"] == str(tmp_path / "ama") and np.isfinite(init["price_rmse"])
    with pytest.raises(AutomechError, match="affine maximizer"):
        train(
            setting,
            "gemnet",
            {**TINY, "init": str(tmp_path / "net")},
            out=tmp_path / "bad",
            search=None,
            eval_samples=256,
        )


def test_start_from_an_ama_method_trains_it_nested(tmp_path, monkeypatch):
    """``init`` = an AMA method: it is trained with its defaults (here shrunk) on the same
    setting and seed into ``RUN/init-ama`` through the fit context."""
    method = METHODS["deterministic-ama"]

    @dataclass(frozen=True)
    class Tiny(method.Options):
        steps: int = 2
        batch_size: int = 256
        validation_samples: int = 256

    monkeypatch.setattr(type(method), "Options", Tiny)
    setting = get_setting("2x2-uniform")
    _, run = train(
        setting,
        "gemnet",
        {**TINY, "init": "deterministic-ama"},
        seed=1,
        out=tmp_path / "net",
        search=None,
        eval_samples=256,
    )
    nested = tmp_path / "net" / "init-ama"
    assert (nested / "checkpoint.pt").exists()
    assert load(nested).name == "deterministic-ama"
    assert run.read_json("init.json")["init"] == "deterministic-ama"


def test_penalty_options_and_chunks(tmp_path):
    with pytest.raises(OptionError, match="penalty"):
        METHODS["gemnet"].Options.resolve({"penalty": 0.0})
    METHODS["gemnet"].Options.resolve({"penalty": 0.0, "penalty_final": 0.0})
    # with the penalty on the whole batch, chunks only cut the sum
    setting = get_setting("2x2-uniform")
    opts = {**TINY, "init": "random", "steps": 1, "penalty_batch": 0, "lr": 1e-2}
    whole, _ = train(setting, "gemnet", opts, out=tmp_path / "whole", search=None, eval_samples=256)
    chunked, _ = train(
        setting,
        "gemnet",
        {**opts, "chunk_size": 64},
        out=tmp_path / "chunked",
        search=None,
        eval_samples=256,
    )
    for x, y in zip(whole.state_dict().values(), chunked.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
