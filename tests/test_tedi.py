"""TEDI (Ma et al., AAMAS 2026): settings family, cost baselines, Partial GroupMax Network,
menu inference, and the covariance-trick gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from automech import get_setting
from automech.mechanisms.classical.cost_baselines import (BundleOPT, SeparableOPT, SharedBundleOPT,
                                                best_bundle_price)
from automech.mechanisms.learned.tedi import PartialGroupMaxNet, TEDIMechanism
from automech.methods import METHODS
from automech.methods.tedi import covariance_loss


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_family_names():
    s = get_setting("C-3x10-cp0-cd0.5")
    assert s.shape == (3, 10) and s.supply == "unlimited"
    assert s.objective.params == {"production_cost": 0.0, "duplication_cost": 0.5}
    b = get_setting("B-1x10-cp0-cd0").sample(1000, 0)
    assert set(np.unique(b)) == {0.0, 1.0}
    assert "tedi" in METHODS


def test_separable_opt_closed_forms():
    # one bidder, U[0,1], cost c_p + c_d = 0.5: price (1 + 0.5) / 2 = 0.75 per good
    s = get_setting("U-1x3-cp0.25-cd0.25")
    mech = SeparableOPT(s)
    alloc, pay = mech(torch.tensor([[[0.8, 0.7, 0.76]]], dtype=torch.float64))
    assert alloc.tolist() == [[[1.0, 0.0, 1.0]]]
    assert pay.item() == pytest.approx(1.5, abs=1e-3)
    # three bidders, c_p = 1: the others' virtual surplus lowers the threshold
    s = get_setting("U-3x1-cp1-cd0")
    mech = SeparableOPT(s)
    bids = torch.tensor([[[0.9], [0.8], [0.1]]], dtype=torch.float64)
    alloc, pay = mech(bids)   # phi = 0.8, 0.6, <0: sum 1.4 >= 1, both top served
    assert alloc.flatten().tolist() == [1.0, 1.0, 0.0]
    # bidder 0's threshold: phi >= 1 - 0.6 = 0.4 -> v = 0.7; bidder 1: phi >= 0.2 -> 0.6
    assert pay.flatten()[:2].tolist() == pytest.approx([0.7, 0.6], abs=1e-3)
    # Bernoulli: sell at price 1
    s = get_setting("B-1x4-cp0-cd0")
    alloc, pay = SeparableOPT(s)(torch.tensor([[[1.0, 0.0, 1.0, 1.0]]]))
    assert alloc.flatten().tolist() == [1, 0, 1, 1] and pay.item() == pytest.approx(3.0)


def _largest_gain_on_grid(mech, values: torch.Tensor, util: torch.Tensor,
                          points: int) -> float:
    """Largest utility gain over truthful bidding of any bidder reporting any point of a
    ``points`` x ``points`` grid on [0, 1]^2 (two goods), the others truthful."""
    grid = torch.linspace(0, 1, points, dtype=torch.float64)
    best = -float("inf")
    for i in range(values.shape[1]):
        for a in grid:
            for b in grid:
                lie = values.clone()
                lie[:, i] = torch.stack([a, b])
                x, p = mech(lie)
                gain = (values[:, i] * x[:, i]).sum(-1) - p[:, i] - util[:, i]
                best = max(best, float(gain.max()))
    return best


def test_separable_opt_is_truthful():
    s = get_setting("U-3x2-cp1-cd0")
    mech = SeparableOPT(s)
    v = torch.as_tensor(s.sample(200, 1))
    util = s.utilities(v, *mech(v))
    assert (util > -1e-9).all()
    assert _largest_gain_on_grid(mech, v, util, 21) < 1e-6


def test_bundle_opt_price():
    s = get_setting("U-1x10-cp0-cd0")
    price, value = best_bundle_price(s)
    assert 3.8 < price < 4.1 and value == pytest.approx(3.448, abs=0.02)
    assert best_bundle_price(get_setting("U-3x2-cp1-cd0"))[0] == float("inf")
    mech = BundleOPT(get_setting("U-3x2-cp1-cd0"))
    alloc, pay = mech(torch.ones(2, 3, 2))
    assert alloc.sum() == 0 and pay.sum() == 0



def test_shared_bundle_opt_with_one_good_is_separable_opt():
    """With m = 1 the grand bundle is the good, so the empirical-law Shared-Bundle-OPT
    must reproduce Separable-OPT's closed form (U[0,1]: phi(v) = 2v - 1) up to sampling."""
    s = get_setting("U-3x1-cp1-cd0")
    bids = torch.tensor([[[0.9], [0.8], [0.1]], [[0.6], [0.55], [0.3]]], dtype=torch.float64)
    alloc, pay = SharedBundleOPT(s)(bids)
    ref_alloc, ref_pay = SeparableOPT(s)(bids)
    assert torch.equal(alloc, ref_alloc)     # profile 2: phi = 0.2 + 0.1 < 1, nobody
    # the empirical revenue curve's hull on 2^19 draws: thresholds within 0.01
    assert pay.flatten().tolist() == pytest.approx(ref_pay.flatten().tolist(), abs=1e-2)
    assert pay[0, :2].tolist() == pytest.approx([0.7, 0.6], abs=1e-2)


