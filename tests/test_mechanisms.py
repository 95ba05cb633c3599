"""Classical mechanisms: closed-form revenues, exact outcomes on given bids, IR and
feasibility, and the checks on bids at the ``outcome`` boundary."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize, stats

from automech import Setting, evaluate, get_setting
from automech.errors import BidError, NotApplicableError
from automech.mechanisms import (
    CLASSICAL,
    MECHANISMS,
    VCG,
    BundlePostedPrice,
    FirstPrice,
    GrandBundle,
    Myerson,
    PostedPrice,
    SeparateMyerson,
)
from conftest import assert_close, cached_mechanism, cached_setting

SQRT_2_3 = math.sqrt(2 / 3)


def revenue(mechanism: str, setting: str, samples: int, seed: int = 11):
    """Test revenue and its standard error (no misreport search)."""
    report = evaluate(cached_mechanism(mechanism, setting), samples=samples, seed=seed, search=None)
    assert report.regret_mean is None and report.search is None
    return report.revenue, report.revenue_se


# ------------------------------------------------------------------ closed-form revenues


@pytest.mark.parametrize(
    "setting, mechanism, exact, samples",
    [
        ("3x1-uniform", "myerson", 0.53125, 100_000),
        ("2x1-uniform", "myerson", 5 / 12, 100_000),
        ("5x1-uniform", "myerson", 0.671875, 50_000),
        ("1x1-uniform", "myerson", 0.25, 50_000),
        ("2x2-uniform", "separate-myerson", 5 / 6, 100_000),
        ("2x2-uniform", "grand-bundle", 0.839244, 100_000),
        ("2x2-uniform", "vcg", 2 / 3, 100_000),
        ("3x10-uniform", "separate-myerson", 5.3125, 10_000),
        ("3x10-uniform", "grand-bundle", 5.003021, 10_000),
        ("1x2-uniform", "bundle-posted-price", 0.544331, 100_000),
        ("1x2-uniform", "grand-bundle", 0.544331, 100_000),
        ("1x2-uniform", "separate-myerson", 0.5, 100_000),
        ("1x10-uniform", "grand-bundle", 3.448312, 20_000),
    ],
)
def test_closed_form_revenue(setting, mechanism, exact, samples):
    rev, se = revenue(mechanism, setting, samples)
    assert_close(rev, exact, se)


def test_myerson_exponential_three_bidders():
    # Myerson: expected revenue = expected virtual surplus = E[(max_i v_i - 1)^+]
    # for phi(v) = v - 1 (exponential, mean 1), i.e. the integral of P(max > t) over t > 1.
    exact, _ = integrate.quad(lambda t: 1 - (1 - math.exp(-t)) ** 3, 1, math.inf)
    # the same number as the payment rule gives it: P(max >= 1) + int_1^inf P(2nd > t) dt
    second = lambda t: 1 - (1 - math.exp(-t)) ** 3 - 3 * math.exp(-t) * (1 - math.exp(-t)) ** 2  # noqa: E731
    direct = 1 - (1 - math.exp(-1)) ** 3 + integrate.quad(second, 1, math.inf)[0]
    assert exact == pytest.approx(direct, abs=1e-10)
    assert exact == pytest.approx(3 / math.e - 1.5 / math.e**2 + 1 / (3 * math.e**3), abs=1e-10)
    rev, se = revenue("myerson", "3x1-exponential", 100_000)
    assert_close(rev, exact, se)
    m = cached_mechanism("myerson", "3x1-exponential")
    np.testing.assert_allclose(m.reserves.numpy().ravel(), 1.0, atol=1e-6)


def test_asymmetric_uniform_reserves():
    m = cached_mechanism("myerson", "2x1-asym-uniform")  # U[0,1], U[0,2]
    np.testing.assert_allclose(m.reserves.numpy().ravel(), [0.5, 1.0], atol=1e-9)
    m3 = cached_mechanism("myerson", "3x1-asym-uniform")
    np.testing.assert_allclose(m3.reserves.numpy().ravel(), [0.5, 1.0, 1.5], atol=1e-9)
    sep = SeparateMyerson(get_setting("1x2-asym-uniform"))  # U[4,16] x U[4,7]
    # phi(v) = 2v - high (regular); reserve max(low, high/2): 8 and 4
    np.testing.assert_allclose(sep.reserves.numpy(), [[8.0, 4.0]], atol=1e-9)


def test_tuned_prices_match_theory():
    gb = cached_mechanism("grand-bundle", "2x2-uniform")
    assert gb.reserve == pytest.approx(SQRT_2_3, abs=0.02)
    bpp = cached_mechanism("bundle-posted-price", "1x2-uniform")
    assert bpp.price == pytest.approx(SQRT_2_3, abs=0.02)
    pp = cached_mechanism("posted-price", "1x2-uniform")  # 1 bidder: price 1/2 per item
    np.testing.assert_allclose(pp.prices.numpy(), 0.5, atol=0.02)


# ------------------------------------------------------------------ exact outcomes


def test_vcg_hand_bids_are_second_price():
    s = cached_setting("2x2-uniform")
    bids = np.array([[[0.9, 0.2], [0.5, 0.7]], [[0.1, 0.1], [0.3, 0.0]]])
    alloc, pay = VCG(s).outcome(bids)
    np.testing.assert_array_equal(alloc[0], [[1, 0], [0, 1]])
    np.testing.assert_allclose(pay[0], [0.5, 0.2])
    np.testing.assert_array_equal(alloc[1], [[0, 1], [1, 0]])  # item 1 tie 0.1 vs 0.0
    np.testing.assert_allclose(pay[1], [0.0, 0.1])
    a3, p3 = VCG(cached_setting("3x1-uniform")).outcome(np.array([[[0.3], [0.8], [0.6]]]))
    np.testing.assert_array_equal(a3[0, :, 0], [0, 1, 0])
    np.testing.assert_allclose(p3[0], [0.0, 0.6, 0.0])


def test_vcg_random_bids_additive_second_price():
    s = cached_setting("3x10-uniform")
    bids = s.sample(500, 3)
    alloc, pay = VCG(s).outcome(bids)
    winner = bids.argmax(axis=1)  # (B, m)
    np.testing.assert_array_equal(alloc.argmax(axis=1), winner)
    np.testing.assert_array_equal(alloc.sum(axis=1), 1.0)
    second = np.sort(bids, axis=1)[:, -2, :]  # (B, m)
    expected = np.stack([((winner == i) * second).sum(axis=1) for i in range(3)], axis=1)
    np.testing.assert_allclose(pay, expected, atol=1e-12)


def test_vcg_unit_demand_hand_case():
    s = cached_setting("2x2-unit-uniform")
    # Welfare max: bidder 0 takes item 1 (0.8), bidder 1 item 0 (0.7): 1.5.
    alloc, pay = VCG(s).outcome(np.array([[[0.9, 0.8], [0.7, 0.1]]]))
    np.testing.assert_array_equal(alloc[0], [[0, 1], [1, 0]])
    # p0 = W(-0) - (W - 0.8) = 0.7 - 0.7 = 0;  p1 = W(-1) - (W - 0.7) = 0.9 - 0.8 = 0.1
    np.testing.assert_allclose(pay[0], [0.0, 0.1], atol=1e-12)


def test_myerson_asymmetric_hand_cases():
    m = cached_mechanism("myerson", "2x1-asym-uniform")  # phi_0 = 2v - 1, phi_1 = 2v - 2
    bids = np.array(
        [
            [[0.9], [1.6]],  # phi 0.8 vs 1.2: bidder 1 pays phi_1^-1(0.8) = 1.4
            [[0.3], [1.6]],  # phi -0.4 vs 1.2: bidder 1 pays its reserve 1.0
            [[0.9], [0.9]],  # phi 0.8 vs -0.2: bidder 0 pays its reserve 0.5
            [[0.95], [1.4]],  # phi 0.9 vs 0.8: bidder 0 wins, pays (0.8+1)/2
            [[0.4], [0.9]],
        ]
    )  # both below reserve: no sale
    alloc, pay = m.outcome(bids)
    np.testing.assert_array_equal(alloc[..., 0], [[0, 1], [0, 1], [1, 0], [1, 0], [0, 0]])
    np.testing.assert_allclose(pay, [[0, 1.4], [0, 1.0], [0.5, 0], [0.9, 0], [0, 0]], atol=1e-9)


def test_myerson_payment_is_max_reserve_and_inverse_virtual_value():
    s = cached_setting("3x1-asym-uniform")  # bidder i ~ U[0, h_i], h = 1, 2, 3
    m = cached_mechanism("myerson", "3x1-asym-uniform")
    h = np.array([1.0, 2.0, 3.0])
    bids = s.sample(2_000, 5)[..., 0]  # (B, n)
    alloc, pay = m.outcome(bids[..., None])
    phi = 2 * bids - h
    winner = phi.argmax(axis=1)
    sold = phi.max(axis=1) >= 0
    np.testing.assert_array_equal(alloc[..., 0].argmax(axis=1)[sold], winner[sold])
    np.testing.assert_array_equal(alloc[..., 0].sum(axis=1), sold)
    for b in range(len(bids)):
        i = winner[b]
        others = np.delete(phi[b], i).max()
        expected = max(h[i] / 2, (max(others, 0.0) + h[i]) / 2) if sold[b] else 0.0
        assert pay[b, i] == pytest.approx(expected, abs=1e-9)
        assert np.delete(pay[b], i) == pytest.approx(0.0)


def test_myerson_exponential_payment_is_max_reserve_second_bid():
    s = cached_setting("3x1-exponential")
    m = cached_mechanism("myerson", "3x1-exponential")  # phi(v) = v - 1, reserve 1
    bids = s.sample(2_000, 8)
    bids[:5] *= 4.0  # some bids beyond the tabulated grid
    alloc, pay = m.outcome(bids)
    b = bids[..., 0]
    top = np.sort(b, axis=1)
    sold = top[:, -1] >= 1.0
    np.testing.assert_allclose(
        pay.sum(axis=1), np.where(sold, np.maximum(1.0, top[:, -2]), 0), atol=1e-8
    )
    np.testing.assert_array_equal(alloc[..., 0].argmax(axis=1)[sold], b.argmax(axis=1)[sold])


def test_grand_bundle_exact():
    s = cached_setting("2x2-uniform")
    gb = GrandBundle(s, reserve=0.8)
    bids = np.array(
        [
            [[0.5, 0.6], [0.3, 0.2]],  # sums 1.1, 0.5: bidder 0 pays 0.8
            [[0.5, 0.6], [0.9, 0.9]],  # 1.1, 1.8: bidder 1 pays 1.1
            [[0.3, 0.3], [0.2, 0.5]],
        ]
    )  # 0.6, 0.7: no sale
    alloc, pay = gb.outcome(bids)
    np.testing.assert_array_equal(alloc, [[[1, 1], [0, 0]], [[0, 0], [1, 1]], [[0, 0], [0, 0]]])
    np.testing.assert_allclose(pay, [[0.8, 0], [0, 1.1], [0, 0]])
    assert gb.config() == {"reserve": 0.8}


def test_posted_prices_exact():
    s = cached_setting("2x2-uniform")
    pp = PostedPrice(s, prices=[0.5, 0.7])
    alloc, pay = pp.outcome(np.array([[[0.6, 0.6], [0.9, 0.8]]]))
    # bidder 0 first: takes item 0 (0.6 >= 0.5), not item 1; bidder 1 takes item 1
    np.testing.assert_array_equal(alloc[0], [[1, 0], [0, 1]])
    np.testing.assert_allclose(pay[0], [0.5, 0.7])
    ud = PostedPrice(cached_setting("2x2-unit-uniform"), prices=[0.5, 0.2])
    alloc, pay = ud.outcome(np.array([[[0.9, 0.7], [0.9, 0.1]]]))
    # unit demand: bidder 0 takes the item of largest surplus (item 1: 0.5 > 0.4),
    # bidder 1 the other item
    np.testing.assert_array_equal(alloc[0], [[0, 1], [1, 0]])
    np.testing.assert_allclose(pay[0], [0.2, 0.5])
    bpp = BundlePostedPrice(s, price=1.0)
    alloc, pay = bpp.outcome(np.array([[[0.4, 0.5], [0.6, 0.6]], [[0.6, 0.6], [0.6, 0.6]]]))
    np.testing.assert_array_equal(alloc[:, :, 0], [[0, 1], [1, 0]])
    np.testing.assert_allclose(pay, [[0, 1.0], [1.0, 0]])


def test_first_price_pays_own_bid():
    s = cached_setting("2x2-uniform")
    alloc, pay = FirstPrice(s).outcome(np.array([[[0.9, 0.2], [0.5, 0.7]]]))
    np.testing.assert_array_equal(alloc[0], [[1, 0], [0, 1]])
    np.testing.assert_allclose(pay[0], [0.9, 0.7])


def test_registry_and_not_applicable():
    assert set(MECHANISMS) >= {c.name for c in CLASSICAL}
    assert Myerson.applicable(cached_setting("2x2-uniform"))
    assert SeparateMyerson.applicable(cached_setting("2x2-unit-uniform"))
    assert GrandBundle.applicable(cached_setting("2x2-unit-uniform"))
    with pytest.raises(NotApplicableError):
        Myerson(cached_setting("2x2-uniform"))
    with pytest.raises(NotApplicableError, match="discrete"):
        Myerson(
            Setting.from_dict({"bidders": 2, "items": 1, "prior": {"kind": "bernoulli", "p": 0.5}})
        )
    with pytest.raises(NotApplicableError, match="independent"):
        SeparateMyerson(cached_setting("3x10-correlated"))


# ------------------------------------------------------------------ IR and feasibility

INVARIANT_SETTINGS = [
    "2x2-uniform",
    "3x1-uniform",
    "1x2-uniform",
    "2x1-asym-uniform",
    "3x1-exponential",
    "3x10-correlated",
    "2x2-unit-uniform",
    "2x3-unit-uniform",
    "2x4-unit-spherical",
]

# Tuning unit-demand posted prices is a coordinate search (seconds); where the prices do
# not matter to the property tested, fixed prices keep the suite fast.
FIXED_PRICES = {"2x3-unit-uniform": [0.6, 0.6, 0.6], "2x4-unit-spherical": [1.0] * 4}


def build(cls, setting: str):
    if cls is PostedPrice and setting in FIXED_PRICES:
        return PostedPrice(cached_setting(setting), prices=FIXED_PRICES[setting])
    return cached_mechanism(cls.name, setting)


@pytest.mark.parametrize("setting", INVARIANT_SETTINGS)
def test_ir_and_feasibility(setting):
    s = cached_setting(setting)
    values = s.sample(3_000, 21)
    checked = 0
    for cls in CLASSICAL:
        if cls.applicable(s):
            continue
        m = build(cls, setting)
        alloc, pay = m.outcome(values)
        assert alloc.shape == values.shape and pay.shape == values.shape[:2]
        util = (values * alloc).sum(axis=-1) - pay
        assert util.min() >= -1e-9, f"{cls.name} is not IR on {setting}: {util.min()}"
        assert np.all(pay >= -1e-12), f"{cls.name} pays a bidder on {setting}"
        infeasible = s.infeasibility(torch.as_tensor(alloc))
        assert float(infeasible.max()) == 0.0, f"{cls.name} infeasible on {setting}"
        assert alloc.min() >= 0 and alloc.max() <= 1
        checked += 1
    assert checked >= 3


def test_unit_demand_allocations_give_at_most_one_item():
    s = cached_setting("2x3-unit-uniform")
    values = s.sample(2_000, 4)
    for m in (VCG(s), FirstPrice(s), build(PostedPrice, "2x3-unit-uniform")):
        alloc, _ = m.outcome(values)
        assert alloc.sum(axis=2).max() <= 1 and alloc.sum(axis=1).max() <= 1
    # VCG maximises welfare among matchings: compare with brute force on a few profiles
    # (values are >= 0, so some matching of both bidders to distinct items is optimal)
    alloc, _ = VCG(s).outcome(values[:200])
    best = np.array(
        [max(v[0, a] + v[1, b] for a in range(3) for b in range(3) if a != b) for v in values[:200]]
    )
    got = (values[:200] * alloc).sum(axis=(1, 2))
    np.testing.assert_allclose(got, best, atol=1e-12)


# ------------------------------------------------------------------ bad bids

BAD_BIDS = {
    "wrong ndim": (np.zeros((2, 2)), "shape"),
    "wrong ndim 4": (np.zeros((1, 1, 2, 2)), "shape"),
    "wrong n": (np.zeros((4, 3, 2)), r"\(4, 3, 2\)"),
    "wrong m": (np.zeros((4, 2, 5)), r"\(4, 2, 5\)"),
    "NaN": (np.array([[[0.1, np.nan], [0.2, 0.3]]]), "NaN"),
    "inf": (np.array([[[0.1, 0.2], [np.inf, 0.3]]]), "infinite"),
    "negative": (np.array([[[0.1, 0.2], [0.2, -0.3]]]), ">= 0"),
    "non-numeric": (np.array([[["a", "b"], ["c", "d"]]]), "numeric"),
    "ragged": ([[[0.1, 0.2], [0.3]]], "numeric"),
}


@pytest.mark.parametrize("case", list(BAD_BIDS))
@pytest.mark.parametrize("mechanism", ["vcg", "separate-myerson", "grand-bundle"])
def test_bad_bids_raise_bid_error(case, mechanism):
    bids, pattern = BAD_BIDS[case]
    m = cached_mechanism(mechanism, "2x2-uniform")
    with pytest.raises(BidError, match=pattern):
        m.outcome(bids)


def test_bad_bid_messages():
    m = VCG(cached_setting("2x2-uniform"))
    with pytest.raises(BidError, match=r"\(B, 2, 2\).*bids\[None\]"):
        m.outcome(np.zeros((2, 2)))
    with pytest.raises(BidError, match=r"index \(0, 1, 1\)"):
        m.outcome(np.array([[[0.1, 0.2], [0.2, -0.3]]]))
    # valid bids in any numeric container are accepted
    alloc, pay = m.outcome([[[1, 0], [0, 1]]])
    assert alloc.dtype == np.float64 and pay.shape == (1, 2)


# ------------------------------------------------------------------ Myerson on other priors

#: Regular laws (log-concave, or lognormal with sigma 1/2) and their scipy.stats twins.
MYERSON_LAWS = {
    "beta": ({"a": 2.0, "b": 3.0, "scale": 2.0}, stats.beta(2.0, 3.0, scale=2.0)),
    "gamma": ({"shape": 2.0, "scale": 0.5}, stats.gamma(2.0, scale=0.5)),
    "lognormal": ({"mu": 0.0, "sigma": 0.5}, stats.lognorm(0.5)),
    "truncnormal": (
        {"mean": 0.3, "std": 0.4, "low": 0.0, "high": 1.0},
        stats.truncnorm(-0.75, 1.75, loc=0.3, scale=0.4),
    ),
}


def myerson_optimum(dist, bidders: int) -> tuple[float, float]:
    """Monopoly price r (maximising r (1 - F(r)), found numerically) and Myerson's optimal
    revenue for i.i.d. bidders, E[max_i phi(v_i)^+] = int_r^inf phi(v) d(F^n)(v) with
    phi(v) f(v) = v f(v) - (1 - F(v)); for one bidder r (1 - F(r))."""
    low, high = dist.support()
    top = dist.ppf(1 - 1e-12) if not math.isfinite(high) else high
    r = optimize.minimize_scalar(
        lambda p: -p * dist.sf(p), bounds=(low, top), method="bounded", options={"xatol": 1e-10}
    ).x
    if bidders == 1:
        return r, r * dist.sf(r)

    def integrand(v):
        return (v * dist.pdf(v) - dist.sf(v)) * bidders * dist.cdf(v) ** (bidders - 1)

    return r, integrate.quad(integrand, r, top, limit=200)[0]


@pytest.mark.parametrize("bidders", [1, 2])
@pytest.mark.parametrize("law", list(MYERSON_LAWS))
def test_myerson_revenue_on_beta_gamma_lognormal_truncnormal(law, bidders):
    """One item, i.i.d. bidders: Myerson's reserve is the monopoly price and its revenue
    (Monte Carlo, through the evaluator) the optimum computed by numerical integration."""
    params, dist = MYERSON_LAWS[law]
    s = Setting.from_dict({"bidders": bidders, "items": 1, "prior": {"kind": law, **params}})
    mech = Myerson(s)
    r, exact = myerson_optimum(dist, bidders)
    np.testing.assert_allclose(mech.reserves.numpy().ravel(), r, atol=1e-3)
    report = evaluate(mech, samples=100_000, seed=3, search=None)
    assert_close(report.revenue, exact, report.revenue_se)
    if bidders == 1:  # a posted price r: each sale earns exactly r
        _, pay = mech.outcome(s.sample(1_000, 4))
        sold = pay[:, 0] > 0
        assert sold.any() and np.allclose(pay[sold, 0], r, atol=1e-3)
