"""The semantic cache's steering on its own: Wilson bounds, the operating point earned from
checks, tightening at once, loosening only on evidence, the falling check share."""

from __future__ import annotations

import random

from costlevers.cache.steering import Steering, wilson_upper

LADDER = [0.99, 0.95, 0.9, 0.8]


def test_the_wilson_bound_needs_about_300_clean_checks_for_one_percent() -> None:
    assert wilson_upper(0, 0) == 1.0
    assert wilson_upper(0, 300) > 0.01 > wilson_upper(0, 400)
    assert wilson_upper(5, 1000) > 0.005


def test_it_starts_strict_or_shadow_only_and_earns_looser_rungs() -> None:
    assert Steering(LADDER, start=0.99).threshold == 0.99 and Steering(LADDER, start=None).threshold is None
    steering = Steering(LADDER, start=None)
    for _ in range(400):
        steering.record(0.92, True, paid=False)  # free probes between 0.9 and 0.95, all agreeing
    for _ in range(10):
        steering.record(0.85, False, paid=False)  # and some below 0.9 that disagree
    assert steering.threshold == 0.9, "the loosest rung whose bound meets 1%"
    assert steering.serves(0.91) and not steering.serves(0.85) and steering.probes(0.85)


def test_a_disagreement_that_lifts_the_bound_tightens_at_once() -> None:
    steering = Steering(LADDER, start=0.8)  # over-loose before any evidence
    for _ in range(400):
        steering.record(0.97, True, paid=False)
    for _ in range(400):
        steering.record(0.85, True, paid=False)
    assert steering.threshold == 0.8
    for _ in range(8):
        steering.record(0.82, False, paid=True)
    assert steering.threshold == 0.9, "the false hits sit between 0.8 and 0.9: the rungs above them stay"
    state = steering.state()
    assert state.threshold == 0.9 and state.bound <= 0.01 and state.paid_checks == 8 and state.checks == 808


def test_the_check_share_falls_as_evidence_grows_but_never_to_zero() -> None:
    steering = Steering(LADDER, start=0.99, rng=random.Random(7), min_share=0.02, share_halving=200)
    early = sum(steering.check_served() for _ in range(1000)) / 1000
    for _ in range(5000):
        steering.record(0.995, True, paid=False)
    late = sum(steering.check_served() for _ in range(5000)) / 5000
    assert early > 0.9 and 0.015 < late < 0.06


def test_a_judge_that_misses_false_hits_needs_more_evidence_and_a_noisy_one_never_earns_a_rung() -> None:
    perfect, blind = Steering(LADDER, start=None), Steering(LADDER, start=None, judge_sensitivity=0.8)
    for _ in range(420):
        perfect.record(0.97, True, paid=False)
        blind.record(0.97, True, paid=False)
    assert perfect.threshold == 0.8 and blind.threshold is None, "the bound is divided by the share of false hits the judge catches"
    assert blind.state().bound == min(1.0, wilson_upper(0, 420) / 0.8)
    for _ in range(200):
        blind.record(0.97, True, paid=False)
    assert blind.threshold == 0.8
    noisy = Steering(LADDER, start=0.8)
    for i in range(5000):  # a judge that calls 3% of interchangeable answers different
        noisy.record(0.97, i % 33 != 0, paid=False)
    assert noisy.threshold is None, "its false disagreements alone keep every bound over 1%: it serves nothing"
