"""TEDI (Ma et al., AAMAS 2026): settings family, cost baselines, Partial GroupMax Network,
menu inference, and the covariance-trick gradient."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from automech import RegretSearch, evaluate, get_setting
from automech.errors import OptionError
from automech.mechanisms.classical.cost_baselines import (
    BundleOPT,
    SeparableOPT,
    SharedBundleOPT,
    best_bundle_price,
)
from automech.mechanisms.learned.tedi import PartialGroupMaxNet, TEDIMechanism
from automech.methods import METHODS
from automech.methods.tedi import covariance_loss
from automech.training import FitContext


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
    alloc, pay = mech(bids)  # phi = 0.8, 0.6, <0: sum 1.4 >= 1, both top served
    assert alloc.flatten().tolist() == [1.0, 1.0, 0.0]
    # bidder 0's threshold: phi >= 1 - 0.6 = 0.4 -> v = 0.7; bidder 1: phi >= 0.2 -> 0.6
    assert pay.flatten()[:2].tolist() == pytest.approx([0.7, 0.6], abs=1e-3)
    # Bernoulli: sell at price 1
    s = get_setting("B-1x4-cp0-cd0")
    alloc, pay = SeparableOPT(s)(torch.tensor([[[1.0, 0.0, 1.0, 1.0]]]))
    assert alloc.flatten().tolist() == [1, 0, 1, 1] and pay.item() == pytest.approx(3.0)


def _largest_gain_on_grid(mech, values: torch.Tensor, util: torch.Tensor, points: int) -> float:
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
    assert torch.equal(alloc, ref_alloc)  # profile 2: phi = 0.2 + 0.1 < 1, nobody
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


def _irwin_hall_virtual_value(s: np.ndarray, m: int) -> np.ndarray:
    """phi(s) = s - (1 - F(s)) / f(s) for s = the sum of m U[0, 1] (Irwin-Hall law),
    from its closed-form CDF and density; the law is symmetric about m / 2, so the
    tail 1 - F(s) is computed as F(m - s), precise where it is small."""

    def cdf(x):
        return sum(
            (-1) ** k * math.comb(m, k) * np.clip(x - k, 0.0, None) ** m for k in range(m + 1)
        ) / math.factorial(m)

    def pdf(x):
        x = np.minimum(x, m - x)
        return sum(
            (-1) ** k * math.comb(m, k) * np.clip(x - k, 0.0, None) ** (m - 1) for k in range(m)
        ) / math.factorial(m - 1)

    return s - cdf(m - s) / pdf(s)


def test_cost_baselines_earn_their_closed_form_optima_on_3x10_cp1():
    """U-3x10-cp1-cd0 (3 bidders, 10 goods, U[0, 1], production cost 1 per good made):
    both baselines are Myerson-optimal in their class, so each earns its expected
    virtual surplus, computed here independently of the mechanisms.

    * Separable-OPT, per good with phi(v) = 2v - 1: E[(sum_i (2 v_i - 1)^+ - 1)^+].  With
      K ~ Bin(3, 1/2) positive terms, each U[0, 1], the sum is Irwin-Hall(K) and
      E[(IH_K - 1)^+] = K / 2 - 1 + 1 / (K + 1)!, so per good 3/8 * 1/6 + 1/8 * 13/24 =
      25/192: 250/192 = 1.302 for the ten goods.
    * Shared-Bundle-OPT, the grand bundle as one excludable public good of cost 10:
      E[(sum_i phi(s_i)^+ - 10)^+] with phi the virtual value of the bundle value s_i
      (Irwin-Hall(10), log-concave hence regular), by Monte Carlo on fresh draws.

    Sharing the production cost earns clearly more than selling good by good."""

    s = get_setting("U-3x10-cp1-cd0")
    shared = evaluate(SharedBundleOPT(s), s, samples=8192, search=None)
    separable = evaluate(SeparableOPT(s), s, samples=8192, search=None)
    assert separable.objective == shared.objective == "revenue-minus-cost"
    assert abs(separable.objective_value - 250 / 192) < 4 * separable.objective_se
    sums = np.random.default_rng(2024).random((2**17, 3, 10)).sum(-1)
    surplus = np.maximum(_irwin_hall_virtual_value(sums, 10), 0.0).sum(-1)
    optimum = np.maximum(surplus - 10.0, 0.0)
    exact, exact_se = optimum.mean(), optimum.std() / math.sqrt(len(optimum))
    # phi of the mechanism is that of the empirical law of 2^19 draws: a small bias
    tolerance = 4 * math.hypot(shared.objective_se, exact_se) + 0.01
    assert abs(shared.objective_value - exact) < tolerance, (shared.objective_value, exact)
    assert exact > 250 / 192 + 0.2


def _random_nets():
    for seed in range(3):
        net = PartialGroupMaxNet(4, 6, groups=(8, 8), group_size=3, seed=seed).double()
        torch.manual_seed(seed)
        for p in net.parameters():  # random parameters, not just the initialisation
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
    """A TEDI mechanism with random parameters, the same for the same seed whatever ran
    before (the network's ``nn.Linear`` weights draw from torch's global generator, not
    from ``init_seed``)."""
    torch.manual_seed(seed)
    mech = TEDIMechanism(get_setting(setting_name), groups=(8, 8), pan_hidden=16, init_seed=seed)
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
        assert (p0[:, 0] <= 1e-5).all()  # nothing valued: pays nothing (no-buy-no-pay)


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


def test_save_load_gives_identical_outcomes(tmp_path):
    """A TEDI mechanism (random parameters, a non-default solver) comes back from
    ``automech.save`` / ``automech.load`` with its config and the very same outcomes."""
    import automech

    s = get_setting("U-2x2-cp0-cd0")
    torch.manual_seed(2)
    mech = TEDIMechanism(s, groups=(8, 8), pan_hidden=16, solver_steps=120, init_seed=2)
    torch.manual_seed(2)
    for p in mech.parameters():
        p.data.add_(0.3 * torch.randn_like(p))
    automech.save(mech, tmp_path / "run")
    loaded = automech.load(tmp_path / "run")
    assert type(loaded) is TEDIMechanism and loaded.config() == mech.config()
    assert loaded.config()["solver_steps"] == 120
    for (k, x), y in zip(mech.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(x, y), k
    bids = s.sample(200, 3)
    for x, y in zip(mech.outcome(bids), loaded.outcome(bids)):
        np.testing.assert_array_equal(x, y)


#: every stage, small: each misreport costs TEDI an inner solve
TEDI_SEARCH = RegretSearch(
    profiles=8, random=12, scales=4, grid=4, line_points=8, local_steps=4, local_samples=2
)


def test_shared_protocol_regret_is_nearly_zero():
    """TEDI is DSIC by construction up to the inference solver: the evaluator's misreport
    search (random points, scaled truths and a grid, for each bidder) finds no regret
    beyond the solver's tolerance on a random mechanism, and IR holds exactly.  The same
    search finds regret once payments rise with the bids (negative control)."""
    s = get_setting("U-2x2-cp0-cd0")
    mech = _mech("U-2x2-cp0-cd0", 2)
    report = evaluate(mech, s, samples=50, search=TEDI_SEARCH)
    assert report.regret_samples == 8
    assert report.regret_max < 1e-4 and report.ir_violation_rate == 0.0

    class Broken(TEDIMechanism):
        def forward(self, bids):
            alloc, pay = super().forward(bids)
            return alloc, pay + 0.3 * alloc.mean(-1) * bids.sum(-1)

    broken = Broken(s, groups=(8, 8), pan_hidden=16, init_seed=2)
    broken.load_state_dict(mech.state_dict())
    assert evaluate(broken, s, samples=50, search=TEDI_SEARCH).regret_max > 0.05


def test_what_holds_for_payments():
    """What the docs promise about payments, on random mechanisms: IR (a buyer never pays
    more than its bundle is worth to it) and no-buy-no-pay (nothing allocated, nothing
    paid).  Nothing bounds a payment from below: see the next test."""
    for seed in range(3):
        mech = _mech("U-2x2-cp0-cd0", seed)
        s = mech.setting
        v = torch.as_tensor(s.sample(120, seed), dtype=torch.float32)
        with torch.no_grad():
            alloc, pay = mech(v)
        assert (pay <= (v * alloc).sum(-1) + 1e-5).all()  # IR
        nothing = alloc.abs().amax(-1) == 0
        assert nothing.any() and (pay[nothing] == 0).all()  # no-buy-no-pay


def test_a_tedi_menu_may_pay_a_bidder_and_stays_ir():
    """Prices p(x) = f(x) - f(0) of a convex f may be negative (documented in
    mechanisms/learned/tedi.py): a perturbed menu pays some bidders, and every bidder's
    utility is still >= 0 with the null outcome free."""
    mech = _mech("U-2x2-cp0-cd0", 2)
    v = torch.as_tensor(mech.setting.sample(200, 2), dtype=torch.float32)
    with torch.no_grad():
        alloc, pay = mech(v)
    assert float(pay.min()) < 0.0  # the principal pays someone
    utility = (alloc * v).sum(-1) - pay
    assert float(utility.min()) >= -1e-6
    assert torch.all(pay[alloc.sum(-1) == 0] == 0)  # no buy, no pay


def test_solver_matches_brute_force_on_one_good():
    mech = _mech("U-1x1-cp0-cd0", 0)
    v = torch.linspace(0, 1, 41).view(-1, 1, 1)
    with torch.no_grad():
        alloc, pay = mech(v)
        params = mech.net.affine(v.new_zeros(41, 0))
        grid = torch.linspace(0, 1, 2001).view(1, -1, 1)
        prices = mech.prices(grid.expand(1, -1, -1), params)  # (1, G)
        best = (v.view(-1, 1) * grid.view(1, -1) - prices).max(dim=1).values
    util = v.view(-1) * alloc.view(-1) - pay.view(-1)
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
        pay = mech.prices(grid.view(1, -1, 1), params).view(-1)  # (G,)
        total = 0.0
        for v in values.view(-1):
            u = v * grid - pay
            w = torch.softmax(beta * u, 0)  # q^beta on the grid
            total = total + (w * (pay - 0.1 * grid)).sum()
        return total / len(values)

    theta = mech.net.d_heads[0].bias  # the linear price
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
    chains = torch.stack([torch.stack(d, 1).view(k * 3, 1, 1) for d in draws])  # (K, B, 1, 1)
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
    layers = [
        tuple(None if t is None else t[0 if t.shape[0] == 1 else row].double().numpy() for t in p)
        for p in params
    ]
    m = len(v)
    sizes = [layer[0].shape[0] // e for layer in layers[:-1]] + [1]
    offs = np.cumsum([m, *sizes])
    c = np.zeros(offs[-1])
    w_last, _, d_last, fee = layers[-1]
    c[:m] = -v + (d_last[0] if d_last is not None else 0.0)
    c[offs[-3] : offs[-2]] = w_last[0]
    c[offs[-1] - 1] = fee[0] if fee is not None else 0.0
    rows, rhs, prev = [], [], (0, m)
    for j, (w, b, *_) in enumerate(layers[:-1]):
        a = np.zeros((w.shape[0], offs[-1]))
        a[:, prev[0] : prev[1]] = w
        for g in range(sizes[j]):
            a[g :: sizes[j], offs[j] + g] = -1.0  # group g holds units e * G + g
        rows.append(a)
        rhs.append(-b)
        prev = (offs[j], offs[j + 1])
    a = np.zeros((m, offs[-1]))  # z_fee >= x_j
    a[:, :m] = np.eye(m)
    a[:, -1] = -1.0
    rows.append(a)
    rhs.append(np.zeros(m))
    res = linprog(
        c,
        A_ub=np.vstack(rows),
        b_ub=np.concatenate(rhs),
        bounds=[(0, 1)] * m + [(None, None)] * (offs[-1] - m),
        method="highs",
    )
    x = torch.tensor(res.x[:m]).view(1, 1, m)
    with torch.no_grad():
        one = [
            tuple(None if t is None else t[row : row + 1] if t.shape[0] > 1 else t for t in p)
            for p in params
        ]
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
        exact = torch.tensor(
            [_lp_utility(mech, types[r].numpy(), params, r) for r in range(len(types))],
            dtype=torch.float64,
        )
        assert (util <= exact + 1e-7).all()
        assert (exact - util).max() < 1e-4


def test_keep_best_returns_the_best_validated_mechanism(tmp_path):
    """With ``keep_best`` the trained mechanism is the one whose validation objective was
    the best logged (the start included), and the step it came from is recorded."""
    from automech.experiment import train

    s = get_setting("U-1x2-cp0-cd0")
    opts = dict(
        steps=30,
        batch_size=128,
        validate_every=10,
        validation_samples=256,
        checkpoint_every=10**6,
        groups=[4],
        pan_hidden=8,
        solver_steps=60,
        keep_best=True,
        chains=3,
    )
    mech, run = train(s, "tedi", opts, seed=0, out=tmp_path / "run", search=None, eval_samples=256)
    history = run.history()
    vals = {r["step"]: r["val_objective"] for r in history if "val_objective" in r}
    selected = [r for r in history if "selected_step" in r]
    assert sorted(vals) == [0, 10, 20, 30] and len(selected) == 1
    best_step = max(vals, key=vals.get)
    assert selected[0]["selected_step"] == best_step
    validation = torch.as_tensor(s.sample(256, np.random.default_rng([0, 1])), dtype=mech.dtype)
    assert METHODS["tedi"].validate(mech, validation)["val_objective"] == pytest.approx(
        vals[best_step], abs=1e-6
    )


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
    grid = torch.cartesian_prod(axis, axis)  # (G, 2) cells
    with torch.no_grad():
        params = mech.net.affine(values.new_zeros(1, 0))
        pay = mech.prices(grid.unsqueeze(0), params).view(-1)
    points = torch.linspace(0, 1, 101, dtype=torch.float64)
    for p, v in enumerate(values[:, 0]):
        weight = torch.softmax(beta * (grid @ v - pay), 0)
        for stat, of_grid in (
            (moved[:, p, 0, 0], grid[:, 0]),
            (moved[:, p, 0].amax(-1), grid.amax(-1)),
        ):
            cdf = ((of_grid.unsqueeze(0) <= points.unsqueeze(1)) * weight).sum(1)
            empirical = (stat.unsqueeze(0) <= points.unsqueeze(1)).double().mean(1)
            assert float((empirical - cdf).abs().max()) < 0.04


def _ctx(setting, options, seed: int = 0, run=None) -> FitContext:
    """A fit context for calling TEDI's hooks directly (the trainer's seeding)."""
    meth = METHODS["tedi"]
    opts = meth.resolve(setting, meth.Options.resolve(options))
    ctx = FitContext(setting=setting, options=opts, seed=seed, run=run)
    ctx.rng = np.random.default_rng([seed, 0])
    return ctx


def test_auto_start_is_the_better_classical_menu():
    """``init="auto"`` starts U-1x10 (pure bundle 3.448 > separable 2.5) at the bundle
    price and B-1x10 (separable 5.0 > bundle 3.31) with linear prices; the bundle start
    earns Bundle-OPT's utility before any training.  Inconsistent options are refused
    up front, and so are the options removed as giving no gain."""

    meth = METHODS["tedi"]
    u, b = get_setting("U-1x10-cp0-cd0"), get_setting("B-1x10-cp0-cd0")
    defaults = meth.Options.resolve({})
    assert meth.resolve(u, defaults).init == "bundle"
    assert meth.resolve(b, defaults).init == "linear"
    ctx = _ctx(u, dict(init="bundle", groups=[4], pan_hidden=8))
    mech = meth.build(ctx)
    start = evaluate(mech, u, samples=4096, search=None).objective_value
    assert start == pytest.approx(best_bundle_price(u)[1], abs=0.1)
    bad = [
        ({"init": "random"}, "init"),
        ({"init": "separable", "skip": False}, "skip"),
        ({"init": "bundle", "fee": False}, "fee"),
        ({"recipe": "discrete"}, "recipe"),
        ({"init_steps": -1}, "init_steps"),
        ({"chains": 1}, "chains"),
        ({"groups": []}, "groups"),
        ({"init": "shared-bundle"}, "init"),
    ]
    bad += [
        ({key: value}, key)
        for key, value in (("snapshots", 2), ("burn_in", 5), ("chain_start", "choice"))
    ]  # removed
    for given, key in bad:
        with pytest.raises(OptionError, match=key):
            meth.Options.resolve(given)
    with pytest.raises(OptionError, match="fee"):  # the atoms recipe drops the fee
        meth.resolve(b, meth.Options.resolve({"init": "bundle"}))
    atoms = meth.resolve(b, defaults)
    assert atoms.recipe == "atoms" and atoms.temperature_final == 1000.0 and not atoms.fee
    assert meth.resolve(u, defaults).recipe == "continuous"
    assert meth.Options.meta("temperature")["doc"].startswith("beta_0")


def test_separable_start_earns_what_separable_opt_earns(tmp_path):
    """``init="auto"`` starts the 3x10 rows (Separable-OPT 1.30 / 1.87 > Bundle-OPT 0.37 /
    0.47) and U-3x2-cp1-cd0 from Separable-OPT's threshold prices; the distilled network, before any
    training step, earns close to Separable-OPT on the same profiles (far above the linear
    start, which loses money there)."""
    from automech.runs import open_run

    meth = METHODS["tedi"]
    for name in ("U-3x10-cp1-cd0", "U-3x10-cp0-cd0.5"):
        assert meth.resolve(get_setting(name), meth.Options.resolve({})).init == "separable"
    s = get_setting("U-3x2-cp1-cd0")
    small = dict(groups=[4], pan_hidden=32, init_steps=600, batch_size=512, solver_steps=100)
    run = open_run(tmp_path / "run", {"setting": s.to_dict()})
    ctx = _ctx(s, small, run=run)
    assert ctx.options.init == "separable"
    linear = meth.build(_ctx(s, dict(small, init="linear")))
    mech = meth.build(ctx)
    meth.initialise(mech, ctx)
    assert run.read_json("init.json")["threshold_rmse"] < 0.05
    start = evaluate(mech, s, samples=8192, search=None).objective_value
    separable = evaluate(SeparableOPT(s), s, samples=8192, search=None).objective_value
    base = evaluate(linear, s, samples=8192, search=None).objective_value
    assert start > separable - 0.05 and start > base + 0.05


def test_run_state_lives_in_the_context():
    """``start`` builds the pool and its uniform chains into ``ctx.state`` (nothing on the
    method); ``sample`` cycles through the pool's rows, which ``ctx.state`` keeps."""
    meth = METHODS["tedi"]
    s = get_setting("U-1x10-cp0-cd0")
    ctx = _ctx(s, dict(batch_size=64, train_profiles=160, groups=[4], pan_hidden=8))
    mech = meth.build(ctx)
    ctx.state = meth.start(mech, ctx)
    st = ctx.state
    assert st.pool.shape == (160, 1, 10) and st.chains.shape == (2, 160, 1, 10)
    assert st.scales.shape == (2, 160, 1, 11)
    assert ((st.chains >= 0) & (st.chains <= 1)).all() and st.chains.std() > 0.2
    assert vars(meth) == {}
    rows = []
    for step in range(3):
        ctx.step = step
        values, idx = meth.sample(mech, ctx)
        assert torch.equal(values, st.pool[idx]) and torch.equal(idx, st.indices)
        rows.append(idx)
    assert rows[0].tolist() == list(range(64)) and rows[1][0] == 64
    assert rows[2].tolist() == [(128 + r) % 160 for r in range(64)]


