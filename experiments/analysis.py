"""An experiment's verdicts from per-request outcomes: what the report shows and the benchmark
replays, with no database in sight.

Per comparison (each variant against control): the cost difference under the group-sequential
design (experiments.stats), looked at once per completed day, so a team may read the report
every day without raising its false-positive rate; quality against a non-inferiority margin with
repeated confidence intervals from the same boundaries; the sample size the design needs for
the configured cost effect. Several variants share ``alpha`` (Bonferroni).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from experiments.stats import planned_size, sequential_boundaries

__all__ = ["ArmLook", "Comparison", "arm_look", "compare"]


@dataclass(frozen=True)
class ArmLook:
    """One arm's metric, cumulative up to a look: count, mean and variance."""

    n: int
    mean: float
    var: float


def arm_look(values: np.ndarray) -> ArmLook:
    n = int(values.size)
    return ArmLook(n, float(values.mean()) if n else math.nan, float(values.var(ddof=1)) if n > 1 else math.nan)


@dataclass(frozen=True)
class Comparison:
    #: Requests (both arms) the design spends its error over.
    planned: int
    #: The look (0-based) where the cost boundary was crossed, if it was.
    crossed_at: int | None
    cost_difference: float
    cost_relative: float
    z: float
    boundary: float
    #: Looks taken, and whether the last one reached the planned size.
    looks: int
    planned_reached: bool
    #: Quality, variant minus control, with its repeated interval at the last look.
    quality_difference: float
    quality_lower: float
    quality_upper: float
    margin: float

    @property
    def cost_verdict(self) -> str:
        if self.crossed_at is not None:
            return "cheaper" if self.cost_difference < 0 else "costlier"
        return "no difference at the planned size" if self.planned_reached else "not yet"

    @property
    def quality_verdict(self) -> str:
        if not math.isfinite(self.quality_lower):
            return "not shown yet"
        if self.quality_lower > -self.margin:
            return "non-inferior"
        return "inferior" if self.quality_upper < -self.margin else "not shown yet"


def plan_size(control: ArmLook, effect: float, shares: tuple[float, float], alpha: float, power: float, looks: int) -> int:
    """Requests (both arms) to detect a relative cost change of ``effect`` against control."""
    if control.n < 2 or not control.mean or math.isnan(control.var):
        return 0
    return planned_size(math.sqrt(control.var), abs(effect * control.mean), shares=shares, alpha=alpha, power=power, looks=looks)


def compare(cost_looks: Sequence[tuple[ArmLook, ArmLook]], quality_looks: Sequence[tuple[ArmLook, ArmLook]], *, planned: int,
            alpha: float, margin: float) -> Comparison:
    """Looks in time order, each (variant, control) cumulative to that look. The cost test stops at
    the first look whose |z| reaches its boundary; quality is read at the last look, with the
    repeated interval of that look's boundary (valid whenever it is read)."""
    fractions: list[float] = []
    kept: list[int] = []
    for k, (variant, control) in enumerate(cost_looks):
        t = min(1.0, (variant.n + control.n) / planned) if planned else 1.0
        if variant.n > 1 and control.n > 1 and (not fractions or t > fractions[-1]):
            fractions.append(round(t, 6))
            kept.append(k)
    if not fractions:
        return Comparison(planned, None, math.nan, math.nan, math.nan, math.inf, 0, False, math.nan, math.nan, math.nan, margin)
    bounds = sequential_boundaries(tuple(fractions), alpha)
    crossed, stop, stop_bound = None, kept[-1], bounds[-1]
    for look, bound in zip(kept, bounds, strict=True):
        if abs(_z(*cost_looks[look])) >= bound:
            crossed, stop, stop_bound = look, look, bound
            break
    variant, control = cost_looks[stop]
    # Quality is read at the latest look (a cost verdict reached early does not end the watch on quality).
    quality_variant, quality_control = quality_looks[kept[-1]]
    last_bound = next((b for b in reversed(bounds) if math.isfinite(b)), math.inf)  # past the plan: the final look's
    quality_se = math.sqrt(quality_variant.var / quality_variant.n + quality_control.var / quality_control.n) \
        if quality_variant.n > 1 and quality_control.n > 1 else math.nan
    quality_diff = quality_variant.mean - quality_control.mean
    half = last_bound * quality_se if math.isfinite(last_bound) else math.inf
    return Comparison(
        planned=planned, crossed_at=crossed, cost_difference=variant.mean - control.mean,
        cost_relative=(variant.mean - control.mean) / control.mean if control.mean else math.nan, z=_z(variant, control),
        boundary=stop_bound, looks=len(fractions), planned_reached=fractions[-1] >= 1.0, quality_difference=quality_diff,
        quality_lower=quality_diff - half, quality_upper=quality_diff + half, margin=margin)


def _z(variant: ArmLook, control: ArmLook) -> float:
    se = math.sqrt(variant.var / variant.n + control.var / control.n)
    return (variant.mean - control.mean) / se if se > 0 else 0.0
