"""The one place where the compute device is chosen.

``AUTOMECH_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``...) overrides; otherwise CUDA is used
when present, else the CPU.
"""

from __future__ import annotations

import os

import torch


def default_device() -> torch.device:
    """The device automech computes on."""
    name = os.environ.get("AUTOMECH_DEVICE")
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
