"""Spread of a figure over repeated runs: mean and a Student-t confidence interval."""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean of ``values`` and the half-width of its ``confidence`` interval (Student t,
    ``n - 1`` degrees of freedom); the half-width is NaN for a single value."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = sum(values) / n
    if n == 1:
        return mean, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, float(stats.t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n)


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two (mean, half-width) intervals overlap: then the figures show no
    measurable difference."""
    return abs(a[0] - b[0]) <= a[1] + b[1]


def format_ci(mean: float, half: float, digits: int = 3) -> str:
    """``mean ± half`` for a table."""
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def format_values(values: Sequence[float], digits: int = 3) -> str:
    """``mean ± half`` of ``values`` (:func:`mean_ci`); the mean alone from one value."""
    mean, half = mean_ci(values)
    return f"{mean:.{digits}f}" if len(values) < 2 else format_ci(mean, half, digits)