def test_chunked_step_equals_the_whole_batch(tmp_path):
    """With ``chunk_size=32`` and ``batch_size=64`` each chunk's loss uses its own rows'
    chains (``ctx.indices``): the first step's gradient equals the unchunked one up to
    float error, and ``after_step`` moves the chains of the whole batch the same way.
    A short chunked run trains to the end."""
    from automech.experiment import train

    meth = METHODS["tedi"]
    s = get_setting("U-1x10-cp0-cd0")
    small = dict(
        batch_size=64,
        groups=[4, 4],
        pan_hidden=16,
        langevin_steps=2,
        metropolis_steps=2,
        solver_steps=50,
        init="bundle",
    )
    grads, states = {}, {}
    for chunk in (0, 32):
        ctx = _ctx(s, dict(small, chunk_size=chunk))
        torch.manual_seed(0)  # as train(): the network's layers draw from it
        mech = meth.build(ctx)
        ctx.state = meth.start(mech, ctx)
        ctx.step, ctx.temperature = 0, ctx.options.temperature
        values, idx = meth.sample(mech, ctx)
        optimizer = torch.optim.SGD(mech.parameters(), lr=0.0)  # keeps the weights
        meth.step(mech, optimizer, values, idx, ctx)
        grads[chunk] = [p.grad.clone() for p in mech.parameters() if p.grad is not None]
        states[chunk] = ctx.state
    assert len(grads[0]) == len(grads[32]) > 0
    for whole, chunked in zip(grads[0], grads[32]):
        assert torch.allclose(whole, chunked, rtol=1e-4, atol=1e-6)
    assert any(g.abs().max() > 0 for g in grads[0])
    assert torch.allclose(states[0].chains, states[32].chains, atol=1e-5)
    mech, run = train(
        s,
        "tedi",
        dict(small, chunk_size=32, steps=4, validate_every=2, validation_samples=128),
        seed=0,
        out=tmp_path / "run",
        search=None,
        eval_samples=128,
    )
    history = run.history()
    assert max(r.get("step", 0) for r in history) == 4
    assert all(math.isfinite(r["loss"]) for r in history if "loss" in r)


