"""The two ways a hit decision is measured on labelled pairs, shared by training (calibration) and the benchmark.

* **Whole index**: every distinct ``text_a`` of the split is in the cache; every pair's ``text_b``
  is a query (one whose exact text is in the index is an exact-cache hit, counted apart and not
  scored). The top ``k`` entries by cosine are the candidates; the decision picks one or none.
* **Partner only**: each pair's ``text_b`` against its own ``text_a``.

A query's outcome at a threshold ``t`` is a hit when its best score is ``>= t``; the hit is
*correct* when the returned entry is a known duplicate of the query (:class:`DuplicateGraph`).
Rates, all over queries that were scored:

* ``duplicate_hit_rate``: label-1 queries with a correct hit / label-1 queries;
* ``false_hit_rate``: label-0 queries with a hit that is not a known duplicate / label-0 queries;
* ``wrong_hit_rate_on_duplicates``: label-1 queries whose hit is not a known duplicate (the
  whole index can return the wrong entry for a real duplicate) / label-1 queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from costlevers.cache.verifier import HitVerifier
from spillover.training.pairs import DuplicateGraph, Pair

__all__ = [
    "Decisions", "cross_fitted_threshold", "lowest_safe_threshold", "partner_decisions", "pooled", "predicted_upper_bound", "rates",
    "whole_index_decisions",
]


@dataclass(frozen=True)
class Decisions:
    """Per scored query: its label, its best candidate's score, and whether that candidate is a known duplicate."""

    label: np.ndarray
    score: np.ndarray
    correct: np.ndarray
    exact_hits: int = 0


def _verifier_scores(verifier: HitVerifier, query: str, qvec: np.ndarray, texts: list[str], vecs: np.ndarray) -> np.ndarray:
    return verifier.probabilities(verifier.features(query, qvec, texts, vecs))


def whole_index_decisions(
    pairs: list[Pair], graph: DuplicateGraph, vectors: dict[str, np.ndarray], verifier: HitVerifier | None, *, k: int = 5,
) -> Decisions:
    """Whole-index protocol; ``verifier=None`` decides by plain cosine (the top entry's cosine is its score)."""
    index = list(dict.fromkeys(p.text_a for p in pairs))
    in_index = set(index)
    matrix = np.stack([vectors[t] for t in index])
    queries = [p for p in pairs if p.text_b not in in_index]
    labels, scores, correct = [], [], []
    for start in range(0, len(queries), 512):
        chunk = queries[start : start + 512]
        qvecs = np.stack([vectors[p.text_b] for p in chunk])
        sims = qvecs @ matrix.T
        top = np.argpartition(-sims, min(k, len(index)) - 1, axis=1)[:, :k]
        for row, p in enumerate(chunk):
            cand = top[row][np.argsort(-sims[row, top[row]])]
            if verifier is None:
                best, best_score = int(cand[0]), float(sims[row, cand[0]])
            else:
                s = _verifier_scores(verifier, p.text_b, qvecs[row], [index[i] for i in cand], matrix[cand])
                best, best_score = int(cand[int(np.argmax(s))]), float(np.max(s))
            labels.append(p.label)
            scores.append(best_score)
            correct.append(graph.duplicates(p.text_b, index[best]))
    return Decisions(np.array(labels), np.array(scores), np.array(correct, dtype=bool), len(pairs) - len(queries))


def partner_decisions(
    pairs: list[Pair], graph: DuplicateGraph, vectors: dict[str, np.ndarray], verifier: HitVerifier | None,
) -> Decisions:
    """Partner-only protocol; ``verifier=None`` scores by plain cosine."""
    if verifier is None:
        scores = np.array([float(vectors[p.text_a] @ vectors[p.text_b]) for p in pairs])
    else:
        scores = np.concatenate([
            _verifier_scores(verifier, p.text_b, vectors[p.text_b], [p.text_a], vectors[p.text_a][None, :]) for p in pairs
        ])
    correct = np.array([graph.duplicates(p.text_a, p.text_b) for p in pairs], dtype=bool)
    return Decisions(np.array([p.label for p in pairs]), scores, correct)


