"""Statistics over seeds: Student's t quantiles and the paired-difference confidence interval.

A report pairs the NumPy and TensorFlow runs of each seed (same initial weights, same batches),
so the question "do the implementations differ by more than seed noise?" is answered by the
paired differences ``d_s = numpy_s - tensorflow_s``: their mean with the t-interval
``mean +- t(1 - (1 - level) / 2, n - 1) * sd / sqrt(n)``, ``sd`` with ``ddof=1``.
"""

from __future__ import annotations

import math
from functools import cache
from typing import NamedTuple

import numpy as np

MIN_SEEDS = 3  # fewer paired seeds give no interval (n - 1 = 1 degree of freedom is too few)


def t_cdf(x: float, df: int) -> float:
    """P(T <= x) for Student's t with ``df`` >= 1 degrees of freedom, from the regularized
    incomplete beta function I_{df / (df + x^2)}(df / 2, 1 / 2) (its continued fraction)."""
    if df < 1:
        raise ValueError(f"t_cdf: expected df >= 1, received df={df!r}.")
    if x == 0:
        return 0.5
    tail = 0.5 * _incomplete_beta(df / 2, 0.5, df / (df + x * x))
    return 1 - tail if x > 0 else tail


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) by Lentz's continued fraction (Numerical Recipes' betacf), to 1e-15."""
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    if x > (a + 1) / (a + b + 2):
        return 1 - _incomplete_beta(b, a, 1 - x)
    front = math.exp(a * math.log(x) + b * math.log1p(-x)
                     + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)) / a
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    return front * fraction


@cache
def t_quantile(p: float, df: int) -> float:
    """The ``p``-quantile of Student's t with ``df`` degrees of freedom (bisection on ``t_cdf``)."""
    if not 0 < p < 1:
        raise ValueError(f"t_quantile: expected 0 < p < 1, received p={p!r}.")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low <= 1e-13 * high:
            break
    return (low + high) / 2


class PairedInterval(NamedTuple):
    """Mean of paired differences, their standard deviation (ddof=1), the interval and ``n``."""

    mean: float
    sd: float
    low: float
    high: float
    n: int


def paired_interval(a, b, level: float = 0.95) -> PairedInterval:
    """The t-interval of mean(a - b) for paired samples a (n,), b (n,); pairs with a NaN are
    dropped. With fewer than MIN_SEEDS pairs, the mean alone (sd and interval NaN)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_interval: expected two 1-D arrays of one length, received "
                         f"shapes {a.shape} and {b.shape}.")
    d = (a - b)[np.isfinite(a - b)]
    n = int(d.size)
    mean = float(d.mean()) if n else math.nan
    if n < MIN_SEEDS:
        return PairedInterval(mean, math.nan, math.nan, math.nan, n)
    sd = float(d.std(ddof=1))
    half = t_quantile(1 - (1 - level) / 2, n - 1) * sd / math.sqrt(n)
    return PairedInterval(mean, sd, mean - half, mean + half, n)
