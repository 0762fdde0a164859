"""From a stated quality target to a score threshold, on out-of-fold scores.

A route says how much quality it will give up ("95% of the strong model's accuracy"), not a raw
score: the threshold is worked out from labelled outcomes the score never saw (each item scored
by a model fitted without its fold). Sending the items scored above the threshold to the strong
model and the rest to the cheap one reaches the target on those items with the fewest strong
calls. Ties are never split: a threshold sits between two distinct scores.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["quality_curve", "threshold_for"]


def quality_curve(scores: np.ndarray, weak_ok: np.ndarray, strong_ok: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, accuracy): ``order`` sorts items by descending score; ``accuracy[m]`` is the
    accuracy when the first ``m`` of them go to the strong model (``m`` = 0..n); ``cut`` marks
    the ``m`` that fall between distinct scores (where a threshold can stand)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    weak, strong = np.asarray(weak_ok, dtype=np.float64)[order], np.asarray(strong_ok, dtype=np.float64)[order]
    n = len(order)
    accuracy = (weak.sum() + np.concatenate([[0.0], np.cumsum(strong - weak)])) / max(n, 1)
    sorted_scores = np.asarray(scores, dtype=np.float64)[order]
    cut = np.ones(n + 1, dtype=bool)
    cut[1:n] = sorted_scores[:-1] > sorted_scores[1:]
    return order, accuracy, cut


def threshold_for(scores: np.ndarray, weak_ok: np.ndarray, strong_ok: np.ndarray, target: float) -> float:
    """The highest threshold at which sending ``score > threshold`` to the strong model keeps
    accuracy at ``target`` times the strong model's own: ``inf`` when the cheap model alone
    does, ``-inf`` when only sending everything does."""
    order, accuracy, cut = quality_curve(scores, weak_ok, strong_ok)
    goal = target * float(np.mean(strong_ok)) - 1e-12
    reached = np.nonzero((accuracy >= goal) & cut)[0]
    if len(reached) == 0:
        return -math.inf
    m = int(reached[0])
    if m == 0:
        return math.inf
    if m == len(order):
        return -math.inf
    ordered = np.asarray(scores, dtype=np.float64)[order]
    return float((ordered[m - 1] + ordered[m]) / 2)
