"""The hit verifier: loads with numpy alone, rejects near-identical non-duplicates, keeps clear paraphrases.

Real all-MiniLM-L6-v2 embeddings (the shipped model loads in seconds); the verdicts are those
of the committed weights, so a retrain that flips one of them has changed behaviour worth a look.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from costlevers.cache.verifier import DEFAULT_WEIGHTS, FEATURE_NAMES, HitVerifier
from spillover.training.pairs import DuplicateGraph, Pair, split_of, split_pairs
from spillover.training.protocols import Decisions, lowest_safe_threshold, rates

Embed = Callable[[str], np.ndarray]


@pytest.fixture(scope="module")
def verifier() -> HitVerifier:
    return HitVerifier.load()


@pytest.fixture(scope="module")
def embed() -> Embed:
    from serving.embeddings import SentenceEncoder

    encoder = SentenceEncoder.builtin(threads=1)
    return lambda text: encoder.encode([text])[0]


# Each of these is a hit for plain cosine at GPTCache's 0.95; none asks the same thing.
NOT_DUPLICATES = [
    ("How do I convert USD to INR?", "How do I convert INR to USD?"),
    ("Is Python better than Java?", "Is Java better than Python?"),
    ("Is it bad to drink coffee every day?", "Is it not bad to drink coffee every day?"),
    ("What is the best laptop under 50000 rupees in 2016?", "What is the best laptop under 50000 rupees in 2017?"),
]
PARAPHRASES = [
    ("What is the meaning of life?", "What's the meaning of life?"),
    ("What are the best ways to lose weight?", "What is the best way to lose weight?"),
    ("How do I improve my English speaking skills?", "How can I improve my English speaking skills?"),
]


@pytest.mark.parametrize(("a", "b"), NOT_DUPLICATES)
def test_rejects_what_plain_cosine_accepts(verifier: HitVerifier, embed: Embed, a: str, b: str) -> None:
    va, vb = embed(a), embed(b)
    assert float(va @ vb) >= 0.95
    assert verifier.score(a, va, b, vb) < verifier.threshold
    assert verifier.decide(a, va, [(b, vb)]) is None


@pytest.mark.parametrize(("a", "b"), PARAPHRASES)
def test_accepts_clear_paraphrases(verifier: HitVerifier, embed: Embed, a: str, b: str) -> None:
    va, vb = embed(a), embed(b)
    assert verifier.decide(a, va, [(b, vb)]) == 0
    assert verifier.score(a, va, b, vb) == pytest.approx(verifier.score(b, vb, a, va), abs=1e-6)  # symmetric


def test_decide_skips_the_closer_reversal_for_the_paraphrase(verifier: HitVerifier, embed: Embed) -> None:
    query = "How do I convert USD to INR?"
    reversal, paraphrase = "How do I convert INR to USD?", "How can I convert USD into INR?"
    assert verifier.decide(query, embed(query), [(reversal, embed(reversal)), (paraphrase, embed(paraphrase))]) == 1
    assert verifier.decide(query, embed(query), []) is None


def test_weights_are_small_and_round_trip(verifier: HitVerifier, tmp_path: Path) -> None:
    assert DEFAULT_WEIGHTS.stat().st_size < 2 * 2**20
    assert verifier.weights[0].shape[0] == len(FEATURE_NAMES)
    assert 0.0 < verifier.threshold < 1.0
    verifier.save(tmp_path / "v.npz")
    again = HitVerifier.load(tmp_path / "v.npz")
    x = np.random.default_rng(0).random((3, len(FEATURE_NAMES)), dtype=np.float32)
    np.testing.assert_allclose(again.probabilities(x), verifier.probabilities(x), rtol=1e-6)
    assert again.threshold == verifier.threshold and again.idf == verifier.idf


def test_lowest_safe_threshold_is_the_most_hits_within_both_limits() -> None:
    # Sorted by score: dup ok, non-dup (false), dup ok, dup wrong entry, non-dup (false).
    d = Decisions(label=np.array([1, 0, 1, 1, 0]), score=np.array([0.9, 0.8, 0.7, 0.6, 0.5]),
                  correct=np.array([True, False, True, False, False]))
    assert lowest_safe_threshold(d, max_false=0.5) == 0.6  # one false hit of two allowed
    assert lowest_safe_threshold(d, max_false=0.5, max_wrong=0.0) == 0.7
    assert lowest_safe_threshold(d, max_false=0.0) == 0.9
    first_is_false = Decisions(label=d.label[::-1], score=d.score, correct=d.correct[::-1])
    assert lowest_safe_threshold(first_is_false, max_false=0.0) > 0.9  # nothing is safe: no hits at all
    r = rates(d, 0.7)
    assert (r["duplicate_hit_rate"], r["false_hit_rate"], r["wrong_hit_rate_on_duplicates"]) == (2 / 3, 0.5, 0.0)


def test_split_keeps_components_whole_and_is_stable() -> None:
    pairs = [Pair(f"q{i}", f"q{i + 1}", 1 - i // 2 % 2) for i in range(0, 200, 2)] + [Pair("q0", "q1000", 1)]
    splits = split_pairs(pairs)
    where = {t: name for name, ps in splits.items() for p in ps for t in (p.text_a, p.text_b)}
    assert where["q0"] == where["q1000"] == where["q1"]
    assert split_of("What is the meaning of life?") == split_of("What is the meaning of life?")
    assert {n: len(ps) for n, ps in split_pairs(list(reversed(pairs))).items()} == {n: len(ps) for n, ps in splits.items()}
    graph = DuplicateGraph(pairs)
    assert graph.duplicates("q1", "q1000") and not graph.duplicates("q2", "q3")
