"""Dynamic AMAs on MDPs: inner solvers, IC/IR, environments, methods, the shared registry,
train/save/load path and CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from automech import evaluate, load
from automech.cli import app
from automech.errors import AutomechError, NotApplicableError, OptionError
from automech.evaluation import DynamicEvaluation, evaluate_dynamic
from automech.evaluation.dynamic import misreport_gains
from automech.experiment import train
from automech.mechanisms import MECHANISMS
from automech.mechanisms.learned.dynamic_ama import DynamicAMA, signed_objective
from automech.methods import METHODS, get_method
from automech.methods.dynamic import grid_search
from automech.problems import get_setting, setting_from_dict, setting_names
from automech.problems.dynamic import RewardTables, TabularMDP, get_dynamic_setting, is_dynamic
from automech.problems.dynamic.solvers import (
    occupancy,
    soft_occupancy,
    soft_solve,
    solve,
    solve_lp,
    solve_split,
)
from automech.training import FitContext

D = torch.float64


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    """The CLI sets torch's threads at start (to the cores, unless AUTOMECH_THREADS):
    keep this process at the suite's one thread."""
    monkeypatch.setenv("AUTOMECH_THREADS", "1")


def random_mdp(rng, S=6, A=3, gamma=None, layers=None) -> TabularMDP:
    """A random stochastic MDP: layered (finite horizon) when ``layers`` is given, else a
    dense discounted one."""
    P = np.zeros((S, A, S))
    if layers:
        bounds = np.linspace(0, S, layers + 1).astype(int)
        for k in range(layers - 1):
            nxt = range(bounds[k + 1], bounds[k + 2])
            for s in range(bounds[k], bounds[k + 1]):
                for a in range(A):
                    p = rng.random(len(nxt)) * (rng.random(len(nxt)) < 0.7)
                    p[rng.integers(len(nxt))] += 0.1
                    P[s, a, list(nxt)] = p / p.sum() * rng.uniform(0.7, 1.0)
    else:
        P = rng.random((S, A, S)) ** 3
        P /= P.sum(-1, keepdims=True)
    mu0 = np.zeros(S)
    mu0[: (max(1, S // layers) if layers else S)] = 1.0
    return TabularMDP(torch.tensor(P), torch.tensor(mu0 / mu0.sum()), gamma if gamma else 1.0)


MDPS = {
    "finite": lambda rng: random_mdp(rng, S=9, A=3, layers=3),
    "discounted": lambda rng: random_mdp(rng, S=6, A=3, gamma=0.8),
}


# ------------------------------------------------------------------ inner solvers


@pytest.mark.parametrize("kind", list(MDPS))
def test_lp_and_batched_solver_agree(kind):
    rng = np.random.default_rng(0)
    mdp = MDPS[kind](rng)
    assert mdp.finite == (kind == "finite")
    R = torch.tensor(rng.normal(size=(5, mdp.num_states, mdp.num_actions)))
    V, policy = solve(R, mdp)
    nu = occupancy(policy, mdp)
    for k in range(len(R)):
        value, nu_lp = solve_lp(R[k].numpy(), mdp)
        assert float(V[k] @ mdp.mu0) == pytest.approx(value, abs=1e-8)
        assert float((nu[k] * R[k]).sum()) == pytest.approx(value, abs=1e-8)
        # optimal LP vertex = the deterministic policy's occupancy (no ties a.s.)
        assert np.allclose(nu[k].numpy(), nu_lp, atol=1e-7)
        # constraints of Eq. (2)
        flow = mdp.gamma * torch.einsum("sat,sa->t", mdp.P, nu[k])
        assert torch.allclose(nu[k].sum(-1), flow + mdp.mu0, atol=1e-10)


def test_environment_lp_matches_backward_induction():
    rng = np.random.default_rng(1)
    for name in ("seq-sales-3x2", "scheduling-2x3", "gridworld-2x3"):
        env = get_dynamic_setting(name)
        types = env.sample(3, rng)
        b = torch.tensor(rng.normal(size=(env.mdp.num_states, env.mdp.num_actions)))
        w = torch.tensor(rng.uniform(0.5, 1.5, env.n))
        c = (env.rewards(types) * w[:, None, None]).sum(1) + b
        V, _ = solve(c, env.mdp)
        for k in range(3):
            value, _ = solve_lp(c[k].numpy(), env.mdp)
            assert float(V[k] @ env.mdp.mu0) == pytest.approx(value, abs=1e-8)


@pytest.mark.parametrize("kind", list(MDPS))
def test_regularised_policy_tends_to_exact(kind):
    rng = np.random.default_rng(2)
    mdp = MDPS[kind](rng)
    R = torch.tensor(rng.normal(size=(4, mdp.num_states, mdp.num_actions)))
    V, policy = solve(R, mdp)
    exact_nu = occupancy(policy, mdp)
    value = V @ mdp.mu0
    gaps = []
    for alpha in (0.1, 0.01, 0.001):
        Vs, pi = soft_solve(R, mdp, alpha)
        nu = soft_occupancy(pi, mdp)
        # soft value exceeds the exact one by at most alpha log(A) per (discounted) step
        steps = mdp.horizon if mdp.finite else 1 / (1 - mdp.gamma)
        bound = alpha * math.log(mdp.num_actions) * steps
        assert torch.all(Vs @ mdp.mu0 >= value - 1e-9)
        assert torch.all(Vs @ mdp.mu0 <= value + bound + 1e-9)
        gaps.append(float((nu - exact_nu).abs().sum(-1).sum(-1).max()))
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 1e-6


def test_soft_solver_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    for mdp in (MDPS["finite"](rng), MDPS["discounted"](rng)):
        R = torch.tensor(rng.normal(size=(mdp.num_states, mdp.num_actions)), requires_grad=True)
        q = torch.tensor(rng.normal(size=R.shape))

        def f(x, mdp=mdp, q=q):
            return (soft_occupancy(soft_solve(x, mdp, 0.3)[1], mdp) * q).sum()

        (grad,) = torch.autograd.grad(f(R), R)
        h = 1e-6
        for s, a in [(0, 0), (1, 2), (2, 1)]:
            e = torch.zeros_like(R)
            e[s, a] = h
            fd = (f(R.detach() + e) - f(R.detach() - e)) / (2 * h)
            assert float(grad[s, a]) == pytest.approx(float(fd), abs=1e-6)


def test_split_policy_is_optimal_and_symmetric_at_ties():
    env = get_dynamic_setting("seq-sales-3x2")
    types = torch.tensor([[[0.9], [0.8], [0.1]]], dtype=D)
    c = env.rewards(types).sum(1)  # VCG: selling order is a tie
    V, pi = solve_split(c, env.mdp)
    nu = soft_occupancy(pi, env.mdp)
    assert float((nu * c).sum()) == pytest.approx(float(V[0] @ env.mdp.mu0))
    assert float(nu[0, 0, 1]) == pytest.approx(0.5) and float(nu[0, 0, 2]) == pytest.approx(0.5)


# ------------------------------------------------------------------ the AMA: IC and IR


def _random_ama(env, rng):
    S, A = env.mdp.num_states, env.mdp.num_actions
    return DynamicAMA(env, rng.uniform(0.5, 2.0, env.n), rng.normal(0, 0.3, (S, A)))


@pytest.mark.parametrize("kind", list(MDPS))
def test_ic_by_misreported_reward_functions(kind):
    """Reports are whole reward functions r_i(s, a) on a random stochastic MDP."""
    rng = np.random.default_rng(4)
    env = RewardTables(MDPS[kind](rng), n=3)
    for mech in (DynamicAMA.vcg(env), _random_ama(env, rng)):
        types = env.sample(40, rng)
        gains = misreport_gains(mech, types, 24, rng)
        assert float(gains.max()) <= 1e-9
        out = mech.outcome(types)
        assert float(out.utilities.min()) >= -1e-9  # IR
        assert torch.allclose(
            out.utilities, (out.asw[:, :1] - out.asw[:, 1:]) / mech.weights, atol=1e-9
        )


def test_ic_check_detects_a_non_ic_rule():
    """Without payments the welfare-maximising policy invites overbidding: the same
    misreport search must find positive gains (the IC test has teeth)."""

    class NoPayments(DynamicAMA):
        def outcome(self, types, reports=None, chunk=4096):
            out = super().outcome(types, reports, chunk)
            out.payments = torch.zeros_like(out.payments)
            return out

    env = get_dynamic_setting("seq-sales-3x1")
    rng = np.random.default_rng(5)
    gains = misreport_gains(NoPayments(env), env.sample(50, rng), 8, rng)
    assert float(gains.max()) > 0.1


@pytest.mark.parametrize(
    "name", ["seq-sales-3x2", "seq-sales-asym-2x2", "scheduling-2x3", "gridworld-2x3"]
)
def test_environments_ic_and_ir(name):
    rng = np.random.default_rng(6)
    env = get_dynamic_setting(name)
    mech = _random_ama(env, rng)
    report = evaluate_dynamic(mech, samples=400, ic_profiles=40, ic_misreports=12, with_vcg=False)
    assert report.ic_max_gain <= 1e-9
    assert report.ir_violation_rate == 0.0


# ------------------------------------------------------------------ environments


def test_vcg_matches_closed_forms():
    # m units to n > m unit-demand bidders: each winner pays the (m+1)-th highest value
    for name, exact in (("seq-sales-3x2", 0.5), ("seq-sales-4x3", 0.6)):
        r = evaluate_dynamic(
            DynamicAMA.vcg(get_dynamic_setting(name)), samples=4000, ic_profiles=0, with_vcg=False
        )
        assert abs(r.revenue - exact) < 4 * r.revenue_se
    # the asymmetric prior of the paper's Table 2: 2 E[min(U[0,1], U[0,1/2], U[0,1/3])]
    r = evaluate_dynamic(
        DynamicAMA.vcg(get_dynamic_setting("seq-sales-asym-inv-3x2")),
        samples=4000,
        ic_profiles=0,
        with_vcg=False,
    )
    assert abs(r.revenue - 19 / 81) < 4 * r.revenue_se
    # the asymmetric prior: 2 E[min(U[0,1], U[0,2], U[0,3])] = 2 * 9/24
    r = evaluate_dynamic(
        DynamicAMA.vcg(get_dynamic_setting("seq-sales-asym-3x2")),
        samples=4000,
        ic_profiles=0,
        with_vcg=False,
    )
    assert abs(r.revenue - 0.75) < 4 * r.revenue_se


def test_makespan_rule():
    env = get_dynamic_setting("scheduling-2x3")
    types = torch.tensor([[[0.5, 2.0, 0.2], [3.0, 3.0, 3.0]]], dtype=D)
    only_first = torch.tensor([[0, 0, 0]])
    # published rule: 0.5 -> -0.5 (idle credit) -> 1.5 -> 0.5 + 0.2 = 0.7
    assert float(env.makespans(types, only_first)) == pytest.approx(0.7)
    env.makespan_rule = "queue"
    try:  # plain queue: 0.5 -> 0 -> 2.0 -> 1.0 + 0.2 = 1.2
        assert float(env.makespans(types, only_first)) == pytest.approx(1.2)
    finally:
        env.makespan_rule = "published"


def test_gridworld_structure():
    env = get_dynamic_setting("gridworld-2x3")
    assert env.mdp.num_states == 9 and env.mdp.num_actions == 4 and not env.mdp.finite
    types = env.sample(500, np.random.default_rng(7))
    assert torch.all((types > 0).sum(-1) == 1)
    assert torch.all(types[..., 0] == 0)  # never the start cell
    # moving "left" from the start wraps to the far column
    assert env.mdp.next_state[0, 2] == 2


def test_registry():
    assert is_dynamic("seq-sales-3x2") and is_dynamic("gridworld-5x4")
    assert is_dynamic("scheduling-asym-3x5") and not is_dynamic("2x2-uniform")
    env = get_dynamic_setting("seq-sales-4x3")
    assert (env.n, env.mdp.num_states, env.mdp.num_actions, env.mdp.horizon) == (4, 31, 5, 3)
    with pytest.raises(AutomechError):
        get_dynamic_setting("seq-sales-9x9")  # too many states


def test_one_registry_of_settings():
    """get_setting serves dynamic names; setting_from_dict rebuilds them from a run's
    record; setting_names lists both kinds."""
    env = get_setting("seq-sales-3x2")
    assert env is get_dynamic_setting("seq-sales-3x2") and env.kind == "dynamic"
    spec = env.to_dict()
    assert spec["kind"] == "dynamic" and spec["env"] == "sequential-sales"
    assert setting_from_dict(spec) is env
    assert setting_from_dict({"kind": "dynamic", "name": "gridworld-2x3"}).mdp.num_states == 9
    with pytest.raises(AutomechError, match="registered name"):
        setting_from_dict({"kind": "dynamic", "name": "no-such-mdp"})
    with pytest.raises(AutomechError, match="kind"):
        setting_from_dict({"kind": "quantum", "name": "x"})
    assert "seq-sales-3x2" in setting_names() and "2x2-uniform" in setting_names()
    assert "seq-sales-3x2" in setting_names("dynamic")
    assert "seq-sales-3x2" not in setting_names("static")
    assert "2x2-uniform" not in setting_names("dynamic")
    # sampling takes a generator or a seed (the same numbers)
    assert torch.equal(env.sample(5, 3), env.sample(5, np.random.default_rng(3)))


# ------------------------------------------------------------------ methods


def fit(method: str, setting, seed: int = 0, **options):
    """Fit ``method`` directly (no run directory), as experiment.train does after
    resolving the options."""
    meth = get_method(method)
    opts = meth.resolve(setting, meth.Options.resolve(options))
    return meth.fit(FitContext(setting=setting, options=opts, seed=seed, run=None))


def test_zeroth_order_gradient_matches_finite_differences():
    env = get_dynamic_setting("seq-sales-2x2")
    S, A = env.mdp.num_states, env.mdp.num_actions
    w, b = torch.ones(2, dtype=D), torch.zeros(S, A, dtype=D)
    b[:, 0] = 0.2
    types = env.sample(3000, np.random.default_rng(8))
    gen = torch.Generator().manual_seed(0)
    meth = get_method("zeroth-order")
    _, g, _ = meth.gradient(env, w, b, types, meth.Options(), gen)
    h = 0.02
    for s, a in [(0, 0), (0, 1)]:
        e = torch.zeros_like(b)
        e[s, a] = h
        fd = (
            signed_objective(env, w, b + e, types).mean()
            - signed_objective(env, w, b - e, types).mean()
        ) / (2 * h)
        assert float(g[s, a]) == pytest.approx(float(fd), abs=0.05)


@pytest.mark.parametrize("method", ["zeroth-order", "regularized-lp"])
def test_gradient_methods_beat_vcg(method):
    env = get_dynamic_setting("seq-sales-3x2")
    mech = fit(
        method,
        env,
        steps=40,
        batch_size=64,
        validate_every=20,
        validation_samples=1000,
        lr_final=0.05,
    )
    r = evaluate_dynamic(mech, samples=4000, ic_profiles=20, ic_misreports=8)
    assert r.objective_value > r.vcg["objective_value"] + 0.05
    assert r.ic_max_gain <= 1e-9 and r.ir_violation_rate == 0.0


def test_grid_search_ranks_exact_scores_and_beats_vcg_out_of_sample():
    """Two unit-demand bidders and two units (seq-sales-2x2, U[0, 1]): VCG charges nothing
    (no competition), and no IC, IR mechanism earns more than selling each bidder its
    unit at the monopoly price, 2 x 1/4 = 1/2 (Myerson's bound E[sum_i phi(v_i)^+]).
    Grid search ranks every candidate by its exact score on the scoring profiles (each
    recomputed here on its own, VCG's being 0), returns the best, and that one earns a
    clear share of the bound on held-out profiles."""
    env = get_dynamic_setting("seq-sales-2x2")
    ranked = grid_search(env, candidates=32, profiles=200, bound=0.5, keep=33, seed=0)
    assert len(ranked) == 33  # the Sobol points and VCG
    scores = [score for _, _, score in ranked]
    assert scores == sorted(scores, reverse=True)
    types = env.sample(200, np.random.default_rng([0, 3]))  # grid search's scoring profiles
    for w, b, score in ranked:
        assert float(b.abs().max()) <= 0.5 and torch.all(w == 1)  # bound; weights not tuned
        exact = float(signed_objective(env, w, b, types).mean())
        assert score == pytest.approx(exact, abs=1e-12)
    vcg = [score for w, b, score in ranked if bool((b == 0).all())]
    assert vcg == [pytest.approx(0.0, abs=1e-12)]
    mech = fit("grid-search", env, candidates=32, profiles=200, bound=0.5)
    assert torch.equal(mech.boosts, ranked[0][1]) and torch.equal(mech.weights, ranked[0][0])
    held = signed_objective(env, mech.weights, mech.boosts, env.sample(4000, 11))
    mean, se = float(held.mean()), float(held.std() / math.sqrt(len(held)))
    assert 0.3 < mean <= 0.5 + 4 * se


@pytest.mark.parametrize("name", ["scheduling-2x3", "gridworld-2x3", "seq-sales-asym-3x2"])
@pytest.mark.parametrize("method", ["zeroth-order", "regularized-lp"])
def test_gradient_methods_ascend_every_objective(name, method):
    """Makespan (minimised, no analytic partial), a discounted MDP, and tuned weights: at
    VCG the method's gradient estimate is an ascent direction of the exact objective on
    held-out profiles (a step along it beats the step against it and the start), it
    moves the weights exactly when they are tuned, and a short fit leaves untuned
    weights at 1."""
    env = get_dynamic_setting(name)
    S, A = env.mdp.num_states, env.mdp.num_actions
    meth = get_method(method)
    extra = {"perturbations": 8} if method == "zeroth-order" else {}
    options = meth.resolve(env, meth.Options.resolve(extra))
    w, b = torch.ones(env.n, dtype=D), torch.zeros(S, A, dtype=D)
    types = env.sample(256, np.random.default_rng(1))
    gw, gb, _ = meth.gradient(env, w, b, types, options, torch.Generator().manual_seed(0))
    assert bool(options.optimize_weights) == env.optimize_weights
    if env.optimize_weights:
        assert float(gw.abs().max()) > 1e-3
    else:
        assert torch.equal(gw, torch.zeros_like(gw))
    norm = float(torch.sqrt((gw**2).sum() + (gb**2).sum()))
    assert norm > 1e-3
    held = env.sample(500, np.random.default_rng(99))
    eta = 0.1 / norm

    def score(sign: float) -> float:
        return float(signed_objective(env, w + sign * eta * gw, b + sign * eta * gb, held).mean())

    start, up, down = score(0.0), score(1.0), score(-1.0)
    assert up > start + 1e-3 and up > down + 1e-3, (start, up, down)
    mech = fit(
        method,
        env,
        seed=1,
        steps=3,
        batch_size=16,
        validate_every=3,
        validation_samples=200,
        **({"perturbations": 4} if method == "zeroth-order" else {}),
    )
    assert torch.isfinite(mech.boosts).all() and torch.isfinite(mech.weights).all()
    if not env.optimize_weights:
        assert torch.equal(mech.weights, torch.ones(env.n, dtype=D))


def test_methods_are_registered_with_typed_options():
    env = get_dynamic_setting("seq-sales-asym-3x2")
    for name in ("grid-search", "zeroth-order", "regularized-lp"):
        meth = METHODS[name]
        assert meth.kind == "dynamic" and meth.mechanism is DynamicAMA
        assert meth.applicable(env) is None
        reason = meth.applicable(get_setting("2x2-uniform"))
        assert reason and "static" in reason
        # "auto" is resolved to the environment's choice before it is recorded
        assert meth.resolve(env, meth.Options()).optimize_weights is True
    assert get_method("zeroth-order").Options.defaults()["steps"] == 300
    assert (
        get_method("grid-search").resolve(env, get_method("grid-search").Options()).bound
        == env.boost_bound
    )
    for bad in (
        {"sigma": 0},
        {"optimizer": "rmsprop"},
        {"init": "best"},
        {"restarts": 0},
        {"steps": -1},
        {"candidates": 5},
    ):
        with pytest.raises(OptionError):
            get_method("zeroth-order").Options.resolve(bad)


def test_methods_of_the_other_kind_are_refused(tmp_path):
    with pytest.raises(NotApplicableError, match="static"):
        train("2x2-uniform", "zeroth-order", {"steps": 1}, out=tmp_path / "a")
    with pytest.raises(NotApplicableError, match="dynamic"):
        train("seq-sales-2x2", "rochetnet", {}, out=tmp_path / "b")
    with pytest.raises(NotApplicableError, match="dynamic"):
        train("seq-sales-2x2", "vcg", {}, out=tmp_path / "c")


# ------------------------------------------------------------------ one train/save/load path


def test_train_save_load_evaluate(tmp_path):
    out = tmp_path / "run"
    mech, run = train(
        "seq-sales-3x2",
        "zeroth-order",
        {
            "steps": 4,
            "batch_size": 16,
            "validate_every": 2,
            "validation_samples": 200,
            "perturbations": 4,
        },
        seed=2,
        out=out,
        eval_samples=1000,
        search=None,
    )
    assert isinstance(mech, DynamicAMA) and run.path == out
    config = json.loads((out / "config.json").read_text())
    assert config["setting"]["kind"] == "dynamic" and config["method"] == "zeroth-order"
    assert config["options"]["optimize_weights"] is False  # "auto" resolved
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["kind"] == "dynamic" and metrics["samples"] == 1000
    assert metrics["regret_mean"] is None and metrics["ic_profiles"] == 0  # search=None
    assert "dynamic-vcg" in metrics["baselines"] or metrics["mechanism"] == "dynamic-vcg"
    history = run.history()
    assert [r["val_objective"] for r in history if "val_objective" in r]
    again = load(out)
    assert isinstance(again, DynamicAMA) and again.env is mech.env
    assert torch.equal(again.weights, mech.weights) and torch.equal(again.boosts, mech.boosts)
    report = evaluate(again, samples=1000)  # the shared entry point
    assert isinstance(report, DynamicEvaluation)
    assert report.revenue == pytest.approx(metrics["revenue"])
    assert report.ic_profiles == 1000 and report.regret_max <= 1e-9
    with pytest.raises(AutomechError, match="tied to its MDP"):
        evaluate(again, get_setting("seq-sales-2x2"), samples=100)
    with pytest.raises(AutomechError, match="different kinds"):
        evaluate(again, get_setting("2x2-uniform"), samples=100)
    with pytest.raises(NotApplicableError, match="not a dynamic mechanism"):
        evaluate(MECHANISMS["vcg"](again.env), samples=100)  # a static mechanism on an MDP
    # a rerun in the same directory retrains from the start (the same numbers)
    train(
        "seq-sales-3x2",
        "zeroth-order",
        config["options"],
        seed=2,
        out=out,
        eval_samples=1000,
        search=None,
    )
    assert run.history() == history


# ------------------------------------------------------------------ CLI


def test_cli_settings_lists_both_kinds():
    result = CliRunner().invoke(app, ["settings"])
    assert result.exit_code == 0, result.output
    for name in ("2x2-uniform", "seq-sales-3x2", "scheduling-2x4", "gridworld-2x3"):
        assert name in result.stdout
    assert "dynamic settings" in result.stdout


def test_cli_train_and_evaluate(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            "seq-sales-2x2",
            "--method",
            "grid-search",
            "--set",
            "candidates=16",
            "--set",
            "profiles=100",
            "--eval-samples",
            "2000",
            "--regret-profiles",
            "50",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert "dynamic-vcg" in data["results"]  # the AMA's row (unless VCG won) and VCG
    for row in data["results"].values():
        assert {
            "revenue",
            "revenue_se",
            "welfare",
            "objective",
            "objective_value",
            "ir_violation_rate",
            "regret_mean",
            "regret_max",
            "samples",
        } <= set(row)
    for name in ("config.json", "metrics.json", "checkpoint.pt", "history.jsonl"):
        assert (out / name).exists()
    result = runner.invoke(
        app, ["evaluate", str(out), "--samples", "1000", "--regret-profiles", "50", "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["results"]
    assert all(r["samples"] == 1000 for r in rows.values())
    table = runner.invoke(app, ["evaluate", str(out), "--samples", "500", "--no-regret"])
    assert table.exit_code == 0, table.output
    assert "dynamic-vcg" in table.stdout and "revenue" in table.stdout
    result = runner.invoke(
        app, ["train", "seq-sales-2x2", "--method", "rochetnet", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2
    assert "does not apply" in result.stderr and "Traceback" not in result.output


def test_cli_makespan_table_and_steps_error(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "train",
            "scheduling-2x3",
            "--method",
            "zeroth-order",
            "--steps",
            "2",
            "--set",
            "batch_size=8",
            "--set",
            "validation_samples=100",
            "--set",
            "perturbations=2",
            "--eval-samples",
            "500",
            "--regret-profiles",
            "20",
            "--out",
            str(tmp_path / "z"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "objective" in result.stdout and "dynamic-vcg" in result.stdout
    result = runner.invoke(
        app,
        [
            "train",
            "seq-sales-2x2",
            "--method",
            "grid-search",
            "--steps",
            "5",
            "--out",
            str(tmp_path / "g"),
        ],
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "takes no --steps" in lines[0]
    assert not (tmp_path / "g").exists()
