"""Run directories: save and load give the same mechanism; bad directories and
checkpoints raise RunError with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import automech
from automech.errors import RunError
from automech.mechanisms import VCG, PostedPrice
from automech.runs import CHECKPOINT, CONFIG, Run
from conftest import cached_mechanism, cached_setting


@pytest.mark.parametrize(
    "mechanism, setting",
    [
        ("grand-bundle", "2x2-uniform"),
        ("posted-price", "2x2-uniform"),
        ("bundle-posted-price", "1x2-uniform"),
        ("separate-myerson", "2x2-uniform"),
        ("myerson", "2x1-asym-uniform"),
        ("vcg", "2x2-unit-uniform"),
    ],
)
def test_save_load_identical_outcomes(tmp_path, mechanism, setting):
    original = cached_mechanism(mechanism, setting)
    run = automech.save(original, tmp_path / "run")
    assert (run.path / CHECKPOINT).is_file() and (run.path / CONFIG).is_file()
    loaded = automech.load(tmp_path / "run")
    assert type(loaded) is type(original) and loaded.config() == original.config()
    assert loaded.setting.to_dict() == original.setting.to_dict()
    bids = cached_setting(setting).sample(1_000, 9)
    a0, p0 = original.outcome(bids)
    a1, p1 = loaded.outcome(bids)
    np.testing.assert_array_equal(a0, a1)
    np.testing.assert_array_equal(p0, p1)
    # the rebuilt mechanism is not re-tuned: the saved prices/reserve are kept
    config = json.loads((run.path / CONFIG).read_text())
    assert config["mechanism"] == mechanism and config["config"] == original.config()


def test_saved_prices_survive_even_if_not_tuned(tmp_path):
    pp = PostedPrice(cached_setting("2x2-uniform"), prices=[0.3, 0.9])
    automech.save(pp, tmp_path)
    assert automech.load(tmp_path).prices.tolist() == [0.3, 0.9]


def test_load_missing_directory(tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        automech.load(tmp_path / "nowhere")


def test_load_directory_without_checkpoint(tmp_path):
    with pytest.raises(RunError, match=f"no checkpoint.*{CHECKPOINT}"):
        automech.load(tmp_path)


def test_load_corrupted_checkpoint(tmp_path):
    automech.save(VCG(cached_setting("2x2-uniform")), tmp_path)
    (tmp_path / CHECKPOINT).write_bytes(b"this is not a torch checkpoint \x00\x01\x02")
    with pytest.raises(RunError, match="cannot read checkpoint"):
        automech.load(tmp_path)


def test_load_truncated_checkpoint(tmp_path):
    automech.save(PostedPrice(cached_setting("2x2-uniform"), prices=[0.5, 0.5]), tmp_path)
    data = (tmp_path / CHECKPOINT).read_bytes()
    (tmp_path / CHECKPOINT).write_bytes(data[: len(data) // 2])
    with pytest.raises(RunError, match="cannot read checkpoint"):
        automech.load(tmp_path)


@pytest.mark.parametrize(
    "payload, pattern",
    [
        ([1, 2, 3], "not an automech checkpoint"),
        ({"mechanism": "vcg"}, "not an automech checkpoint"),
        ({"mechanism": "no-such", "setting": {}, "state_dict": {}}, "unknown mechanism 'no-such'"),
        ("config", "unexpected keyword"),
        ("state", "does not rebuild mechanism 'posted-price'"),
    ],
)
def test_load_wrong_checkpoint_contents(tmp_path, payload, pattern):
    pp = PostedPrice(cached_setting("2x2-uniform"), prices=[0.5, 0.5])
    automech.save(pp, tmp_path)
    good = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    if payload == "config":
        payload = {**good, "config": {"colour": 1}}
    elif payload == "state":
        payload = {**good, "state_dict": {"prices": torch.zeros(3, dtype=torch.float64)}}
    torch.save(payload, tmp_path / CHECKPOINT)
    with pytest.raises(RunError, match=pattern) as info:
        automech.load(tmp_path)
    assert "\n" not in str(info.value)


def test_run_history_and_json(tmp_path):
    run = Run(tmp_path / "r")
    run.log({"step": 1, "loss": torch.tensor(0.5)})
    run.log({"step": 2, "loss": np.float64(0.25)})
    assert run.history() == [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]
    run.write_json("metrics.json", {"x": np.arange(3)})
    assert run.read_json("metrics.json") == {"x": [0, 1, 2]}
    assert not list(run.path.glob(".*.tmp")), "writes are atomic (no temp file left)"


class _Planted:
    """Unpickling this writes a file: what a crafted checkpoint would do."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (Path.write_text, (Path(self.target), "pwned"))


def test_a_checkpoint_that_would_run_code_is_refused_and_never_runs(tmp_path):
    pp = PostedPrice(cached_setting("2x2-uniform"), prices=[0.5, 0.5])
    automech.save(pp, tmp_path / "run")
    good = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)
    marker = tmp_path / "marker.txt"
    torch.save({**good, "config": {"prices": _Planted(marker)}}, tmp_path / "run" / CHECKPOINT)
    with pytest.raises(RunError, match="not plain data") as info:
        automech.load(tmp_path / "run")
    assert "\n" not in str(info.value) and "weights_only=False" in str(info.value)
    assert not marker.exists()
    from typer.testing import CliRunner

    from automech.cli import app

    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "run")])
    assert result.exit_code == 2 and "not plain data" in result.stderr
    assert not marker.exists()
