"""Torch threads are chosen in one place (automech.device): the cores this process may
use, or AUTOMECH_THREADS."""

from __future__ import annotations

import os

import pytest
import torch
from typer.testing import CliRunner

from automech.cli import app
from automech.device import available_cores, configure_threads, default_threads
from automech.errors import AutomechError


@pytest.fixture(autouse=True)
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_default_is_the_cores_this_process_may_use(monkeypatch):
    monkeypatch.delenv("AUTOMECH_THREADS", raising=False)
    assert default_threads() == available_cores() == len(os.sched_getaffinity(0))


def test_override_and_refusal(monkeypatch):
    monkeypatch.setenv("AUTOMECH_THREADS", "1")
    assert configure_threads() == 1 and torch.get_num_threads() == 1
    for bad in ("0", "-2", "many"):
        monkeypatch.setenv("AUTOMECH_THREADS", bad)
        with pytest.raises(AutomechError, match="AUTOMECH_THREADS"):
            default_threads()


def test_the_cli_sets_threads_once_at_start(monkeypatch):
    monkeypatch.setenv("AUTOMECH_THREADS", "1")
    torch.set_num_threads(2)
    result = CliRunner().invoke(app, ["methods", "lp"])
    assert result.exit_code == 0 and torch.get_num_threads() == 1
    monkeypatch.setenv("AUTOMECH_THREADS", "zero")
    result = CliRunner().invoke(app, ["methods", "lp"])
    assert result.exit_code == 2 and "AUTOMECH_THREADS" in result.stderr
