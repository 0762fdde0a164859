"""The statistics an experiment report needs, with no database or web in sight.

- :func:`sequential_boundaries`: a group-sequential design with Lan-DeMets O'Brien-Fleming
  error spending. Why not a fixed-horizon test: a team that looks every day and stops at the
  first p < 0.05 has a false-positive rate several times 5%; why not the mSPRT: its always-valid
  guarantee holds for continuous monitoring, so at a look a day it is conservative (it rejects
  well under 5% of A/A tests, and needs more traffic for the same power). Spending the error
  over the planned sample size keeps the false-positive rate at ``alpha`` for any number of looks
  taken at times that do not depend on the data (a look at the end of each day).
- :func:`planned_size`: the total sample size at which that design has the stated power for a
  stated difference (the power analysis).
- :func:`srm_p_value`: the sample-ratio-mismatch check (chi-squared on assignment counts).
- Confidence intervals of means and differences, and repeated confidence intervals (valid at
  every look) for the non-inferiority verdict.

Boundaries come from the recursive numerical integration of Armitage, McPherson and Rowe
(Jennison and Turnbull, *Group Sequential Methods*, ch. 19) on a grid of the score process.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import special, stats

__all__ = [
    "Difference", "MeanCI", "crossing_probability", "difference", "mean_ci", "obf_spent", "planned_size", "sequential_boundaries",
    "srm_p_value",
]

#: Grid cells of the continuation region (accuracy of the spent error: ~1e-4).
_CELLS = 400


def obf_spent(fraction: float, alpha: float) -> float:
    """Error spent by information fraction ``fraction`` (Lan-DeMets O'Brien-Fleming, two-sided)."""
    if fraction <= 0:
        return 0.0
    if fraction >= 1:
        return alpha
    return float(2 - 2 * special.ndtr(stats.norm.isf(alpha / 2) / math.sqrt(fraction)))


def _increment(centres: np.ndarray, masses: np.ndarray, edges: np.ndarray, step: float, drift: float) -> np.ndarray:
    """Probability of each cell between ``edges`` after a Gaussian increment of variance ``step``
    (mean ``drift * step``) from mass ``masses`` at ``centres``: P[j] = sum_i m_i P(edge_j < u_i + X < edge_j+1)."""
    scale = math.sqrt(step)
    cdf = special.ndtr((edges[None, :] - centres[:, None] - drift * step) / scale)
    return np.diff(masses @ cdf)


def _walk(fractions: Sequence[float], bounds: Sequence[float], drift: float) -> tuple[list[float], np.ndarray, np.ndarray]:
    """Per look, the probability of first crossing ``bounds`` (z scale); and the mass left inside
    the last bound (cell centres, masses) on the score scale B(t) = Z sqrt(t)."""
    crossed: list[float] = []
    centres, masses, last_t = np.zeros(1), np.ones(1), 0.0
    for t, bound in zip(fractions, bounds, strict=True):
        edge = bound * math.sqrt(t) if math.isfinite(bound) else 10 * math.sqrt(t) + abs(drift) * t
        edges = np.linspace(-edge, edge, _CELLS + 1)
        inside = _increment(centres, masses, edges, t - last_t, drift)
        crossed.append(float(masses.sum() - inside.sum()))
        centres, masses, last_t = (edges[:-1] + edges[1:]) / 2, inside, t
    return crossed, centres, masses


def _crossing(edge: float, centres: np.ndarray, masses: np.ndarray, scale: float) -> float:
    """Probability that a Gaussian step of sd ``scale`` from the mass at ``centres`` ends outside +-edge."""
    inside = special.ndtr((edge - centres) / scale) - special.ndtr((-edge - centres) / scale)
    return float(masses.sum() - masses @ inside)


@lru_cache(maxsize=256)
def sequential_boundaries(fractions: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    """Two-sided z boundaries at looks taken at information ``fractions`` (increasing; capped at
    1): look k rejects when |Z_k| >= boundary k. A look past the planned size spends what is left."""
    bounds: list[float] = []
    spent_before = 0.0
    centres, masses, last_t = np.zeros(1), np.ones(1), 0.0
    for raw_t in fractions:
        t = min(raw_t, 1.0)
        to_spend = obf_spent(t, alpha) - spent_before
        scale = math.sqrt(max(t - last_t, 1e-12))
        if to_spend <= 1e-12:
            bound = math.inf
        else:
            low, high = 0.0, 12.0
            for _ in range(48):  # bisection: the crossing probability falls as the boundary rises
                mid = (low + high) / 2
                low, high = (mid, high) if _crossing(mid * math.sqrt(t), centres, masses, scale) > to_spend else (low, mid)
            bound = high
            spent_before += to_spend
        bounds.append(bound)
        edge = bound * math.sqrt(t) if math.isfinite(bound) else 10 * math.sqrt(t)
        edges = np.linspace(-edge, edge, _CELLS + 1)
        centres, masses, last_t = (edges[:-1] + edges[1:]) / 2, _increment(centres, masses, edges, t - last_t, 0.0), t
    return tuple(bounds)


def crossing_probability(fractions: Sequence[float], bounds: Sequence[float], drift: float) -> float:
    """Probability of crossing some boundary when Z_k ~ N(drift * sqrt(t_k), 1) (the power at
    ``drift``, the standardised difference at the planned size)."""
    return float(sum(_walk([min(f, 1.0) for f in fractions], list(bounds), drift)[0]))


def planned_size(sd: float, difference: float, *, shares: tuple[float, float] = (0.5, 0.5), alpha: float = 0.05,
                 power: float = 0.8, looks: int = 14) -> int:
    """Total requests (both arms) at which ``looks`` equally spaced looks of the design detect a
    true ``difference`` in means (per-request standard deviation ``sd``) with ``power``."""
    fractions = tuple((k + 1) / looks for k in range(looks))
    bounds = sequential_boundaries(fractions, alpha)
    low, high = 0.0, 10.0
    for _ in range(50):
        mid = (low + high) / 2
        if crossing_probability(fractions, bounds, mid) < power:
            low = mid
        else:
            high = mid
    drift = high  # = difference / SE at the planned size
    return math.ceil((drift * sd / difference) ** 2 * (1 / shares[0] + 1 / shares[1]))


def srm_p_value(counts: Sequence[int], weights: Sequence[float]) -> float:
    """p-value of the assignment counts under the configured weights (chi-squared goodness of fit)."""
    total = sum(counts)
    if total == 0 or len(counts) < 2:
        return 1.0
    expected = np.asarray(weights, dtype=float) / sum(weights) * total
    return float(stats.chisquare(np.asarray(counts, dtype=float), expected).pvalue)


@dataclass(frozen=True)
class MeanCI:
    n: int
    mean: float
    low: float
    high: float
    sd: float


def mean_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> MeanCI:
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return MeanCI(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(data.mean())
    sd = float(data.std(ddof=1)) if data.size > 1 else 0.0
    half = float(stats.norm.isf((1 - confidence) / 2)) * sd / math.sqrt(data.size)
    return MeanCI(int(data.size), mean, mean - half, mean + half, sd)


@dataclass(frozen=True)
class Difference:
    """Variant minus control: estimate, its standard error and z."""

    estimate: float
    se: float

    @property
    def z(self) -> float:
        return self.estimate / self.se if self.se > 0 else 0.0

    def interval(self, critical: float) -> tuple[float, float]:
        return self.estimate - critical * self.se, self.estimate + critical * self.se


def difference(variant: MeanCI, control: MeanCI) -> Difference:
    if variant.n < 2 or control.n < 2:
        return Difference(math.nan, math.nan)
    return Difference(variant.mean - control.mean, math.sqrt(variant.sd**2 / variant.n + control.sd**2 / control.n))
