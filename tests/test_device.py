"""``AUTOMECH_DEVICE``: the compute device (:mod:`automech.device`).  ``cpu`` works;
anything that is not a device automech runs on, or a CUDA device that is not there, is
refused with an :class:`AutomechError` naming the value (in one line from the CLI)."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from automech import evaluate
from automech.cli import app
from automech.device import default_device
from automech.errors import AutomechError
from automech.mechanisms import VCG
from conftest import cached_setting

NO_CUDA = not torch.cuda.is_available()


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("AUTOMECH_THREADS", "1")  # the CLI sets torch's threads at start


def test_cpu_is_used_and_scores_as_the_default(monkeypatch):
    s = cached_setting("2x2-uniform")
    monkeypatch.delenv("AUTOMECH_DEVICE", raising=False)
    default = default_device()
    assert default.type == ("cpu" if NO_CUDA else "cuda")
    if NO_CUDA:
        reference = evaluate(VCG(s), samples=500, search=None).to_dict()
    monkeypatch.setenv("AUTOMECH_DEVICE", "cpu")
    assert default_device() == torch.device("cpu")
    report = evaluate(VCG(s), samples=500, search=None).to_dict()
    assert report["revenue"] > 0.5
    if NO_CUDA:  # the same device either way: the same numbers
        for key in ("revenue", "revenue_se", "welfare"):
            assert report[key] == reference[key]
    monkeypatch.setenv("AUTOMECH_DEVICE", "")  # empty: as if unset
    assert default_device() == default


@pytest.mark.parametrize("value", ["bogus", "gpu", "cuda:x", "mps", "meta"])
def test_invalid_values_are_refused_cleanly(monkeypatch, value):
    monkeypatch.setenv("AUTOMECH_DEVICE", value)
    with pytest.raises(AutomechError, match="AUTOMECH_DEVICE") as err:
        default_device()
    assert repr(value) in str(err.value)
    s = cached_setting("2x2-uniform")
    with pytest.raises(AutomechError, match="AUTOMECH_DEVICE"):
        evaluate(VCG(s), samples=100, search=None)


def test_missing_cuda_device_is_refused(monkeypatch):
    """Without CUDA, ``cuda`` is refused (documented: no silent fall back to the CPU);
    with it, an index past the last device is."""
    missing = "cuda" if NO_CUDA else f"cuda:{torch.cuda.device_count()}"
    monkeypatch.setenv("AUTOMECH_DEVICE", missing)
    with pytest.raises(AutomechError, match="CUDA device"):
        default_device()
    if NO_CUDA:
        monkeypatch.setenv("AUTOMECH_DEVICE", "cuda:1")
        with pytest.raises(AutomechError, match="0 CUDA device"):
            default_device()


@pytest.mark.parametrize("value", ["bogus", "cuda:7"])
def test_cli_reports_a_bad_device_in_one_line(monkeypatch, value):
    if value.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    monkeypatch.setenv("AUTOMECH_DEVICE", value)
    result = CliRunner().invoke(app, ["settings"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "AUTOMECH_DEVICE" in lines[0]
    monkeypatch.setenv("AUTOMECH_DEVICE", "cpu")
    assert CliRunner().invoke(app, ["settings"]).exit_code == 0