def test_interrupted_run_resumes_exactly(tmp_path, monkeypatch):
    """The run state in ``ctx.state`` (pool, chains, proposal sizes, their generator) is
    checkpointed: a chunked run over a cycled pool, cut after its step-2 checkpoint and
    resumed, ends with the uninterrupted run's parameters."""
    from automech.experiment import train
    from conftest import interrupt_third_step

    s = get_setting("U-1x10-cp0-cd0")
    opts = dict(
        steps=4,
        batch_size=64,
        train_profiles=96,
        chunk_size=32,
        groups=[4],
        pan_hidden=8,
        langevin_steps=2,
        metropolis_steps=2,
        solver_steps=30,
        init="bundle",
        validate_every=2,
        validation_samples=64,
        checkpoint_every=2,
        log_every=1,
        keep_best=False,
    )
    whole, _ = train(s, "tedi", opts, seed=0, out=tmp_path / "whole", search=None, eval_samples=64)
    interrupt_third_step(monkeypatch, METHODS["tedi"])
    with pytest.raises(KeyboardInterrupt):
        train(s, "tedi", opts, seed=0, out=tmp_path / "cut", search=None, eval_samples=64)
    monkeypatch.undo()
    resumed, _ = train(s, "tedi", opts, seed=0, out=tmp_path / "cut", search=None, eval_samples=64)
    for (k, x), y in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(x, y), k
