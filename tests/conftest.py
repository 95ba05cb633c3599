"""Shared fixtures for the automech test suite.

The suite runs on small CPU machines.  Torch's intra-op thread pool is pinned to one
thread: on a 2-core machine that is busy with other work, two OpenMP threads make the
small tensor operations used here hundreds of times slower (each op waits on a barrier
with a descheduled thread).  Everything below is deterministic given its seeds.
"""

from __future__ import annotations

import functools
import math
import os

import pytest
import torch

from automech import get_setting
from automech.mechanisms import MECHANISMS, Mechanism
from automech.problems import Setting

torch.set_num_threads(1)
os.environ["AUTOMECH_THREADS"] = "1"  # what the CLI sets when a test invokes it


@functools.cache
def cached_setting(name: str) -> Setting:
    """A named setting, built once per test session."""
    return get_setting(name)


@functools.cache
def cached_mechanism(mechanism: str, setting: str) -> Mechanism:
    """A classical mechanism with its tuned prices/reserves, built once per session
    (tuning draws 2^19 profiles, so building is the slow part)."""
    return MECHANISMS[mechanism](cached_setting(setting))


@pytest.fixture
def mech():
    """``mech("grand-bundle", "2x2-uniform")``: a cached classical mechanism."""
    return cached_mechanism


def within(value: float, exact: float, se: float, k: float = 4.0) -> bool:
    """True when ``value`` is within ``k`` standard errors of ``exact``."""
    return math.isfinite(value) and abs(value - exact) <= k * max(se, 1e-12)


def assert_close(value: float, exact: float, se: float, k: float = 4.0) -> None:
    assert within(value, exact, se, k), (
        f"{value:.6f} is {abs(value - exact) / max(se, 1e-12):.1f} SE from the exact "
        f"{exact:.6f} (SE {se:.6f})"
    )


def interrupt_third_step(monkeypatch, method) -> None:
    """Make ``method``'s third ``after_step`` raise KeyboardInterrupt (after the checkpoint
    of step 2 in the resume tests); ``monkeypatch.undo()`` restores it."""
    calls = {"n": 0}
    original = type(method).after_step

    def interrupt(self, mechanism, ctx):
        original(self, mechanism, ctx)
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(type(method), "after_step", interrupt)