def test_shared_bundle_opt_is_truthful_and_shares_the_cost():
    s = get_setting("U-3x2-cp1-cd0")
    mech = SharedBundleOPT(s)
    v = torch.as_tensor(s.sample(200, 1))
    alloc, pay = mech(v)
    util = s.utilities(v, alloc, pay)
    assert (util > -1e-9).all()
    assert ((alloc == 0) | (alloc == 1)).all() and (alloc.amin(-1) == alloc.amax(-1)).all()
    served = alloc[..., 0].sum(-1)
    # the buyers cover the bundle's production cost m c_p = 2 whenever it is made
    assert (pay.sum(-1)[served > 0] >= 2.0 - 1e-9).all()
    assert _largest_gain_on_grid(mech, v, util, 11) < 1e-9


def test_shared_bundle_opt_beats_both_paper_baselines_on_3x10_cp1():
    """U-3x10-cp1-cd0: one posted bundle price earns 0.36 and Separable-OPT 1.30; letting
    each bidder's bundle price fall as the others' values rise earns about 1.52."""
    from automech import evaluate

    s = get_setting("U-3x10-cp1-cd0")
    shared = evaluate(SharedBundleOPT(s), s, samples=8192, search=None).objective_value
    separable = evaluate(SeparableOPT(s), s, samples=8192, search=None).objective_value
    assert shared > separable + 0.15 and shared == pytest.approx(1.52, abs=0.05)

def _random_nets():
    for seed in range(3):
        net = PartialGroupMaxNet(4, 6, groups=(8, 8), group_size=3, seed=seed).double()
        torch.manual_seed(seed)
        for p in net.parameters():   # random parameters, not just the initialisation
            p.data.add_(0.5 * torch.randn_like(p))
        yield net


def test_partial_groupmax_convex_in_x():
    for net in _random_nets():
        y = torch.rand(500, 6, dtype=torch.float64)
        a = 2 * torch.rand(500, 4, dtype=torch.float64) - 0.5
        b = 2 * torch.rand(500, 4, dtype=torch.float64) - 0.5
        lam = torch.rand(500, 1, dtype=torch.float64)
        with torch.no_grad():
            mid = net(lam * a + (1 - lam) * b, y)
            chord = lam.squeeze(1) * net(a, y) + (1 - lam.squeeze(1)) * net(b, y)
        assert (mid <= chord + 1e-10).all()
        # not convex in y in general (the point of "partial"): just check it varies
        assert not torch.allclose(net(a, y), net(a, torch.rand_like(y)))


def _mech(setting_name: str, seed: int) -> TEDIMechanism:
    mech = TEDIMechanism(get_setting(setting_name), groups=(8, 8), pan_hidden=16,
                         init_seed=seed)
    torch.manual_seed(seed)
    for p in mech.parameters():
        p.data.add_(0.3 * torch.randn_like(p))
    return mech


