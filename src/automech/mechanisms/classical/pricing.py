"""Revenue-optimal prices and reserves found numerically on samples from the prior.

Both searches are exact on the sample: the empirical revenue is piecewise linear in the
price, so its maximum sits at a sampled value and every sampled value is tried at once
by sorting (O(N log N)).
"""

from __future__ import annotations

import numpy as np

from automech.problems.setting import Setting

#: Profiles drawn to tune prices and reserves, and the seed they are drawn with.
TUNING_SAMPLES = 2**19
TUNING_SEED = 20_240_101
_CHUNK = 2**16


def tuning_statistics(
    setting: Setting, statistic, samples: int = TUNING_SAMPLES, seed: int = TUNING_SEED
) -> np.ndarray:
    """``statistic(profiles)`` over ``samples`` prior draws, computed chunk by chunk."""
    rng = np.random.default_rng(seed)
    parts = []
    for start in range(0, samples, _CHUNK):
        parts.append(statistic(setting.sample(min(_CHUNK, samples - start), rng)))
    return np.concatenate(parts)


def best_posted_price(values: np.ndarray) -> tuple[float, float]:
    """Price p maximising ``p * P(value >= p)`` on samples ``values`` (N,).

    Returns the price and its empirical revenue.
    """
    v = np.sort(values)[::-1]
    revenue = v * np.arange(1, len(v) + 1) / len(v)  # price v[k] sells to the top k+1
    k = int(np.argmax(revenue))
    return float(v[k]), float(revenue[k])


def best_second_price_reserve(top1: np.ndarray, top2: np.ndarray) -> tuple[float, float]:
    """Reserve r maximising the revenue of a second-price auction with reserve r,

        E[ 1{top1 >= r} * max(r, top2) ] = r * P(top2 < r <= top1) + E[top2 1{top2 >= r}],

    from samples of the highest (``top1``) and second-highest (``top2``) values.
    """
    n = len(top1)
    candidates = np.sort(top1)
    s1 = np.sort(top1)
    s2 = np.sort(top2)
    suffix2 = np.concatenate([np.cumsum(s2[::-1])[::-1], [0.0]])
    above1 = n - np.searchsorted(s1, candidates, side="left")
    idx2 = np.searchsorted(s2, candidates, side="left")
    above2 = n - idx2
    revenue = (candidates * (above1 - above2) + suffix2[idx2]) / n
    k = int(np.argmax(revenue))
    return float(candidates[k]), float(revenue[k])
