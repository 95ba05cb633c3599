"""Per-profile regrets: the numbers the protocol's regret aggregates summarise.

:func:`profile_regrets` runs the same misreport search as :func:`automech.evaluation.evaluate`
on the same test profiles (same seed, same order of bidders, same random misreports), and
returns every ``rgt_i(v)`` instead of their mean and maximum, e.g. for a histogram.  With
the budget recorded in a run's ``metrics.json`` (``search``, ``regret_samples``, ``seed``)
its mean over profiles and bidders equals the run's ``regret_mean``.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import torch

from automech.device import default_device
from automech.evaluation.protocol import TEST_PROFILES, TEST_SEED
from automech.evaluation.regret import RegretSearch, best_misreport_utility
from automech.mechanisms.base import Mechanism
from automech.problems.setting import Setting


def profile_regrets(
    mechanism: Mechanism,
    setting: Setting | None = None,
    search: RegretSearch | None = None,
    seed: int = TEST_SEED,
    samples: int = TEST_PROFILES,
) -> np.ndarray:
    """Regret of every bidder at each of the first ``search.profiles`` test profiles.

    Args:
        search: misreport budget (default :class:`RegretSearch`()).
        seed: seed of the test profiles and random misreports (the protocol's default).
        samples: size of the protocol's test set (``evaluate``'s default); regrets are
            searched on its first ``min(search.profiles, samples)`` profiles, as
            :func:`evaluate` does.

    Returns:
        float64 array (P, n), each entry >= 0.
    """
    setting = setting or mechanism.setting
    search = search or RegretSearch()
    profiles = min(search.profiles, samples)
    device = default_device()
    mechanism = mechanism.to(device)
    # the protocol draws the whole test set and searches its head: draw the same set
    values = torch.as_tensor(
        setting.test_profiles(samples, seed), dtype=mechanism.dtype, device=device
    )[:profiles]
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        truthful = setting.utilities(values, *mechanism(values))
    out = []
    for i in range(setting.num_bidders):
        best = best_misreport_utility(mechanism, values, i, setting, search, generator)
        out.append((best - truthful[:, i]).clamp_min(0))
    return torch.stack(out, dim=1).detach().cpu().double().numpy()


def search_from_dict(data: dict[str, Any] | None) -> RegretSearch | None:
    """The :class:`RegretSearch` recorded in an evaluation's JSON (``search`` key)."""
    if not data:
        return None
    known = {f.name for f in fields(RegretSearch)}
    return RegretSearch(**{k: v for k, v in data.items() if k in known})


__all__ = ["profile_regrets", "search_from_dict"]