def test_no_buy_no_pay_and_ir():
    for seed in range(2):
        mech = _mech("U-2x3-cp0-cd0", seed)
        s = mech.setting
        v = torch.as_tensor(s.sample(100, seed), dtype=torch.float32)
        b = 100
        params = mech.net.affine(mech.others(v).reshape(2 * b, -1))
        with torch.no_grad():
            assert mech.prices(torch.zeros(2 * b, 1, 3), params).abs().max() == 0
            alloc, pay = mech(v)
        assert (s.utilities(v, alloc, pay) >= -1e-5).all()
        assert ((alloc >= 0) & (alloc <= 1)).all()
        zero_bid = v.clone()
        zero_bid[:, 0] = 0.0
        with torch.no_grad():
            a0, p0 = mech(zero_bid)
        assert (p0[:, 0] <= 1e-5).all()    # nothing valued: pays nothing (no-buy-no-pay)


def test_inferred_mechanism_is_truthful():
    """Random misreports never beat the truth by more than the solver's tolerance."""
    for seed in range(2):
        mech = _mech("U-2x3-cp0-cd0", seed)
        s = mech.setting
        v = torch.as_tensor(s.sample(40, 10 + seed), dtype=torch.float32)
        with torch.no_grad():
            truth = s.utilities(v, *mech(v))
            gen = torch.Generator().manual_seed(seed)
            worst = 0.0
            for _ in range(8):
                lie = v.clone()
                lie[:, 0] = torch.rand(40, 3, generator=gen)
                x, p = mech(lie)
                gain = (v[:, 0] * x[:, 0]).sum(-1) - p[:, 0] - truth[:, 0]
                worst = max(worst, float(gain.max()))
        assert worst < 5e-3


def test_solver_matches_brute_force_on_one_good():
    mech = _mech("U-1x1-cp0-cd0", 0)
    v = torch.linspace(0, 1, 41).view(-1, 1, 1)
    with torch.no_grad():
        alloc, pay = mech(v)
        params = mech.net.affine(v.new_zeros(41, 0))
        grid = torch.linspace(0, 1, 2001).view(1, -1, 1)
        prices = mech.prices(grid.expand(1, -1, -1), params)          # (1, G)
        best = (v.view(-1, 1) * grid.view(1, -1) - prices).max(dim=1).values
    util = (v.view(-1) * alloc.view(-1) - pay.view(-1))
    assert (best - util).max() < 2e-3


@pytest.mark.parametrize("samples", [2, 4])
def test_covariance_gradient_matches_finite_difference(samples):
    """On a tiny problem (1 bidder, 1 good) the covariance-trick gradient with exact
    samples from q^beta (2 chains per profile: Eq. 12; 4: the sample-covariance form)
    equals a finite-difference derivative of the smoothed objective (Eq. 9), computed by
    quadrature."""
    torch.manual_seed(0)
    s = get_setting("U-1x1-cp0-cd0.1")
    mech = TEDIMechanism(s, groups=(4,), group_size=3, pan_hidden=4, init_seed=1).double()
    beta = 8.0
    values = torch.tensor([[[0.3]], [[0.7]], [[0.9]]], dtype=torch.float64)
    grid = torch.linspace(0, 1, 4001, dtype=torch.float64)

    def smoothed() -> torch.Tensor:
        params = mech.net.affine(values.new_zeros(1, 0))
        pay = mech.prices(grid.view(1, -1, 1), params).view(-1)        # (G,)
        total = 0.0
        for v in values.view(-1):
            u = v * grid - pay
            w = torch.softmax(beta * u, 0)                             # q^beta on the grid
            total = total + (w * (pay - 0.1 * grid)).sum()
        return total / len(values)

    theta = mech.net.d_heads[0].bias                                   # the linear price
    with torch.no_grad():
        eps = 1e-5
        theta += eps
        up = smoothed()
        theta -= 2 * eps
        down = smoothed()
        theta += eps
    fd = float((up - down) / (2 * eps))
    # exact samples from q^beta by inverse CDF on the grid, many per profile and chain
    with torch.no_grad():
        params = mech.net.affine(values.new_zeros(1, 0))
        pay = mech.prices(grid.view(1, -1, 1), params).view(-1)
    k = 20000
    gen = torch.Generator().manual_seed(0)
    draws = [[] for _ in range(samples)]
    for v in values.view(-1):
        cdf = torch.cumsum(torch.softmax(beta * (v * grid - pay), 0), 0)
        for chain in draws:
            idx = torch.searchsorted(cdf, torch.rand(k, generator=gen, dtype=torch.float64))
            chain.append(grid[idx.clamp(max=len(grid) - 1)])
    chains = torch.stack([torch.stack(d, 1).view(k * 3, 1, 1) for d in draws])   # (K, B, 1, 1)
    vals = values.repeat(k, 1, 1)
    mech.zero_grad()
    surrogate, _ = covariance_loss(mech, vals, chains, beta)
    surrogate.backward()
    est = float(theta.grad.sum())
    assert est == pytest.approx(fd, abs=0.05 * abs(fd) + 0.01)


