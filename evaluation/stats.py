"""Student's t distribution for paired tests and intervals, without SciPy, and the standard
error of a ratio (a figure per word or per token).

The two-sided tail is the regularised incomplete beta function
P(|T| ≥ t) = I_{df / (df + t²)}(df / 2, 1 / 2), evaluated by its continued fraction (modified
Lentz); the quantile is found by bisection on it.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (Numerical Recipes' betacf)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for numerator in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                          -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):  # fmt: skip
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), x in [0, 1]."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| ≥ |t|) for Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


@functools.lru_cache(maxsize=4096)
def t_quantile(level: float, df: float) -> float:
    """The t with P(|T| ≤ t) = ``level`` (e.g. 0.95 → 2.228 at df = 10)."""
    low, high = 0.0, 1.0
    while t_two_sided_p(high, df) > 1.0 - level:
        high *= 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if t_two_sided_p(mid, df) > 1.0 - level:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


def ratio_se(y: Sequence[float], x: Sequence[float]) -> float:
    """Standard error of the ratio R = Σy / Σx over n units (delta method, the ratio
    estimator's): sqrt(n / (n − 1) · Σ (y_i − R x_i)²) / Σx.

    A figure per word or per token is such a ratio: y the nats of each sentence (or the
    difference of two models' nats), x its words or tokens. Treating Σx as fixed instead,
    sd(y)·√n / Σx, is wrong when sentence lengths vary and nats grow with them. Returns 0.0
    for fewer than 2 units.
    """
    n = len(y)
    if n != len(x):
        raise ValueError(f"ratio_se: {n} values and {len(x)} denominators")
    if n < 2:
        return 0.0
    total_x = math.fsum(x)
    if total_x <= 0:
        raise ValueError("ratio_se: the denominators sum to 0")
    r = math.fsum(y) / total_x
    squares = math.fsum((yi - r * xi) ** 2 for yi, xi in zip(y, x, strict=True))
    return math.sqrt(n / (n - 1) * squares) / total_x


def seeds_needed(
    figures: dict, sentences: int, target: float, level: float = 0.95, most: int = 64
) -> int | None:
    """The fewest paired seeds whose recipe-level half-width would be at most ``target`` at
    the components ``figures`` measured (``evaluation.recipes.recipe_difference``, paired): a
    pair's variance over seeds (``per_pair``) divided by the seeds, and the sentences'
    variance held as measured on ``sentences`` sentences (conservative: with independent noise
    per seed, its Monte Carlo share falls as seeds are added). The half-width is the one
    ``recipe_difference`` reports: each part's t half-width added in quadrature. None when
    ``most`` seeds would not reach it."""
    pair_var = statistics.variance(figures["per_pair"])
    floor = t_quantile(level, sentences - 1) ** 2 * figures["variance"]["sentences"]
    for n in range(2, most + 1):
        if math.sqrt(t_quantile(level, n - 1) ** 2 * pair_var / n + floor) <= target:
            return n
    return None
