"""The one place where the compute device and the CPU threads are chosen.

Device: ``AUTOMECH_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``...) overrides; otherwise CUDA is
used when present, else the CPU.

Threads: torch's intra-op threads are set once per process by :func:`configure_threads`
(the CLI does it at start, every sweep worker with its own share): ``AUTOMECH_THREADS``
overrides, otherwise the cores this process may run on (its CPU affinity, not the
machine's count), so two jobs pinned to one core each do not oversubscribe it.
"""

from __future__ import annotations

import os

import torch

from automech.errors import AutomechError


def default_device() -> torch.device:
    """The device automech computes on.

    Raises
    ------
    AutomechError
        when ``AUTOMECH_DEVICE`` names no device, or a CUDA device that is not there.
    """
    name = os.environ.get("AUTOMECH_DEVICE")
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise AutomechError(
            f"AUTOMECH_DEVICE={name!r} is not a device (use cpu, cuda or cuda:N)"
        ) from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise AutomechError(
                f"AUTOMECH_DEVICE={name!r} but this machine has {count} CUDA device(s)"
            )
    elif device.type != "cpu":
        raise AutomechError(f"AUTOMECH_DEVICE={name!r}: automech runs on cpu or cuda")
    return device


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Torch threads for this process: ``AUTOMECH_THREADS``, else :func:`available_cores`.

    Raises
    ------
    AutomechError
        when ``AUTOMECH_THREADS`` is not a positive integer.
    """
    raw = os.environ.get("AUTOMECH_THREADS")
    if not raw:
        return available_cores()
    try:
        threads = int(raw)
    except ValueError:
        threads = 0
    if threads < 1:
        raise AutomechError(f"AUTOMECH_THREADS must be a positive integer, got {raw!r}")
    return threads


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads (default :func:`default_threads`); returns them."""
    threads = default_threads() if threads is None else threads
    if threads < 1:
        raise AutomechError(f"threads must be at least 1, got {threads}")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
