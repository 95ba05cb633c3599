"""The public boundary, fuzzed with Hypothesis: setting dicts and TOML, option
assignments, bid arrays, run directories.  Every input gives either one clean automech
error naming the problem, or a result of the right shape that is finite, feasible and IR;
never a traceback.

Profiles: ``ci`` (the default, well under a minute) and ``bench``
(``HYPOTHESIS_PROFILE=bench python -m pytest tests/test_fuzz.py``: 20x the examples).
"""

from __future__ import annotations

import os
import tomllib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import automech
from automech.errors import AutomechError
from automech.experiment import parse_assignments
from automech.methods import METHODS
from automech.problems import LAWS
from automech.problems.setting import Setting
from conftest import cached_setting

settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "bench", max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

TOL = 1e-6


def clean(err: AutomechError) -> None:
    """An automech error is one line that says something."""
    text = str(err)
    assert text and "\n" not in text and "Traceback" not in text


# ------------------------------------------------------------------ settings

numbers = st.one_of(
    st.integers(-5, 20),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(0.0, 100.0),
)
scalars = st.one_of(numbers, st.text(max_size=5), st.booleans(), st.none())
params = st.dictionaries(
    st.sampled_from(["low", "high", "mean", "sigma", "mu", "a", "b", "p", "scale", "shape"]),
    st.one_of(numbers, st.lists(numbers, max_size=3)),
    max_size=3,
)
priors = st.one_of(
    st.builds(lambda k, p: {"kind": k, **p}, st.sampled_from(sorted(LAWS)), params),
    st.builds(
        lambda k, p: {"kind": k, **p},
        st.sampled_from(["discrete", "correlated", "spherical", "no-such", ""]),
        params,
    ),
    scalars,
)
setting_dicts = st.fixed_dictionaries(
    {
        "bidders": st.one_of(st.integers(-1, 4), scalars),
        "items": st.one_of(st.integers(-1, 4), scalars),
        "prior": priors,
    },
    optional={
        "valuation": st.sampled_from(["additive", "unit-demand", "cubic", 3]),
        "supply": st.sampled_from(["unit", "unlimited", "none"]),
        "objective": st.sampled_from(["revenue", "welfare", "nonsense", 1]),
        "colour": scalars,
    },
)


def check_setting(spec) -> None:
    try:
        s = Setting.from_dict(spec)
    except AutomechError as err:
        clean(err)
        return
    values = s.sample(16, 0)
    assert values.shape == (16, s.num_bidders, s.num_items)
    assert np.all(np.isfinite(values))


@given(setting_dicts)
def test_setting_dicts_build_or_fail_cleanly(spec):
    check_setting(spec)


@given(st.text(max_size=200))
def test_setting_toml_text_builds_or_fails_cleanly(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("toml") / "s.toml"
    path.write_text(text)
    try:
        Setting.from_toml(path)
    except AutomechError as err:
        clean(err)


@given(setting_dicts)
def test_setting_toml_from_dicts(tmp_path_factory, spec):
    lines = []
    for key, value in spec.items():
        if key != "prior" and isinstance(value, (int, float, str, bool)):
            lines.append(f"{key} = {_toml(value)}")
    prior = spec.get("prior")
    if isinstance(prior, dict):
        lines.append("[prior]")
        lines += [f"{k} = {_toml(v)}" for k, v in prior.items()]
    text = "\n".join(lines)
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    path = tmp_path_factory.mktemp("toml") / "s.toml"
    path.write_text(text)
    try:
        Setting.from_toml(path)
    except AutomechError as err:
        clean(err)


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return (
            "nan"
            if value != value
            else ("inf" if value > 0 else "-inf")
            if abs(value) == float("inf")
            else repr(value)
        )
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


# ------------------------------------------------------------------ options

assignments = st.lists(
    st.builds(
        lambda k, v: f"{k}={v}",
        st.sampled_from(
            [
                "steps",
                "lr",
                "batch_size",
                "menu_size",
                "temperature",
                "grid",
                "chunk_size",
                "keep_best",
                "ic",
                "init",
                "nope",
            ]
        ),
        st.sampled_from(
            ["-5", "0", "1", "2.5", "1e9", "nan", "inf", "true", '"dsic"', "x", "[1, 2]", "-0.0"]
        ),
    ),
    max_size=4,
)


@given(st.sampled_from(sorted(METHODS)), assignments)
def test_option_assignments_resolve_or_fail_cleanly(method, pairs):
    try:
        options = METHODS[method].Options.resolve(parse_assignments(pairs))
    except AutomechError as err:
        clean(err)
        return
    for info in options.describe():
        value = getattr(options, info.name)
        assert not (isinstance(value, float) and not np.isfinite(value)), info.name


# ------------------------------------------------------------------ bids

#: Mechanisms the bid fuzzing runs on: classical and learned, float64 and float32.
MECHANISMS = {
    "vcg@2x2": lambda: METHODS["vcg"].mechanism(cached_setting("2x2-uniform")),
    "myerson@3x1": lambda: METHODS["myerson"].mechanism(cached_setting("3x1-uniform")),
    "grand-bundle@1x2": lambda: METHODS["grand-bundle"].mechanism(cached_setting("1x2-uniform")),
    "menu@1x2": lambda: METHODS["rochetnet"].mechanism(
        cached_setting("1x2-uniform"), menu_size=8, init_seed=0
    ),
    "lottery-ama@2x2": lambda: METHODS["lottery-ama"].mechanism(
        cached_setting("2x2-uniform"), allocations=16, init_seed=0
    ),
    "regretnet@2x2": lambda: METHODS["regretnet"].mechanism(
        cached_setting("2x2-uniform"), hidden=8, init_seed=0
    ),
    "myersonnet@2x1": lambda: METHODS["myersonnet"].mechanism(
        cached_setting("2x1-uniform"), groups=3, lines=3, init_seed=0
    ),
}
_BUILT: dict = {}


def mechanism(name):
    if name not in _BUILT:
        torch.manual_seed(0)
        _BUILT[name] = MECHANISMS[name]()
    return _BUILT[name]


def bid_arrays(shape):
    b, n, m = shape
    elements = st.one_of(
        st.floats(0.0, 2.0),
        st.floats(0.0, 1e40),
        st.sampled_from(
            [0.0, 1e-300, 5e-324, 1e12, 1e16, 1e30, 1e39, float("nan"), float("inf"), -1.0, -0.0]
        ),
    )
    sizes = st.one_of(
        st.just((b, n, m)), st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3))
    )
    return sizes.flatmap(
        lambda s: st.lists(elements, min_size=int(np.prod(s)), max_size=int(np.prod(s))).map(
            lambda xs: np.array(xs, dtype=np.float64).reshape(s)
        )
    )


