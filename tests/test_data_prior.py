"""Priors from data (``[prior] kind = "data"``): reading wide and long CSV / Parquet files,
validation naming the row and column, the seeded train / held-out split, evaluation on
exactly the held-out profiles with a bootstrap interval, and the round trip through a
run's setting dict with the file's hash."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from automech import get_setting
from automech.errors import SettingError
from automech.evaluation import RegretSearch, evaluate
from automech.evaluation.protocol import bootstrap_ci
from automech.mechanisms.classical.vcg import VCG
from automech.problems import DataPrior, Setting


def profiles_of(num: int, n: int = 2, m: int = 2, seed: int = 0) -> np.ndarray:
    return np.round(np.random.default_rng(seed).uniform(0, 1, (num, n, m)), 6)


def wide(v: np.ndarray) -> pd.DataFrame:
    n, m = v.shape[1:]
    return pd.DataFrame({f"bidder{i}_item{j}": v[:, i, j] for i in range(n) for j in range(m)})


def long(v: np.ndarray, ids=None) -> pd.DataFrame:
    num, n, m = v.shape
    ids = [f"p{k}" for k in range(num)] if ids is None else ids
    rows = [
        {"profile": ids[k], "bidder": i, "item": j, "value": v[k, i, j]}
        for k in range(num)
        for i in range(n)
        for j in range(m)
    ]
    return pd.DataFrame(rows)


def write(tmp_path, frame: pd.DataFrame, name: str = "bids.csv"):
    path = tmp_path / name
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def setting_for(path, n: int = 2, m: int = 2, **options) -> Setting:
    return Setting.from_dict(
        {"bidders": n, "items": m, "prior": {"kind": "data", "path": str(path), **options}}
    )


def refused(tmp_path, content, *fragments, n=2, m=2, name="bids.csv", **options):
    """Writing ``content`` (text or a frame) and building the setting fails in one line
    naming every fragment."""
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    else:
        write(tmp_path, content, name)
    with pytest.raises(SettingError) as err:
        setting_for(path, n, m, **options)
    text = str(err.value)
    assert "\n" not in text, text
    for fragment in fragments:
        assert fragment in text, text
    return text


# ---------------------------------------------------------------------- validation


def test_missing_and_unreadable_files_are_refused(tmp_path):
    with pytest.raises(SettingError, match="does not exist"):
        setting_for(tmp_path / "nope.csv")
    refused(tmp_path, "", "is empty")
    refused(tmp_path, "not parquet at all", "cannot read", "as parquet", name="bids.parquet")
    refused(tmp_path, "x", "cannot tell the format", "'.txt'", name="bids.txt")
    # an explicit format overrides the suffix
    write(tmp_path, wide(profiles_of(20)))
    (tmp_path / "bids.csv").rename(tmp_path / "bids.txt")
    assert setting_for(tmp_path / "bids.txt", format="csv").prior.format == "csv"


def test_missing_and_extra_columns_are_listed(tmp_path):
    v = wide(profiles_of(20))
    refused(
        tmp_path,
        v.drop(columns=["bidder0_item1", "bidder1_item1"]),
        "lacks column(s) 'bidder0_item1', 'bidder1_item1'",
        "0-based",
    )
    refused(tmp_path, v.assign(auction_id=1, note="x"), "unexpected", "'auction_id', 'note'")
    renamed = v.rename(columns={"bidder1_item1": "bidder1_itemX"})
    refused(tmp_path, renamed, "lacks column(s) 'bidder1_item1'", "unexpected: 'bidder1_itemX'")
    v.to_csv(tmp_path / "indexed.csv")  # with pandas' index
    with pytest.raises(SettingError, match="'Unnamed: 0'.*index=False"):
        setting_for(tmp_path / "indexed.csv")
    # a file made for 3 bidders on a 2-bidder setting
    refused(tmp_path, wide(profiles_of(20, n=3)), "unexpected", "'bidder2_item0'", "2 bidder(s)")
    refused(tmp_path, long(profiles_of(20)).drop(columns="value"), "lacks", "'value'", "long")
    refused(tmp_path, long(profiles_of(20)).assign(day=1), "unexpected", "'day'")


@pytest.mark.parametrize(
    "bad, problem",
    [
        ("abc", "'abc' is not a finite number"),
        ("", "empty (NaN) is not a finite number"),
        ("inf", "is not a finite number"),
        ("-0.5", "-0.5 is negative"),
    ],
)
def test_bad_values_name_the_first_row_and_column(tmp_path, bad, problem):
    frame = wide(profiles_of(20)).astype(object)
    frame.loc[7, "bidder1_item0"] = bad
    frame.loc[9, "bidder0_item0"] = bad  # a later row: the first bad one is named
    refused(tmp_path, frame, "row 7 (line 9)", "column 'bidder1_item0'", problem)


def test_long_format_errors_name_the_row(tmp_path):
    frame = long(profiles_of(12))
    dup = pd.concat([frame, frame.iloc[[5]]], ignore_index=True)
    refused(tmp_path, dup, "row 5 (line 7) and row 48 (line 50)", "two values", "'p1'")
    refused(
        tmp_path,
        frame.drop(index=10).reset_index(drop=True),
        "profile 'p2' has no value for bidder 1, item 0",
    )
    bad = frame.copy()
    bad.loc[3, "bidder"] = 2
    refused(tmp_path, bad, "row 3 (line 5)", "column 'bidder'", "2 is not a bidder index 0..1")
    bad = frame.astype({"item": object})
    bad.loc[4, "item"] = "x"
    refused(tmp_path, bad, "row 4", "column 'item'", "'x' is not a item index")
    bad = frame.copy()
    bad.loc[6, "value"] = -1.0
    refused(tmp_path, bad, "row 6", "column 'value'", "negative")


def test_too_few_rows_and_bad_options(tmp_path):
    refused(tmp_path, wide(profiles_of(9)), "9 profile(s)", "at least 10")
    refused(tmp_path, wide(profiles_of(10)), "1 held-out", holdout=0.01)
    refused(tmp_path, wide(profiles_of(10)), "1 training", holdout=0.9)
    frame = wide(profiles_of(20))
    refused(tmp_path, frame, "prior.holdout", "(0, 1)", holdout=1.5)
    refused(tmp_path, frame, "prior.smoothing", ">= 0", smoothing=-1)
    refused(tmp_path, frame, "prior.split_seed", split_seed=-1)
    refused(tmp_path, frame, "prior.format", "'xls'", format="xls")
    refused(tmp_path, frame, "prior.bandwidth", "unknown key", bandwidth=1)
    refused(tmp_path, frame, "prior.sha256", "64", sha256="abc")
    with pytest.raises(SettingError, match="prior.path.*missing"):
        Setting.from_dict({"bidders": 1, "items": 1, "prior": {"kind": "data"}})


# ---------------------------------------------------------------------- reading, split


def test_wide_long_and_parquet_give_the_same_profiles(tmp_path):
    v = profiles_of(30, n=2, m=3)
    a = setting_for(write(tmp_path, wide(v)), 2, 3).prior
    shuffled = long(v).sample(frac=1.0, random_state=1)  # rows in any order
    b = setting_for(write(tmp_path, long(v).iloc[::-1], "long.csv"), 2, 3).prior
    c = setting_for(write(tmp_path, wide(v), "bids.parquet"), 2, 3).prior
    d = setting_for(write(tmp_path, long(v), "long.pq"), 2, 3).prior
    np.testing.assert_array_equal(a.profiles, v)
    np.testing.assert_array_equal(c.profiles, v)
    np.testing.assert_array_equal(d.profiles, v)
    # long files keep the order of each profile's first row
    np.testing.assert_array_equal(b.profiles, v[::-1])
    ids = list(dict.fromkeys(shuffled["profile"]))
    e = setting_for(write(tmp_path, shuffled, "shuffled.csv"), 2, 3).prior
    np.testing.assert_array_equal(e.profiles, v[[int(p[1:]) for p in ids]])
    assert c.format == "parquet" and d.format == "parquet"


def test_split_is_seeded_disjoint_and_covers_the_file(tmp_path):
    path = write(tmp_path, wide(profiles_of(40)))
    p = setting_for(path, holdout=0.25, split_seed=3).prior
    assert len(p.test_index) == 10 and len(p.train_index) == 30
    assert set(p.test_index).isdisjoint(p.train_index)
    assert sorted([*p.test_index, *p.train_index]) == list(range(40))
    again = setting_for(path, holdout=0.25, split_seed=3).prior
    other = setting_for(path, holdout=0.25, split_seed=4).prior
    np.testing.assert_array_equal(p.test_index, again.test_index)
    assert not np.array_equal(p.test_index, other.test_index)
    # held-out profiles in file order, whatever num and seed
    np.testing.assert_array_equal(p.test_profiles(5, 1), p.profiles[np.sort(p.test_index)])


def test_sample_draws_training_rows_only(tmp_path):
    p = setting_for(write(tmp_path, wide(profiles_of(40)))).prior
    draws = p.sample(2000, np.random.default_rng(0))
    train = {tuple(r.ravel()) for r in p.train}
    assert {tuple(r.ravel()) for r in draws} == train  # every training row, nothing else
    low, high = p.support()
    np.testing.assert_array_equal(low, 0.0)
    np.testing.assert_array_equal(high, p.train.max(axis=0))
    assert p.atoms(0) is None and not p.independent


def test_smoothing_adds_kernel_noise_clipped_at_zero(tmp_path):
    p = setting_for(write(tmp_path, wide(profiles_of(40))), smoothing=0.5).prior
    draws = p.sample(5000, np.random.default_rng(0))
    assert draws.min() >= 0 and (draws == 0).any()  # clipped
    train = {tuple(r.ravel()) for r in p.train}
    assert not any(tuple(r.ravel()) in train for r in draws[:100])
    np.testing.assert_allclose(p.bandwidth, 0.5 * p.train.std(axis=0, ddof=1))
    low, high = p.support()
    assert np.all(draws <= high)
    np.testing.assert_allclose(draws.mean(axis=0), p.train.mean(axis=0), atol=0.03)


# ---------------------------------------------------------------------- evaluation


def test_evaluation_uses_exactly_the_held_out_profiles(tmp_path):
    s = setting_for(write(tmp_path, wide(profiles_of(60))))
    mech = VCG(s)
    held = s.prior.profiles[s.prior.test_index]
    _, pay = mech.outcome(held)
    result = evaluate(mech, samples=10_000, search=None)
    assert result.samples == len(held) == 18
    assert result.revenue == pytest.approx(pay.sum(axis=1).mean(), abs=1e-12)
    low, high = result.revenue_ci
    assert low <= result.revenue <= high
    assert json.loads(json.dumps(result.to_dict()))["revenue_ci"] == [low, high]
    # the regret search runs on the held-out profiles too (VCG is DSIC)
    searched = evaluate(mech, search=RegretSearch(profiles=5, random=16, scales=4, grid=4))
    assert searched.regret_samples == 5 and searched.regret_max < 1e-9
    # other priors: no interval, and test profiles are draws with the seed as before
    uniform = get_setting("2x2-uniform")
    other = evaluate(VCG(uniform), samples=300, seed=5, search=None)
    assert other.revenue_ci is None
    _, pay = VCG(uniform).outcome(uniform.sample(300, 5))
    assert other.revenue == pytest.approx(pay.sum(axis=1).mean(), abs=1e-12)


def test_bootstrap_interval_contains_the_mean_and_shrinks():
    rng = np.random.default_rng(0)
    widths = []
    for size in (40, 400, 4000):
        x = rng.exponential(size=size)
        low, high = bootstrap_ci(x, seed=1)
        assert low < x.mean() < high
        assert bootstrap_ci(x, seed=1) == [low, high]  # seeded
        widths.append(high - low)
    assert widths[0] > 2 * widths[1] > 4 * widths[2]
    # about mean +- 1.96 se
    se = x.std() / np.sqrt(len(x))
    assert widths[2] == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_interval_shrinks_with_more_rows_in_the_file(tmp_path):
    widths = []
    for num in (40, 400):
        path = write(tmp_path, wide(profiles_of(num, seed=num)), f"b{num}.csv")
        r = evaluate(VCG(setting_for(path)), search=None)
        widths.append(r.revenue_ci[1] - r.revenue_ci[0])
    assert widths[1] < widths[0] / 2


# ---------------------------------------------------------------------- files and round trip


def test_relative_path_is_taken_from_the_setting_file(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    write(tmp_path / "data", wide(profiles_of(20)))
    toml = tmp_path / "auction.toml"
    toml.write_text('bidders = 2\nitems = 2\n[prior]\nkind = "data"\npath = "data/bids.csv"\n')
    monkeypatch.chdir(tmp_path / "data")  # elsewhere
    s = get_setting(str(toml))
    assert s.prior.path == tmp_path / "data" / "bids.csv"
    assert s.prior.to_dict()["path"] == str(tmp_path / "data" / "bids.csv")
    assert "bids.csv" in s.describe() and "14 training / 6 held-out" in s.describe()


def test_round_trip_and_changed_file_refused(tmp_path, monkeypatch):
    path = write(tmp_path, wide(profiles_of(30)))
    s = setting_for(path, holdout=0.4, split_seed=7, smoothing=0.1)
    spec = json.loads(json.dumps(s.to_dict()))  # as a run directory stores it
    assert spec["prior"]["sha256"] and spec["prior"]["path"] == str(path)
    monkeypatch.chdir(tmp_path.parent)
    back = Setting.from_dict(spec)
    assert back.to_dict() == spec
    np.testing.assert_array_equal(back.prior.profiles, s.prior.profiles)
    np.testing.assert_array_equal(back.prior.test_index, s.prior.test_index)
    np.testing.assert_array_equal(
        back.sample(50, 3), s.sample(50, 3)
    )  # same training rows, same noise
    # the data change: refused, naming the file; without the hash it loads the new data
    frame = wide(profiles_of(30))
    frame.loc[0, "bidder0_item0"] = 0.5
    frame.to_csv(path, index=False)
    with pytest.raises(SettingError, match="has changed since this setting was saved") as err:
        Setting.from_dict(spec)
    assert "prior.sha256" in str(err.value) and str(path) in str(err.value)
    spec["prior"].pop("sha256")
    assert Setting.from_dict(spec).prior.profiles[0, 0, 0] == 0.5


def test_array_built_prior_has_no_file_form():
    p = DataPrior(profiles_of(20))
    assert p.sample(3, np.random.default_rng(0)).shape == (3, 2, 2)
    with pytest.raises(NotImplementedError):
        p.to_dict()