def test_hand_written_gradient_matches_autograd():
    for net in _random_nets():
        y = torch.rand(7, 6, dtype=torch.float64)
        params = [tuple(None if t is None else t.detach() for t in p) for p in net.affine(y)]
        x = torch.rand(7, 5, 4, dtype=torch.float64)
        for tau in (0.0, 0.05):
            val, grad = net.value_and_grad(x, params, tau)
            xx = x.clone().requires_grad_(True)
            ref = net.evaluate(xx, params, tau)
            (ref_grad,) = torch.autograd.grad(ref.sum(), xx)
            assert torch.allclose(val, ref.detach()) and torch.allclose(grad, ref_grad)


def _lp_utility(mech: TEDIMechanism, v: np.ndarray, params, row: int) -> float:
    """max_x <v, x> - p(x) over the box by the exact LP of the (nonnegative-weight)
    GroupMax network: epigraph variables z_k >= every piece of group k, and one for the
    fee term's max_j x_j."""
    from scipy.optimize import linprog
    e = mech.net.group_size
    layers = [tuple(None if t is None else t[0 if t.shape[0] == 1 else row].double().numpy()
                    for t in p) for p in params]
    m = len(v)
    sizes = [layer[0].shape[0] // e for layer in layers[:-1]] + [1]
    offs = np.cumsum([m, *sizes])
    c = np.zeros(offs[-1])
    w_last, _, d_last, fee = layers[-1]
    c[:m] = -v + (d_last[0] if d_last is not None else 0.0)
    c[offs[-3]:offs[-2]] = w_last[0]
    c[offs[-1] - 1] = fee[0] if fee is not None else 0.0
    rows, rhs, prev = [], [], (0, m)
    for j, (w, b, *_) in enumerate(layers[:-1]):
        a = np.zeros((w.shape[0], offs[-1]))
        a[:, prev[0]:prev[1]] = w
        for g in range(sizes[j]):
            a[g::sizes[j], offs[j] + g] = -1.0       # group g holds units e * G + g
        rows.append(a)
        rhs.append(-b)
        prev = (offs[j], offs[j + 1])
    a = np.zeros((m, offs[-1]))                      # z_fee >= x_j
    a[:, :m] = np.eye(m)
    a[:, -1] = -1.0
    rows.append(a)
    rhs.append(np.zeros(m))
    res = linprog(c, A_ub=np.vstack(rows), b_ub=np.concatenate(rhs),
                  bounds=[(0, 1)] * m + [(None, None)] * (offs[-1] - m), method="highs")
    x = torch.tensor(res.x[:m]).view(1, 1, m)
    with torch.no_grad():
        one = [tuple(None if t is None else t[row:row + 1] if t.shape[0] > 1 else t for t in p)
               for p in params]
        util = float((torch.tensor(v) * x).sum() - mech.prices(x, one).squeeze())
    return max(0.0, util)


def test_solver_matches_exact_lp():
    """The inference solver's utility is within 1e-4 of the LP optimum on random networks."""
    for name, seed in (("U-2x4-cp0-cd0", 0), ("U-1x5-cp0-cd0", 1)):
        mech = _mech(name, seed).double()
        s = mech.setting
        n, m = s.shape
        v = torch.as_tensor(s.sample(15, seed + 3), dtype=torch.float64)
        types = v.reshape(-1, m)
        with torch.no_grad():
            params = mech.net.affine(mech.others(v).reshape(len(types), -1))
            x, p = mech.solve(types, params)
        util = (types * x).sum(-1) - p
        exact = torch.tensor([_lp_utility(mech, types[r].numpy(), params, r)
                              for r in range(len(types))], dtype=torch.float64)
        assert (util <= exact + 1e-7).all()
        assert (exact - util).max() < 1e-4


def test_keep_best_returns_the_best_validated_mechanism(tmp_path):
    """With ``keep_best`` the trained mechanism is the one whose validation objective was
    the best logged (the start included), and the step it came from is recorded."""
    from automech.experiment import train
    from automech.training.trainer import GradientMethod

    s = get_setting("U-1x2-cp0-cd0")
    opts = dict(steps=30, batch_size=128, validate_every=10, validation_samples=256,
                checkpoint_every=10**6, groups=[4], pan_hidden=8, solver_steps=60,
                keep_best=True, chains=3)
    mech, run = train(s, "tedi", opts, seed=0, out=tmp_path / "run", search=None,
                      eval_samples=256)
    history = run.history()
    vals = {r["step"]: r["val_objective"] for r in history if "val_objective" in r}
    selected = [r for r in history if "selected_step" in r]
    assert sorted(vals) == [0, 10, 20, 30] and len(selected) == 1
    best_step = max(vals, key=vals.get)
    assert selected[0]["selected_step"] == best_step
    validation = torch.as_tensor(s.sample(256, np.random.default_rng([0, 1])),
                                 dtype=mech.dtype)
    assert GradientMethod.validate(mech, validation)["val_objective"] == pytest.approx(
        vals[best_step], abs=1e-6)


def test_metropolis_moves_reach_q_beta_from_stale_chains():
    """Chains all started at x = (1, 1) (as left by an earlier mechanism) are distributed
    as q^beta(x) ~ exp(beta u(x)) on [0, 1]^2 after the coordinate and scale moves: the
    empirical CDFs of x_1 and of max_j x_j match the ones computed by quadrature."""
    from automech.methods.tedi import metropolis

    s = get_setting("U-1x2-cp0-cd0")
    mech = TEDIMechanism(s, groups=(4,), group_size=3, pan_hidden=4, init_seed=1).double()
    beta, k = 20.0, 4000
    values = torch.tensor([[[0.3, 0.8]], [[0.7, 0.6]]], dtype=torch.float64)
    chains = torch.ones(k, 2, 1, 2, dtype=torch.float64)
    scales = torch.full((k, 2, 1, 3), 0.1, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    moved, _ = metropolis(mech, values, chains, scales, beta, 300, gen)
    axis = (torch.arange(400, dtype=torch.float64) + 0.5) / 400
    grid = torch.cartesian_prod(axis, axis)                              # (G, 2) cells
    with torch.no_grad():
        params = mech.net.affine(values.new_zeros(1, 0))
        pay = mech.prices(grid.unsqueeze(0), params).view(-1)
    points = torch.linspace(0, 1, 101, dtype=torch.float64)
    for p, v in enumerate(values[:, 0]):
        weight = torch.softmax(beta * (grid @ v - pay), 0)
        for stat, of_grid in ((moved[:, p, 0, 0], grid[:, 0]),
                              (moved[:, p, 0].amax(-1), grid.amax(-1))):
            cdf = ((of_grid.unsqueeze(0) <= points.unsqueeze(1)) * weight).sum(1)
            empirical = (stat.unsqueeze(0) <= points.unsqueeze(1)).double().mean(1)
            assert float((empirical - cdf).abs().max()) < 0.04


def test_auto_start_is_the_better_classical_menu():
    """``init="auto"`` starts U-1x10 (pure bundle 3.448 > separable 2.5) at the bundle
    price and B-1x10 (separable 5.0 > bundle 3.31) with linear prices; the bundle start
    earns Bundle-OPT's utility before any training."""
    from automech import evaluate
    from automech.errors import AutomechError
    from automech.mechanisms.classical.cost_baselines import best_bundle_price

    meth = METHODS["tedi"]
    u, b = get_setting("U-1x10-cp0-cd0"), get_setting("B-1x10-cp0-cd0")
    assert meth.resolve(u, dict(meth.defaults))["init"] == "bundle"
    assert meth.resolve(b, dict(meth.defaults))["init"] == "linear"
    small = dict(meth.defaults, init="bundle", groups=[4], pan_hidden=8)
    mech = meth.build(u, meth.resolve(u, small), seed=0)
    start = evaluate(mech, u, samples=4096, search=None).objective_value
    assert start == pytest.approx(best_bundle_price(u)[1], abs=0.1)
    with pytest.raises(AutomechError, match="init"):
        meth.resolve(u, dict(meth.defaults, init="random"))
    with pytest.raises(AutomechError, match="skip"):
        meth.resolve(u, dict(meth.defaults, init="separable", skip=False))
    with pytest.raises(AutomechError, match="fee"):
        meth.resolve(u, dict(meth.defaults, init="bundle", fee=False))
    with pytest.raises(AutomechError, match="recipe"):
        meth.resolve(u, dict(meth.defaults, recipe="discrete"))
    with pytest.raises(AutomechError, match="fee"):
        meth.resolve(u, dict(meth.defaults, init="shared-bundle", fee=False))
    for key in ("init_steps", "burn_in"):
        with pytest.raises(AutomechError, match=key):
            meth.resolve(u, dict(meth.defaults, **{key: -1}))
    with pytest.raises(AutomechError, match="chain_start"):
        meth.resolve(u, dict(meth.defaults, chain_start="mode"))
    for bad in ({"snapshots": 0}, {"snapshots": 3}, {"snapshots": 2, "metropolis_steps": 0}):
        with pytest.raises(AutomechError, match="snapshots"):
            meth.resolve(u, dict(meth.defaults, **bad))
    atoms = meth.resolve(b, dict(meth.defaults))
    assert atoms["recipe"] == "atoms" and atoms["temperature_final"] == 1000.0


def test_separable_start_earns_what_separable_opt_earns(tmp_path):
    """``init="auto"`` starts the 3x10 rows (Separable-OPT 1.30 / 1.87 > Bundle-OPT 0.37 /
    0.47) and U-3x2-cp1-cd0 from Separable-OPT's threshold prices; the distilled network, before any
    training step, earns close to Separable-OPT on the same profiles (far above the linear
    start, which loses money there)."""
    from automech import evaluate
    from automech.runs import open_run

    meth = METHODS["tedi"]
    for name in ("U-3x10-cp1-cd0", "U-3x10-cp0-cd0.5"):
        assert meth.resolve(get_setting(name), dict(meth.defaults))["init"] == "separable"
    s = get_setting("U-3x2-cp1-cd0")
    opts = meth.resolve(s, dict(meth.defaults, groups=[4], pan_hidden=32, init_steps=600,
                                batch_size=512, solver_steps=100))
    assert opts["init"] == "separable"
    linear = meth.build(s, dict(opts, init="linear"), seed=0)
    mech = meth.build(s, opts, seed=0)
    run = open_run(tmp_path / "run", {"setting": s.to_dict()})
    meth.initialise(mech, s, opts, seed=0, run=run)
    assert run.read_json("init.json")["threshold_rmse"] < 0.05
    start = evaluate(mech, s, samples=8192, search=None).objective_value
    separable = evaluate(SeparableOPT(s), s, samples=8192, search=None).objective_value
    base = evaluate(linear, s, samples=8192, search=None).objective_value
    assert start > separable - 0.05 and start > base + 0.05


def test_shared_bundle_start_earns_more_than_separable_opt(tmp_path):
    """``init="shared-bundle"`` on U-3x10-cp1-cd0 (Shared-Bundle-OPT 1.52 > Separable-OPT
    1.30): its grand-bundle prices given ``t_-i`` distilled into the entry fee earn more
    than Separable-OPT before any training step."""
    from automech import evaluate
    from automech.runs import open_run

    meth = METHODS["tedi"]
    s = get_setting("U-3x10-cp1-cd0")
    opts = meth.resolve(s, dict(meth.defaults, init="shared-bundle", groups=[4],
                                batch_size=512, solver_steps=100))
    mech = meth.build(s, opts, seed=0)
    run = open_run(tmp_path / "run", {"setting": s.to_dict()})
    meth.initialise(mech, s, opts, seed=0, run=run)
    assert run.read_json("init.json")["threshold_rmse"] < 0.3
    start = evaluate(mech, s, samples=4096, search=None).objective_value
    separable = evaluate(SeparableOPT(s), s, samples=4096, search=None).objective_value
    assert start > separable + 0.05


def test_burn_in_moves_the_chains_before_the_first_step():
    """``burn_in`` rounds of chain moves at beta_0 run when the pool is drawn: the chains
    leave the uniform start for q^beta, so their mean utility rises; ``burn_in=0`` leaves
    them uniform (and the run is what it was before the option existed)."""
    meth = METHODS["tedi"]
    s = get_setting("U-1x10-cp0-cd0")
    mean_utility = {}
    for rounds in (0, 20):
        opts = meth.resolve(s, dict(meth.defaults, burn_in=rounds, batch_size=256))
        mech = meth.build(s, opts, seed=0)
        values = meth.sample(mech, s, opts, np.random.default_rng(0), step=0)
        chains = meth.state["chains"]                                    # (K, B, 1, m)
        with torch.no_grad():
            params = mech.net.affine(values.new_zeros(1, 0))
            pay = mech.prices(chains.reshape(1, -1, s.num_items), params).view(chains.shape[:2])
        mean_utility[rounds] = float(((values.unsqueeze(0) * chains).sum((-1, -2)) - pay).mean())
    assert mean_utility[20] > mean_utility[0] + 0.2


def test_chain_start_choice_puts_the_chains_on_the_exact_choices():
    """``chain_start="choice"``: every chain starts at its bidder's exact choice under the
    starting mechanism, not uniform: under the bundle at Bundle-OPT's price (fee
    ``c max_j x_j``) most chains hold the whole bundle or nothing (types near the price
    are nearly indifferent along the diagonal, so the solver may stop in between)."""
    meth = METHODS["tedi"]
    s = get_setting("U-1x10-cp0-cd0")
    opts = meth.resolve(s, dict(meth.defaults, init="bundle", chain_start="choice",
                                batch_size=256))
    mech = meth.build(s, opts, seed=0)
    values = meth.sample(mech, s, opts, np.random.default_rng(0), step=0)
    chains = meth.state["chains"]                                        # (K, B, 1, m)
    with torch.no_grad():
        choice, _ = mech(values)
    assert chains.shape == (2, *values.shape)
    assert torch.equal(chains[0], choice) and torch.equal(chains[1], choice)
    share = choice.amax(-1)
    bought, none = share > 0.99, share < 0.01
    assert bought.any() and none.any() and (bought | none).float().mean() > 0.9


def test_snapshots_are_points_along_the_metropolis_rounds():
    """``snapshots=S``: one round of chain moves leaves S samples per chain, taken after
    each of S equal parts of the Metropolis rounds; the last is the chain's new position,
    the earlier ones differ from it (the chains move between them), and before any move
    all S are the starting point (so the first step's estimate is the S = 1 one)."""
    meth = METHODS["tedi"]
    s = get_setting("U-3x2-cp1-cd0")
    opts = meth.resolve(s, dict(meth.defaults, snapshots=5, batch_size=64))
    mech = meth.build(s, opts, seed=0)
    meth.sample(mech, s, opts, np.random.default_rng(0), step=0)
    st = meth.state
    assert st["samples"].shape == (2, 5, *st["pool"].shape)
    assert torch.equal(st["samples"][:, 0], st["chains"])
    assert torch.equal(st["samples"][:, 4], st["chains"])
    meth.move_chains(mech, opts, torch.arange(64), 50.0, 0.01)
    assert torch.equal(st["samples"][:, 4], st["chains"])
    for j in range(4):
        assert not torch.equal(st["samples"][:, j], st["chains"])
