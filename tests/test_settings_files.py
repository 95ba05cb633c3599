"""Setting files (TOML) and named settings: valid files load, malformed ones raise a
SettingError naming the field."""

from __future__ import annotations

import numpy as np
import pytest

from automech import Setting, get_setting
from automech.errors import SettingError
from automech.problems import DiscretePrior, IndependentPrior, setting_names

UNIFORM_EXAMPLE = """\
# two items with different value ranges, one bidder
bidders = 1
items = 2

[prior]
kind = "uniform"
low = [4, 4]
high = [16, 7]
"""

DISCRETE_EXAMPLE = """\
bidders = 2
items = 2

[prior]
kind = "discrete"
profiles = [
  [[1.0, 0.0], [0.0, 1.0]],
  [[2.0, 1.0], [1.0, 2.0]],
]
probabilities = [0.25, 0.75]
"""


def write(tmp_path, text: str, name: str = "setting.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_uniform_example_loads_and_samples(tmp_path):
    path = write(tmp_path, UNIFORM_EXAMPLE, "asym.toml")
    s = get_setting(str(path))
    assert s.name == "asym" and s.shape == (1, 2)
    assert s.valuation == "additive" and s.supply == "unit" and s.objective.name == "revenue"
    assert isinstance(s.prior, IndependentPrior)
    low, high = s.prior.support()
    np.testing.assert_allclose(low, [[4.0, 4.0]])
    np.testing.assert_allclose(high, [[16.0, 7.0]])
    v = s.sample(10_000, 0)
    assert v.shape == (10_000, 1, 2)
    assert np.all(v >= low) and np.all(v <= high)
    # Setting.from_toml and a Path give the same setting
    np.testing.assert_array_equal(Setting.from_toml(path).sample(100, 1), s.sample(100, 1))
    np.testing.assert_array_equal(get_setting(path).sample(100, 1), s.sample(100, 1))


def test_discrete_example_loads_and_samples(tmp_path):
    s = get_setting(str(write(tmp_path, DISCRETE_EXAMPLE)))
    assert isinstance(s.prior, DiscretePrior) and s.shape == (2, 2)
    v = s.sample(8_000, 0)
    first = (v == np.array([[1.0, 0.0], [0.0, 1.0]])).all(axis=(1, 2))
    second = (v == np.array([[2.0, 1.0], [1.0, 2.0]])).all(axis=(1, 2))
    assert np.all(first | second)
    assert abs(second.mean() - 0.75) < 4 * np.sqrt(0.75 * 0.25 / len(v))


def test_exponential_mean_and_options(tmp_path):
    text = """
bidders = 3
items = 1
valuation = "additive"
supply = "unit"
objective = "revenue"
[prior]
kind = "exponential"
mean = 3.0
"""
    s = get_setting(str(write(tmp_path, text)))
    assert s.prior.marginal(2, 0).params == {"mean": 3.0}
    v = s.sample(40_000, 0)
    assert abs(v.mean() - 3.0) < 4 * 3.0 / np.sqrt(v.size)


def test_per_bidder_types_and_objective_table(tmp_path):
    text = """
bidders = 2
items = 1
supply = "unlimited"
[objective]
kind = "revenue-minus-cost"
production_cost = 1.0
[prior]
kind = "discrete"
types = [[[1.0], [2.0]], [[0.5], [3.0]]]
type_probabilities = [[0.5, 0.5], [0.1, 0.9]]
"""
    s = get_setting(str(write(tmp_path, text)))
    assert s.supply == "unlimited"
    assert s.objective.to_dict() == {
        "kind": "revenue-minus-cost",
        "production_cost": 1.0,
        "duplication_cost": 0.0,
    }
    assert s.sample(10, 0).shape == (10, 2, 1)


def test_dict_round_trip():
    for name in ["1x2-asym-uniform", "3x10-correlated", "2x4-unit-spherical", "3x1-exponential"]:
        s = get_setting(name)
        again = Setting.from_dict(s.to_dict())
        np.testing.assert_array_equal(again.sample(50, 3), s.sample(50, 3))
        assert again.shape == s.shape and again.valuation == s.valuation


BASE = "bidders = 2\nitems = 2\n"

MALFORMED = {
    "unknown top-level key": (BASE + 'color = "red"\n[prior]\nkind = "uniform"\n', "color"),
    "unknown prior kind": (BASE + '[prior]\nkind = "pareto"\n', "prior.kind"),
    "unknown prior key": (BASE + '[prior]\nkind = "uniform"\nwidth = 2\n', "prior.width"),
    "wrong shape of low": (BASE + '[prior]\nkind = "uniform"\nlow = [0, 0, 0]\n', "prior.low"),
    "low > high": (BASE + '[prior]\nkind = "uniform"\nlow = 2.0\nhigh = 1.0\n', "prior.high"),
    "negative low": (BASE + '[prior]\nkind = "uniform"\nlow = -1.0\n', "prior.low"),
    "negative bidders": ('bidders = -1\nitems = 2\n[prior]\nkind = "uniform"\n', "bidders"),
    "zero bidders": ('bidders = 0\nitems = 2\n[prior]\nkind = "uniform"\n', "bidders"),
    "fractional items": ('bidders = 1\nitems = 1.5\n[prior]\nkind = "uniform"\n', "items"),
    "missing items": ('bidders = 1\n[prior]\nkind = "uniform"\n', "items"),
    "bad valuation": (BASE + 'valuation = "xor"\n[prior]\nkind = "uniform"\n', "valuation"),
    "bad supply": (BASE + 'supply = "some"\n[prior]\nkind = "uniform"\n', "supply"),
    "bad objective": (BASE + 'objective = "profit"\n[prior]\nkind = "uniform"\n', "objective"),
    "probabilities not summing to one": (
        BASE + '[prior]\nkind = "discrete"\nprofiles = [[[1, 1], [1, 1]], [[2, 2], [2, 2]]]\n'
        "probabilities = [0.5, 0.6]\n",
        "prior.probabilities",
    ),
    "wrong number of probabilities": (
        BASE + '[prior]\nkind = "discrete"\nprofiles = [[[1, 1], [1, 1]]]\n'
        "probabilities = [0.5, 0.5]\n",
        "prior.probabilities",
    ),
    "negative values in discrete profiles": (
        BASE + '[prior]\nkind = "discrete"\nprofiles = [[[1, -1], [1, 1]], [[2, 2], [2, 2]]]\n'
        "probabilities = [0.5, 0.5]\n",
        "prior.profiles",
    ),
    "profiles of the wrong shape": (
        BASE + '[prior]\nkind = "discrete"\nprofiles = [[[1, 1, 1], [1, 1, 1]]]\n'
        "probabilities = [1.0]\n",
        "prior.profiles",
    ),
    "types for too few bidders": (
        BASE + '[prior]\nkind = "discrete"\ntypes = [[[1, 1]]]\ntype_probabilities = [[1.0]]\n',
        "prior.types",
    ),
    "missing prior": (BASE, "prior"),
    "prior without kind": (BASE + "[prior]\nlow = 0\n", "prior.kind"),
    "negative exponential mean": (
        BASE + '[prior]\nkind = "exponential"\nmean = -3.0\n',
        "prior.mean",
    ),
    "bernoulli p above one": (BASE + '[prior]\nkind = "bernoulli"\np = 1.5\n', "prior.p"),
    "spherical with fractional points": (
        BASE + '[prior]\nkind = "spherical"\npoints = 2.5\n',
        "prior.points",
    ),
    "spherical with zero points": (
        BASE + '[prior]\nkind = "spherical"\npoints = 0\n',
        "prior.points",
    ),
    "spherical with zero ratio": (BASE + '[prior]\nkind = "spherical"\nratio = 0\n', "prior.ratio"),
    "correlated centers reversed": (
        BASE + '[prior]\nkind = "correlated"\ncenter_low = 0.9\ncenter_high = 0.1\n',
        "prior.center_high",
    ),
    "correlated spread giving negative values": (
        BASE + '[prior]\nkind = "correlated"\nspread = 0.5\n',
        "prior.spread",
    ),
    "prior kind not a string": (BASE + '[prior]\nkind = ["uniform"]\n', "prior.kind"),
    "objective not a name or table": (
        BASE + 'objective = 3\n[prior]\nkind = "uniform"\n',
        "objective",
    ),
    "objective kind not a string": (
        BASE + '[objective]\nkind = ["revenue"]\n[prior]\nkind = "uniform"\n',
        "objective",
    ),
    "invalid TOML syntax": ('bidders = 2\nitems = [2\n[prior\nkind = "uniform"\n', "<file>"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_file_names_the_field(tmp_path, case):
    text, field = MALFORMED[case]
    path = write(tmp_path, text)
    with pytest.raises(SettingError) as info:
        get_setting(str(path))
    err = info.value
    assert err.field == field, f"{case}: {err}"
    message = str(err)
    assert f"'{field}'" in message
    assert str(path) in message, "the message names the file"
    assert "\n" not in message.strip()


def test_nonexistent_file(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(SettingError, match="does not exist"):
        get_setting(str(missing))
    with pytest.raises(SettingError, match="does not exist"):
        Setting.from_toml(missing)


def test_unknown_name():
    with pytest.raises(SettingError, match="unknown setting 'no-such-setting'"):
        get_setting("no-such-setting")


def test_low_greater_than_high_message_mentions_both():
    with pytest.raises(SettingError) as info:
        Setting.from_dict(
            {"bidders": 1, "items": 1, "prior": {"kind": "uniform", "low": 2.0, "high": 1.0}}
        )
    assert "low=2.0" in str(info.value) and "high=1.0" in str(info.value)


@pytest.mark.parametrize("name", setting_names("static"))
def test_every_named_setting_builds_and_samples(name):
    s = get_setting(name)
    assert s.name == name
    assert s.num_bidders >= 1 and s.num_items >= 1
    v = s.sample(64, 0)
    assert v.shape == (64, s.num_bidders, s.num_items)
    assert np.all(np.isfinite(v)) and np.all(v >= 0)
    assert s.describe()


def test_named_families_beyond_the_listed_members():
    assert get_setting("7x1-uniform").shape == (7, 1)
    assert get_setting("5x1-exponential").shape == (5, 1)
    np.testing.assert_allclose(
        get_setting("4x1-asym-uniform").prior.support()[1][:, 0], [1, 2, 3, 4]
    )
