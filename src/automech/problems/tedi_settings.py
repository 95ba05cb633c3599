"""The TEDI paper's problem family F^{c_p,c_d}_{n,m} (Ma et al., AAMAS 2026, Section 4.1).

Names ``{F}-{n}x{m}-cp{c_p}-cd{c_d}``, e.g. ``U-3x10-cp1-cd0``, ``B-1x10-cp0-cd0``,
``C-3x10-cp0-cd0.5``:

* ``F``: ``U`` i.i.d. U[0, 1] values, ``B`` i.i.d. Bernoulli(0.5), ``C`` the correlated prior
  (``t_j ~ U[0.25, 0.75]``, ``t_ij ~ U[t_j - 0.25, t_j + 0.25]``);
* unlimited supply (any ``x in [0, 1]^{n x m}`` is feasible);
* objective: principal utility ``sum_i p_i - sum_j (c_p max_i x_ij + c_d sum_i x_ij)``.
"""

from __future__ import annotations

import re
from typing import Any

PATTERN = (
    r"(?P<prior>[UBC])-(?P<n>[1-9][0-9]?)x(?P<m>[1-9][0-9]?)"
    r"-cp(?P<cp>[0-9]+(?:\.[0-9]+)?)-cd(?P<cd>[0-9]+(?:\.[0-9]+)?)"
)

#: The settings of Table 1 of the paper.
TABLE1 = [
    "U-1x10-cp0-cd0",
    "B-1x10-cp0-cd0",
    "U-3x2-cp1-cd0",
    "U-3x10-cp1-cd0",
    "U-3x20-cp1-cd0",
    "U-3x30-cp1-cd0",
    "U-3x10-cp0-cd0.5",
    "U-3x20-cp0-cd0.5",
    "U-3x30-cp0-cd0.5",
    "B-3x10-cp1-cd0",
    "C-3x10-cp1-cd0",
    "C-3x10-cp0-cd0.5",
    "U-10x10-cp0-cd0.5",
]

_PRIORS: dict[str, dict[str, Any]] = {
    "U": {"kind": "uniform", "low": 0.0, "high": 1.0},
    "B": {"kind": "bernoulli", "p": 0.5},
    "C": {"kind": "correlated"},
}


def tedi_setting(match: re.Match[str]) -> dict[str, Any]:
    """The setting dict of a matched family name."""
    return {
        "bidders": int(match["n"]),
        "items": int(match["m"]),
        "valuation": "additive",
        "supply": "unlimited",
        "objective": {
            "kind": "revenue-minus-cost",
            "production_cost": float(match["cp"]),
            "duplication_cost": float(match["cd"]),
        },
        "prior": dict(_PRIORS[match["prior"]]),
    }
