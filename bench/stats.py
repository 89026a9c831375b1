"""Summaries and ratios with honest error bars.

The machines are shared, so a ratio is never one division of two medians: each side is
resampled with replacement (2000 times, seeded) and the 2.5/97.5 percentiles of the
resampled ratios are the 95% confidence interval.
"""

from __future__ import annotations

import math

RESAMPLES = 2000
SEED = 20240611


def percentile(values, q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty sequence."""
    data = sorted(values)
    if not data:
        return math.nan
    if len(data) == 1:
        return float(data[0])
    pos = (len(data) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(data) - 1)
    return float(data[low] + (data[high] - data[low]) * (pos - low))


def summary(values) -> dict:
    """n, min, p50, p95, p99, max, mean of the samples (empty -> n = 0 and NaNs)."""
    data = [float(v) for v in values]
    if not data:
        return {"n": 0, "min": math.nan, "p50": math.nan, "p95": math.nan, "p99": math.nan,
                "max": math.nan, "mean": math.nan}
    return {"n": len(data), "min": min(data), "p50": percentile(data, 50), "p95": percentile(data, 95),
            "p99": percentile(data, 99), "max": max(data), "mean": sum(data) / len(data)}


STATS = {"p50": lambda d: percentile(d, 50), "p95": lambda d: percentile(d, 95),
         "p99": lambda d: percentile(d, 99), "mean": lambda d: sum(d) / len(d)}


def bootstrap_ratio(a, b, stat: str = "p50", resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """stat(a) / stat(b) with a 95% bootstrap interval (a and b resampled independently)."""
    import numpy as np

    a, b = [float(x) for x in a], [float(x) for x in b]
    if not a or not b:
        return {"stat": stat, "ratio": math.nan, "ci95": [math.nan, math.nan], "n_a": len(a), "n_b": len(b)}
    point = _div(STATS[stat](a), STATS[stat](b))
    rng = np.random.default_rng(seed)
    xa, xb = np.asarray(a), np.asarray(b)
    ra = xa[rng.integers(0, len(a), (resamples, len(a)))]
    rb = xb[rng.integers(0, len(b), (resamples, len(b)))]
    if stat == "mean":
        sa, sb = ra.mean(axis=1), rb.mean(axis=1)
    else:
        q = float(stat[1:])
        sa, sb = np.percentile(ra, q, axis=1), np.percentile(rb, q, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = sa / sb
    ratios = ratios[np.isfinite(ratios)]
    lo, hi = (np.percentile(ratios, [2.5, 97.5]) if ratios.size else (math.nan, math.nan))
    return {"stat": stat, "ratio": point, "ci95": [float(lo), float(hi)],
            "n_a": len(a), "n_b": len(b), "resamples": resamples, "seed": seed}


def bootstrap_paired_ratio(a, b, resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """The median of a[i] / b[i] over pairs measured side by side (A B, B A, ...), with a 95%
    interval from resampling the pairs. The machine's speed, which moves from minute to minute
    and which both halves of a pair share, cancels out of each pair's ratio."""
    import numpy as np

    n = min(len(a), len(b))
    ratios = np.asarray([float(x) / float(y) for x, y in zip(a[:n], b[:n]) if float(y)])
    if not ratios.size:
        return {"stat": "paired p50", "ratio": math.nan, "ci95": [math.nan, math.nan], "n_a": n, "n_b": n}
    rng = np.random.default_rng(seed)
    medians = np.median(ratios[rng.integers(0, ratios.size, (resamples, ratios.size))], axis=1)
    lo, hi = np.percentile(medians, [2.5, 97.5])
    return {"stat": "paired p50", "ratio": float(np.median(ratios)), "ci95": [float(lo), float(hi)],
            "n_a": n, "n_b": n, "resamples": resamples, "seed": seed}


def _div(x: float, y: float) -> float:
    return x / y if y else math.inf


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
