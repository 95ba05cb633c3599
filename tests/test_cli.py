"""The command line, through Typer's test runner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from automech.cli import JSON_KEYS, app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_clean_error(result, *fragments: str) -> None:
    """Exit code 2, one line on stderr naming the problem, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert result.stdout == ""


def test_settings_lists_named_settings():
    result = invoke("settings")
    assert result.exit_code == 0, result.output
    for name in ("2x2-uniform", "3x10-uniform", "2x4-unit-spherical", "3x1-exponential"):
        assert name in result.stdout


def test_baselines_json():
    result = invoke(
        "baselines", "2x2-uniform", "--samples", "20000", "--regret-profiles", "200", "--json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["setting"] == "2x2-uniform"
    results = data["results"]
    assert {
        "vcg",
        "separate-myerson",
        "grand-bundle",
        "posted-price",
        "bundle-posted-price",
        "first-price",
    } <= set(results)
    assert "myerson" in data["skipped"]  # one item only
    for name, row in results.items():
        for key in (
            "revenue",
            "revenue_se",
            "welfare",
            "ir_violation_rate",
            "regret_mean",
            "regret_max",
            "samples",
        ):
            assert key in row, (name, key)
        assert set(JSON_KEYS) <= set(row)
        assert row["samples"] == 20_000 and row["regret_samples"] == 200
        assert row["ir_violation_rate"] == 0.0
    sep = results["separate-myerson"]
    assert abs(sep["revenue"] - 5 / 6) <= 4 * sep["revenue_se"]
    gb = results["grand-bundle"]
    assert abs(gb["revenue"] - 0.839244) <= 4 * gb["revenue_se"]
    for truthful in ("vcg", "separate-myerson", "grand-bundle", "posted-price"):
        assert results[truthful]["regret_max"] <= 1e-9
    assert results["first-price"]["regret_mean"] > 0.05


def test_baselines_table_and_save(tmp_path):
    result = invoke(
        "baselines", "3x1-uniform", "--samples", "2000", "--no-regret", "--save", tmp_path
    )
    assert result.exit_code == 0, result.output
    assert "myerson" in result.stdout and "skipped" in result.stdout
    assert (tmp_path / "myerson" / "checkpoint.pt").is_file()
    again = invoke("evaluate", tmp_path / "myerson", "--samples", "20000", "--no-regret", "--json")
    assert again.exit_code == 0, again.output
    row = json.loads(again.stdout)["results"]["myerson"]
    assert abs(row["revenue"] - 0.53125) <= 4 * row["revenue_se"]
    assert row["regret_mean"] is None


def test_baselines_table_shows_the_objective_when_it_is_not_revenue():
    cost = invoke("baselines", "U-3x2-cp1-cd0", "--samples", "2000", "--no-regret")
    assert cost.exit_code == 0, cost.output
    assert "objective" in cost.stdout.split("mechanism")[1].splitlines()[0]
    plain = invoke("baselines", "3x1-uniform", "--samples", "2000", "--no-regret")
    assert "objective" not in plain.stdout.split("mechanism")[1].splitlines()[0]


def test_baselines_from_toml_file(tmp_path):
    path = tmp_path / "asym.toml"
    path.write_text(
        'bidders = 1\nitems = 2\n[prior]\nkind = "uniform"\nlow = [4, 4]\nhigh = [16, 7]\n'
    )
    result = invoke("baselines", path, "--samples", "2000", "--no-regret", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["setting"] == "asym"
    assert "separate-myerson" in data["results"]


def test_unknown_setting_is_a_clean_error():
    assert_clean_error(invoke("baselines", "no-such-setting", "--json"), "no-such-setting")


def test_missing_run_directory_is_a_clean_error(tmp_path):
    assert_clean_error(invoke("evaluate", tmp_path / "missing"), "does not exist")


def test_run_directory_without_checkpoint_is_a_clean_error(tmp_path):
    assert_clean_error(invoke("evaluate", tmp_path), "no checkpoint")


@pytest.mark.parametrize(
    "text, field",
    [
        ('bidders = 2\nitems = 2\n[prior]\nkind = "uniform"\nlow = [0, 0, 0]\n', "prior.low"),
        ("bidders = 2\nitems = [2\n", "not valid TOML"),
        (
            'bidders = 2\nitems = 1\n[prior]\nkind = "discrete"\ntypes = [[[1.0]], [[-1.0]]]\n'
            "type_probabilities = [[1.0], [1.0]]\n",
            "prior.types[1]",
        ),
    ],
)
def test_malformed_toml_is_a_clean_error(tmp_path, text, field):
    # a long path, so that a wrapped message would show up as two lines
    path = tmp_path / ("a-rather-long-setting-file-name-" * 3 + ".toml")
    path.write_text(text)
    assert_clean_error(invoke("baselines", path, "--no-regret"), field, str(path))


def test_train_then_evaluate(tmp_path):
    out = tmp_path / "gb"
    result = invoke(
        "train",
        "2x2-uniform",
        "--method",
        "grand-bundle",
        "--out",
        out,
        "--eval-samples",
        "5000",
        "--regret-profiles",
        "100",
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["run"] == str(out)
    assert set(JSON_KEYS) <= set(data["results"]["grand-bundle"])
    for name in ("checkpoint.pt", "config.json", "metrics.json"):
        assert (out / name).is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "grand-bundle" and config["seed"] == 0
    evaluated = invoke("evaluate", out, "--samples", "20000", "--regret-profiles", "100", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    row = json.loads(evaluated.stdout)["results"]["grand-bundle"]
    assert abs(row["revenue"] - 0.839244) <= 4 * row["revenue_se"]
    assert row["regret_max"] <= 1e-9 and row["samples"] == 20_000
    # the table form works too
    table = invoke("evaluate", out, "--samples", "2000", "--no-regret")
    assert table.exit_code == 0 and "grand-bundle" in table.stdout


def test_train_unknown_option_is_a_clean_error(tmp_path):
    result = invoke(
        "train",
        "2x2-uniform",
        "--method",
        "grand-bundle",
        "--out",
        tmp_path / "x",
        "--set",
        "colour=3",
    )
    assert_clean_error(result, "colour")
    assert not (tmp_path / "x" / "checkpoint.pt").exists()


def test_train_malformed_set_is_a_clean_error(tmp_path):
    # brackets in a message must not be read as Rich markup
    assert_clean_error(
        invoke("train", "2x2-uniform", "--method", "vcg", "--out", tmp_path / "y", "--set", "[/x]"),
        "[/x]",
    )


def test_train_unknown_method_and_not_applicable(tmp_path):
    assert_clean_error(
        invoke("train", "2x2-uniform", "--method", "no-such-method", "--out", tmp_path / "z"),
        "no-such-method",
    )
    assert_clean_error(
        invoke("train", "2x2-unit-uniform", "--method", "grand-bundle", "--out", tmp_path / "w"),
        "unit-demand",
    )


def test_methods_lists_every_method_with_the_settings_it_applies_to():
    from automech.methods import METHODS

    result = invoke("methods", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert set(rows) == set(METHODS)
    assert "1x2-uniform" in rows["rochetnet"]["settings"]
    assert "2x2-uniform" not in rows["rochetnet"]["settings"]  # one bidder only
    assert rows["rochetnet"]["description"]


def test_methods_name_prints_typed_options():
    result = invoke("methods", "rochetnet", "--json")
    assert result.exit_code == 0, result.output
    options = {o["name"]: o for o in json.loads(result.stdout)["options"]}
    assert options["menu_size"] == {
        "name": "menu_size",
        "type": "int",
        "default": 64,
        "range": ">= 1",
        "doc": options["menu_size"]["doc"],
    }
    assert options["lr_schedule"]["type"].startswith('"constant"')
    table = invoke("methods", "lp")
    assert table.exit_code == 0 and "max_nonzeros" in table.stdout


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--set", "steps=-5"], ["'steps'", ">= 1", "-5"]),
        (["--set", "lr=0"], ["'lr'", "> 0"]),
        (["--set", "menu_size=0"], ["'menu_size'"]),
        (["--set", "no_such=1"], ["no option 'no_such'"]),
    ],
)
def test_train_refuses_bad_options_up_front(args, fragments, tmp_path):
    result = invoke("train", "1x2-uniform", "--method", "rochetnet", "--out", tmp_path / "r", *args)
    assert_clean_error(result, *fragments)
    assert not (tmp_path / "r").exists()


def test_methods_unknown_name_is_a_clean_error():
    assert_clean_error(invoke("methods", "no-such-method"), "unknown method")


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "gb"
    result = invoke(
        "train",
        "1x2-uniform",
        "--method",
        "grand-bundle",
        "--out",
        out,
        "--eval-samples",
        "500",
        "--regret-profiles",
        "10",
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "1x2-uniform", "--method", "grand-bundle", "--eval-samples", "0"], ">= 1"),
        (["train", "1x2-uniform", "--method", "grand-bundle", "--eval-samples", "-1"], ">= 1"),
        (["train", "1x2-uniform", "--method", "rochetnet", "--steps", "0"], "'steps'"),
        (
            ["train", "1x2-uniform", "--method", "rochetnet", "--steps", "3", "--set", "steps=2.5"],
            "disagree",
        ),
        (["train", "1x2-uniform", "--method", "rochetnet", "--set", "batch_size=0"], "batch_size"),
        (["train", "1x2-uniform", "--method", "rochetnet", "--set", "lr=-1"], "'lr'"),
        (["train", "1x2-uniform", "--method", "rochetnet", "--set", "lr=nan"], "'lr'"),
        (
            ["train", "1x2-uniform", "--method", "rochetnet", "--set", "temperature=0"],
            "temperature",
        ),
        (["train", "1x2-uniform", "--method", "grid-search"], "does not apply"),
        (["train", "seq-sales-3x2", "--method", "rochetnet"], "does not apply"),
        (["evaluate", "RUN", "--samples", "0"], ">= 1"),
        (["evaluate", "RUN", "--samples", "-5"], ">= 1"),
        (["evaluate", "RUN", "--setting", "2x2-uniform"], "designed for 1 bidder"),
        (["evaluate", "RUN", "--setting", "seq-sales-3x2"], "different kinds"),
        (["evaluate", "RUN", "--regret-profiles", "0"], "profiles must be an integer >= 1"),
        (["baselines", "1x2-uniform", "--samples", "0"], ">= 1"),
        (["baselines", "seq-sales-3x2"], "dynamic setting"),
        (["describe", "RUN", "--samples", "0"], ">= 1"),
    ],
)
def test_bad_inputs_get_one_clean_line(args, fragment, saved_run, tmp_path):
    args = [str(saved_run) if a == "RUN" else a for a in args]
    if args[0] == "train":
        args += ["--out", str(tmp_path / "run")]
    assert_clean_error(invoke(*args), fragment)


