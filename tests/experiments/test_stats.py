"""The statistics under the experiment report: assignment, boundaries, power, sample ratio."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from experiments.analysis import ArmLook, compare
from experiments.assign import assign
from experiments.stats import crossing_probability, planned_size, sequential_boundaries, srm_p_value

WEIGHTS = {"control": 70.0, "cheap": 20.0, "holdout": 10.0}


def test_assignment_is_sticky_and_matches_the_weights_over_100k_ids() -> None:
    ids = [f"user-{i}" for i in range(100_000)]
    first = [assign("exp", u, WEIGHTS) for u in ids]
    assert [assign("exp", u, WEIGHTS) for u in ids[:2000]] == first[:2000]  # the same user, the same variant
    counts = Counter(first)
    for variant, weight in WEIGHTS.items():
        share = weight / sum(WEIGHTS.values())
        se = math.sqrt(share * (1 - share) / len(ids))
        assert abs(counts[variant] / len(ids) - share) < 4 * se, (variant, counts)
    assert srm_p_value([counts[v] for v in WEIGHTS], list(WEIGHTS.values())) > 0.001
    # another experiment reshuffles users independently of this one
    other = [assign("other", u, {"a": 1.0, "b": 1.0}) for u in ids[:20_000]]
    in_control = [o for f, o in zip(first[:20_000], other, strict=True) if f == "control"]
    assert abs(in_control.count("a") / len(in_control) - 0.5) < 0.02


def test_sample_ratio_mismatch_is_flagged() -> None:
    assert srm_p_value([5200, 4800], [1, 1]) < 0.001
    assert srm_p_value([5030, 4970], [1, 1]) > 0.05


def test_boundaries_keep_the_false_positive_rate_at_alpha_under_daily_looks() -> None:
    looks = 14
    fractions = tuple((k + 1) / looks for k in range(looks))
    bounds = np.array(sequential_boundaries(fractions, 0.05))
    assert bounds[-1] == pytest.approx(2.15, abs=0.02) and bounds[1] > 4  # O'Brien-Fleming shape: strict early
    rng = np.random.default_rng(7)
    paths = np.cumsum(rng.standard_normal((200_000, looks)) * math.sqrt(1 / looks), axis=1)  # Brownian motion at the looks
    z = paths / np.sqrt(np.array(fractions))
    rejected = (np.abs(z) >= bounds).any(axis=1).mean()
    assert rejected == pytest.approx(0.05, abs=0.003)
    naive = (np.abs(z) >= 1.96).any(axis=1).mean()  # what peeking at a fixed-horizon test does
    assert naive > 0.15
    assert crossing_probability(fractions, tuple(bounds), 0.0) == pytest.approx(0.05, abs=1e-3)


def test_planned_size_gives_the_stated_power() -> None:
    sd, diff = 2.0, 0.1
    n = planned_size(sd, diff, looks=14)
    fixed = (1.959964 + 0.841621) ** 2 * sd**2 * 4 / diff**2
    assert fixed < n < 1.1 * fixed  # a sequential design costs a few percent more than a fixed horizon
    rng = np.random.default_rng(3)
    per_look = n // 2 // 14
    rejected = 0
    bounds = sequential_boundaries(tuple((k + 1) / 14 for k in range(14)), 0.05)
    for _ in range(400):
        a = rng.normal(0, sd, (14, per_look)).cumsum(axis=0)
        b = rng.normal(diff, sd, (14, per_look)).cumsum(axis=0)
        counts = per_look * np.arange(1, 15)
        z = (b.sum(axis=1) / counts - a.sum(axis=1) / counts) / (sd * np.sqrt(2 / counts))
        rejected += bool((np.abs(z) >= bounds).any())
    assert 0.72 < rejected / 400 < 0.88


def test_compare_reads_cost_and_quality_verdicts() -> None:
    def looks(mean_v: float, mean_c: float, n: int, var: float) -> list[tuple[ArmLook, ArmLook]]:
        return [(ArmLook(n * k, mean_v, var), ArmLook(n * k, mean_c, var)) for k in range(1, 8)]

    cheaper = compare(looks(0.8, 1.0, 500, 0.25), looks(0.9, 0.9, 500, 0.09), planned=7000, alpha=0.05, margin=0.02)
    assert cheaper.cost_verdict == "cheaper" and cheaper.crossed_at is not None and cheaper.cost_relative == pytest.approx(-0.2)
    assert cheaper.quality_verdict in ("non-inferior", "not shown yet")
    same = compare(looks(1.0, 1.0, 500, 0.25), looks(0.8, 0.9, 500, 0.09), planned=7000, alpha=0.05, margin=0.02)
    assert same.cost_verdict == "no difference at the planned size" and same.quality_verdict == "inferior"
    early = compare(looks(1.0, 1.0, 10, 0.25)[:2], looks(0.9, 0.9, 10, 0.09)[:2], planned=7000, alpha=0.05, margin=0.02)
    assert early.cost_verdict == "not yet"
