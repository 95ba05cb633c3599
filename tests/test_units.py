"""Scale equivariance: values multiplied by c give c times the revenue, same seed.

A method whose step sizes or softmax temperatures are fixed in absolute units fails this
(RochetNet's defaults, before the menu learned its prices in the values' unit, earned
14.78 on U[0,100] where U[0,1] gave 0.5555: ratio 27, not 100)."""

from __future__ import annotations

import pytest

from automech.experiment import train
from automech.problems import Setting


def _uniform(high: float) -> Setting:
    return Setting.from_dict(
        {"bidders": 1, "items": 2, "prior": {"kind": "uniform", "low": 0.0, "high": high}}
    )


@pytest.mark.parametrize("scale", [100.0, 0.01])
def test_rochetnet_revenue_scales_with_the_values(scale, tmp_path):
    options = {"steps": 40, "batch_size": 2048, "menu_size": 16, "validation_samples": 512}
    revenue = {}
    for c in (1.0, scale):
        _, run = train(
            _uniform(c),
            "rochetnet",
            options,
            seed=0,
            out=tmp_path / str(c),
            eval_samples=4000,
            search=None,
        )
        revenue[c] = run.read_json("metrics.json")["revenue"]
    # float32 rounding of the scaled draws moves a short run by ~0.2 %; a broken
    # normalisation is off by a factor (27 for the old RochetNet defaults)
    assert revenue[scale] / revenue[1.0] == pytest.approx(scale, rel=1e-2)