@pytest.mark.parametrize("name", list(MECHANISMS))
@given(data=st.data())
def test_bids_give_a_clean_error_or_a_feasible_ir_outcome(name, data):
    mech = mechanism(name)
    n, m = mech.setting.shape
    bids = data.draw(bid_arrays((3, n, m)))
    if data.draw(st.booleans()):
        bids = (
            bids.astype(data.draw(st.sampled_from([np.float32, np.float16, np.int64])), copy=False)
            if np.all(np.isfinite(bids)) and np.all(np.abs(bids) < 6e4)
            else bids
        )
    try:
        alloc, pay = mech.outcome(bids)
    except AutomechError as err:
        clean(err)
        return
    assert alloc.shape == bids.shape and pay.shape == bids.shape[:2]
    assert np.all(np.isfinite(alloc)) and np.all(np.isfinite(pay))
    assert np.all(alloc >= -TOL) and np.all(alloc <= 1 + TOL)
    if mech.setting.unit_supply:
        assert np.all(alloc.sum(1) <= 1 + TOL), "an item sold twice"
    # IR for truthful bidders: bids are the values
    values = np.asarray(bids, dtype=np.float64)
    utility = (alloc * values).sum(-1) - pay
    scale = np.maximum(1.0, np.abs(values).sum(-1))
    assert np.all(utility >= -TOL * scale), "a truthful bidder pays more than its value"


def test_an_empty_batch_gives_empty_arrays():
    for name in MECHANISMS:
        mech = mechanism(name)
        n, m = mech.setting.shape
        alloc, pay = mech.outcome(np.zeros((0, n, m)))
        assert alloc.shape == (0, n, m) and pay.shape == (0, n), name


# ------------------------------------------------------------------ run directories

FILES = ["checkpoint.pt", "config.json", "metrics.json", "history.jsonl"]


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("good") / "run"
    automech.save(mechanism("grand-bundle@1x2"), out)
    return out


@given(
    st.sampled_from(FILES),
    st.sampled_from(["delete", "truncate", "garbage", "json", "foreign-torch"]),
    st.integers(0, 400),
)
def test_broken_run_directories_fail_cleanly(good_run, tmp_path_factory, name, how, cut):
    import shutil

    run = tmp_path_factory.mktemp("broken") / "run"
    shutil.copytree(good_run, run)
    path = run / name
    if how == "delete":
        path.unlink(missing_ok=True)
    elif how == "truncate" and path.exists():
        data = path.read_bytes()
        path.write_bytes(data[: min(cut, len(data))])
    elif how == "garbage":
        path.write_bytes(os.urandom(cut))
    elif how == "json":
        path.write_text('{"mechanism": "vcg", "setting": 3}')
    elif how == "foreign-torch":
        torch.save({"model": torch.zeros(3), "epoch": cut}, path)
    try:
        mech = automech.load(run)
    except AutomechError as err:
        clean(err)
        return
    alloc, pay = mech.outcome(mech.setting.sample(4, 0))
    assert np.all(np.isfinite(alloc)) and np.all(np.isfinite(pay))


@pytest.mark.parametrize("name", list(MECHANISMS))
def test_bids_up_to_the_limit_keep_the_mechanisms_outcome(name):
    """At :func:`max_bid` the mechanism's own precision still gives its float64 outcome
    to PRECISION of the prior's scale; just above it the bids are refused, naming it."""
    import copy

    from automech.errors import BidError
    from automech.mechanisms.base import PRECISION, max_bid

    mech = mechanism(name)
    s = mech.setting
    limit = max_bid(s, mech.dtype)
    rng = np.random.default_rng(0)
    bids = s.sample(8, 1)
    bids[:4, 0] = limit * rng.uniform(0.5, 1.0, size=bids[:4, 0].shape)
    alloc, pay = mech.outcome(bids)
    twin = copy.deepcopy(mech).double()
    with torch.no_grad():
        a64, p64 = twin(torch.as_tensor(bids))
    scale = float(np.max(s.prior.support()[1]))
    assert np.max(np.abs(pay - p64.numpy())) <= 10 * PRECISION * scale
    assert np.max(np.abs(alloc - a64.numpy())) <= 1e-3
    bids[0, 0, 0] = 1.01 * limit
    with pytest.raises(BidError, match="must be <="):
        mech.outcome(bids)