def test_a_huge_setting_file_is_refused_at_once(tmp_path):
    path = tmp_path / "huge.toml"
    path.write_text('bidders = 1000000000\nitems = 2\n[prior]\nkind = "uniform"\n')
    assert_clean_error(
        invoke("train", path, "--method", "grand-bundle", "--out", tmp_path / "r"),
        "bidders",
        "at most",
    )


def test_train_says_when_a_design_earns_less_than_a_classical_mechanism(tmp_path):
    """An under-trained menu (2 steps) is compared with the best strategyproof classical
    mechanism on the same profiles; the table shows both, stderr says it in plain
    words, and metrics.json records the comparison."""
    result = invoke(
        "train",
        "1x2-uniform",
        "--method",
        "rochetnet",
        "--steps",
        "2",
        "--set",
        "menu_size=4",
        "--out",
        tmp_path / "r",
        "--eval-samples",
        "5000",
        "--regret-profiles",
        "10",
    )
    assert result.exit_code == 0, result.output
    assert "grand-bundle (best" in result.stdout
    assert "earns less than a classical mechanism" in result.stderr
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["below_baseline"] and metrics["baseline"]["mechanism"] == "grand-bundle"
    assert metrics["baseline"]["samples"] == metrics["samples"]
    assert metrics["revenue"] < metrics["baseline"]["revenue"]


def test_a_design_at_the_optimum_is_not_flagged(tmp_path):
    """The LP on a finite prior is the optimum: never below a classical mechanism."""
    path = tmp_path / "four.toml"
    path.write_text(
        'bidders = 2\nitems = 1\n[prior]\nkind = "discrete"\n'
        "profiles = [[[1.0], [2.0]], [[3.0], [1.0]], [[2.0], [2.0]], [[4.0], [3.0]]]\n"
        "probabilities = [0.1, 0.2, 0.3, 0.4]\n"
    )
    result = invoke(
        "train", path, "--method", "lp", "--out", tmp_path / "lp", "--regret-profiles", "10"
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "lp" / "metrics.json").read_text())
    assert not metrics["below_baseline"] and metrics["gap_to_baseline"] >= -1e-9
    assert "earns less" not in result.stderr
