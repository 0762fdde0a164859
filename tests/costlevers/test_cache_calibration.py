"""The verifier's calibration rule and its alignment features.

The threshold rule must look past the pooled rate to the spread between folds (QQP's label noise
comes in clumps), the merged export must score exactly as the mean of its members, and the
word-piece alignment must see the one piece two near-identical questions do not share, with the
real all-MiniLM-L6-v2 tokenizer and input-embedding table.
"""

from __future__ import annotations

import numpy as np
import pytest

from costlevers.cache.alignment import ALIGNMENT_NAMES, TokenAligner
from costlevers.cache.verifier import FEATURE_NAMES, HitVerifier, Idf, shared_aligner
from spillover.training.cache_verifier import merge
from spillover.training.protocols import Decisions, cross_fitted_threshold, pooled, predicted_upper_bound, rates


def _fold(false_at: list[float], n_non: int = 100, dup_scores: tuple[float, ...] = (0.99, 0.95)) -> Decisions:
    """``n_non`` non-duplicate queries, those scored ``false_at`` wrongly hit, the rest at 0; two correct duplicates."""
    scores = np.array([*false_at, *[0.0] * (n_non - len(false_at)), *dup_scores])
    labels = np.array([0] * n_non + [1] * len(dup_scores))
    return Decisions(labels, scores, labels == 1)


def test_bound_takes_the_spread_between_folds_when_it_is_wider_than_sampling() -> None:
    even = [_fold([0.9]), _fold([0.9]), _fold([0.9]), _fold([0.9])]
    clumped = [_fold([0.9] * 4), _fold([]), _fold([]), _fold([])]
    assert rates(pooled(even), 0.5)["false_hit_rate"] == rates(pooled(clumped), 0.5)["false_hit_rate"] == 0.01
    b_even = predicted_upper_bound(even, 0.5, confidence=0.95)
    b_clumped = predicted_upper_bound(clumped, 0.5, confidence=0.95)
    assert b_even["false_pooled"] == b_clumped["false_pooled"] == 0.01
    binomial = 0.01 + 1.6449 * np.sqrt(0.01 * 0.99 / 100 * 1.25)
    assert b_even["false_hit_rate"] == pytest.approx(binomial, abs=1e-4)
    assert b_clumped["false_hit_rate"] > b_even["false_hit_rate"] + 0.01
    assert b_even["wrong_hit_rate_on_duplicates"] == 0.0


def test_threshold_is_the_lowest_whose_bound_holds_in_every_protocol() -> None:
    # Each fold: one false hit at 0.8, one at 0.6; duplicates at 0.99 and 0.95.
    folds = [_fold([0.8, 0.6], n_non=1000) for _ in range(4)]
    assert cross_fitted_threshold([folds], target=0.01, confidence=0.95) == 0.6  # 0.2% false: bound ~0.46%
    assert cross_fitted_threshold([folds], target=0.003, confidence=0.95) == 0.8  # 0.1% false: bound ~0.28%
    assert cross_fitted_threshold([folds], target=0.002, confidence=0.95) == 0.95
    stricter = [_fold([0.97, 0.97], n_non=1000) for _ in range(4)]
    assert cross_fitted_threshold([folds, stricter], target=0.003, confidence=0.95) == 0.99  # both protocols must hold
    # Nothing safe at all: the threshold sits above every score, so nothing hits.
    assert cross_fitted_threshold([[_fold([1.0] * 50)] * 4], target=0.01, confidence=0.95) > 1.0


def test_merge_scores_as_the_mean_of_the_members_platt_scaled_logits() -> None:
    rng = np.random.default_rng(0)
    n, hidden = len(FEATURE_NAMES), 8
    idf = Idf({"cat": 1.0}, 2.0)
    members = [
        HitVerifier(idf=idf, mean=np.zeros(n), scale=np.ones(n), weights=[rng.normal(size=(n, hidden)), rng.normal(size=(hidden, 1))],
                    biases=[rng.normal(size=hidden), rng.normal(size=1)], platt=(float(a), float(b)), threshold=0.5)
        for a, b in ((0.5, -1.0), (2.0, 0.3), (1.2, 0.0))
    ]
    x = rng.random((5, n), dtype=np.float32)
    expected = np.mean([m.platt[0] * m.logits(x) + m.platt[1] for m in members], axis=0)
    merged = merge(members)
    np.testing.assert_allclose(merged.logits(x), expected, rtol=1e-5)
    assert merged.platt == (1.0, 0.0) and merged.weights[0].shape == (n, 3 * hidden)


@pytest.fixture(scope="module")
def aligner() -> TokenAligner:
    return shared_aligner()


def test_alignment_sees_the_piece_without_a_partner(aligner: TokenAligner) -> None:
    same = aligner.values("How can I learn Python fast?", "how can i learn python fast")
    assert same == pytest.approx((1.0, 1.0, 1.0, 0.0), abs=1e-5)
    swapped = aligner.values("How can I learn Python fast?", "How can I learn Java fast?")
    assert swapped[2] < 0.5 and swapped[3] >= 2  # python and java: each side has one unmatched piece
    assert swapped == aligner.values("How can I learn Java fast?", "How can I learn Python fast?")  # symmetric
    longer = aligner.values("What is Pokemon Diamond?", "What is Pokemon Diamond and Pearl?")
    assert longer[0] < longer[1] == pytest.approx(1.0, abs=1e-5)  # the shorter side is fully covered, the longer is not
    assert aligner.values("What is it?", "Why?") == (1.0, 1.0, 1.0, 0.0)  # only stop words: nothing to tell apart
    assert len(swapped) == len(ALIGNMENT_NAMES)