def rates(d: Decisions, threshold: float) -> dict[str, float | int]:
    """The three rates of the module doc at ``threshold``, with the counts behind them."""
    hit = d.score >= threshold
    dup, non = d.label == 1, d.label == 0
    n_dup, n_non = max(1, int(dup.sum())), max(1, int(non.sum()))
    return {
        "duplicate_hit_rate": float((dup & hit & d.correct).sum() / n_dup),
        "false_hit_rate": float((non & hit & ~d.correct).sum() / n_non),
        "wrong_hit_rate_on_duplicates": float((dup & hit & ~d.correct).sum() / n_dup),
        "duplicate_queries": int(dup.sum()),
        "non_duplicate_queries": int(non.sum()),
        "hits": int(hit.sum()),
    }


def lowest_safe_threshold(d: Decisions, max_false: float, max_wrong: float = 1.0) -> float:
    """The lowest threshold (most hits) at which ``false_hit_rate <= max_false`` and
    ``wrong_hit_rate_on_duplicates <= max_wrong``.

    Lowering the threshold only adds hits, so both rates grow monotonically and the safe
    thresholds are those at or above the returned one.
    """
    order = np.argsort(-d.score, kind="stable")
    s, lab, ok = d.score[order], d.label[order], d.correct[order]
    n_dup, n_non = max(1, int((lab == 1).sum())), max(1, int((lab == 0).sum()))
    false = np.cumsum((lab == 0) & ~ok) / n_non
    wrong = np.cumsum((lab == 1) & ~ok) / n_dup
    # Only positions that end a run of tied scores are thresholds one can actually set.
    last_of_tie = np.append(s[1:] != s[:-1], True)
    within = (false <= max_false) & (wrong <= max_wrong)
    first_unsafe = len(s) if within.all() else int(np.argmin(within))
    candidates = np.flatnonzero(last_of_tie[:first_unsafe])
    return float(s[candidates[-1]]) if candidates.size else float(np.nextafter(s[0], np.inf))


def pooled(folds: Sequence[Decisions]) -> Decisions:
    """The folds' decisions as one set (each fold scored by the model that did not train on it)."""
    return Decisions(
        np.concatenate([d.label for d in folds]), np.concatenate([d.score for d in folds]),
        np.concatenate([d.correct for d in folds]), sum(d.exact_hits for d in folds),
    )


def predicted_upper_bound(folds: Sequence[Decisions], threshold: float, *, confidence: float) -> dict[str, float]:
    """One-sided upper bounds on the false-hit and wrong-hit rates of a *new* split of one fold's size.

    A prediction bound, not a confidence bound on the mean: the pooled rate ``p`` plus ``z``
    standard deviations of one split's rate, taking the larger of the binomial variance
    ``p(1 - p) / n`` and the variance actually seen between the folds (QQP's label noise comes in
    clumps, so splits differ by more than sampling alone), widened by ``1 + 1/K`` because ``p``
    is itself estimated from ``K`` folds.
    """
    z = NormalDist().inv_cdf(confidence)
    out = {}
    for name, label, bad in (("false_hit_rate", 0, "false"), ("wrong_hit_rate_on_duplicates", 1, "wrong")):
        counts = np.array([((d.label == label) & ~d.correct & (d.score >= threshold)).sum() for d in folds], dtype=float)
        sizes = np.array([max(1, int((d.label == label).sum())) for d in folds], dtype=float)
        p = counts.sum() / sizes.sum()
        between = float(np.var(counts / sizes, ddof=1)) if len(folds) > 1 else 0.0
        variance = max(p * (1 - p) / sizes.mean(), between) * (1 + 1 / len(folds))
        out[name] = p + z * float(np.sqrt(variance))
        out[f"{bad}_pooled"] = p
    return out


def cross_fitted_threshold(protocols: Sequence[Sequence[Decisions]], *, target: float, confidence: float) -> float:
    """The lowest threshold at which, for every protocol's out-of-fold decisions, both predicted upper
    bounds (:func:`predicted_upper_bound`) stay within ``target``; every threshold above it does too.

    Scanned from the top down over the scores seen, stopping at the first that breaks the bound,
    so a lucky dip further down (the bound is not monotone) never lowers the threshold.
    """
    scores = np.unique(np.concatenate([d.score for folds in protocols for d in folds]))[::-1]
    chosen = float(np.nextafter(scores[0], np.inf))
    for t in scores:
        bounds = [predicted_upper_bound(folds, float(t), confidence=confidence) for folds in protocols]
        if any(max(b["false_hit_rate"], b["wrong_hit_rate_on_duplicates"]) > target for b in bounds):
            break
        chosen = float(t)
    return chosen
