"""Write ``bids-1x2.csv``: 2,000 observed bid profiles of one bidder for two items.

A stand-in for real auction data, in dollars: the bidder's values for item 0 and item 1
are jointly lognormal, with medians of $40 and $25 (log-scale standard deviations 0.35
and 0.45) and a correlation of 0.6 between the logs -- a bidder who values one item
highly tends to value the other highly too.  Values are rounded to cents.  The numbers
are seeded (``SEED``), so every run writes the same file.

    python examples/make_bids.py          # writes examples/bids-1x2.csv
    automech design examples/data-1x2.toml --budget 2m

The columns are the wide layout of a ``[prior] kind = "data"`` file:
``bidder0_item0, bidder0_item1`` (one row per observed profile).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SEED = 2025
ROWS = 2_000
MEDIANS = np.array([40.0, 25.0])  # dollars
LOG_SD = np.array([0.35, 0.45])
CORRELATION = 0.6
OUT = Path(__file__).with_name("bids-1x2.csv")


def bids(rows: int = ROWS, seed: int = SEED) -> np.ndarray:
    """``rows`` value pairs (rows, 2) in dollars, rounded to cents."""
    cov = np.outer(LOG_SD, LOG_SD) * np.array([[1.0, CORRELATION], [CORRELATION, 1.0]])
    logs = np.random.default_rng(seed).multivariate_normal(np.log(MEDIANS), cov, size=rows)
    return np.round(np.exp(logs), 2)


def main() -> None:
    values = bids()
    lines = ["bidder0_item0,bidder0_item1"] + [f"{a:.2f},{b:.2f}" for a, b in values]
    OUT.write_text("\n".join(lines) + "\n")
    med = np.median(values, axis=0)
    shown = OUT.relative_to(Path.cwd()) if OUT.is_relative_to(Path.cwd()) else OUT
    print(
        f"wrote {shown} ({len(values)} rows; medians ${med[0]:.2f} and ${med[1]:.2f}, "
        f"correlation {np.corrcoef(values.T)[0, 1]:.2f})"
    )


if __name__ == "__main__":
    main()
