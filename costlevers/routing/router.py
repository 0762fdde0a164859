"""Routers: a score per request, before any model answers, of how much the strong model would
gain over the cheap one. Higher means "the cheap model is not good enough".

Two kinds, both fitted offline by ``python -m spillover.training.router`` on labelled outcomes
(which candidate answered correctly) and served with numpy alone:

* ``linear``: a multinomial logistic model over the prompt's embedding and shape
  (:mod:`costlevers.routing.features`) predicting whether the strong model fixes (+1), breaks
  (-1) or changes nothing (0) about the cheap one's answer; the score is P(+1) - P(-1), the
  expected accuracy gained by the strong call.
* ``knn``: the mean of that gain over the ``k`` labelled prompts nearest by cosine.

Each weights file also keeps the out-of-fold scores of its training items with their labels,
so a route's quality target becomes a threshold at start (:func:`costlevers.routing.threshold.threshold_for`).
``bench/routing.py`` measures both on subjects and problems neither saw; the linear one won
there (APGR 0.57 against 0.54 on held-out MMLU subjects, level on GSM8K) and is the one shipped;
a kNN router needs its own weights file (``--knn-out``), 4.6 MB of labelled prompt vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from costlevers.routing.threshold import threshold_for

__all__ = ["BUILTIN_WEIGHTS", "Calibration", "KnnRouter", "LinearRouter", "Router", "load_router"]

#: The shipped router: the linear one, which beat kNN on held-out MMLU subjects (bench/routing.py).
BUILTIN_WEIGHTS = Path(__file__).with_name("router_linear.npz")


class Router(Protocol):
    kind: str

    def score(self, vector: np.ndarray, shape: np.ndarray) -> float:
        """The expected gain of the strong model on this prompt (embedding, shape features)."""
        ...


@dataclass(frozen=True)
class Calibration:
    """Out-of-fold scores of labelled items and whether each model answered them correctly."""

    scores: np.ndarray
    weak_ok: np.ndarray
    strong_ok: np.ndarray

    def threshold(self, quality_target: float) -> float:
        return threshold_for(self.scores, self.weak_ok, self.strong_ok, quality_target)


@dataclass(frozen=True)
class LinearRouter:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (classes, features)
    intercept: np.ndarray
    classes: np.ndarray  # the gain each row of coef predicts: -1, 0, +1
    kind: str = "linear"

    def score(self, vector: np.ndarray, shape: np.ndarray) -> float:
        return float(self.scores(np.concatenate([vector, shape])[None, :])[0])

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Many rows at once (offline evaluation uses the same arithmetic)."""
        logits = ((features - self.mean) / self.scale) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        return p @ self.classes.astype(np.float64)


@dataclass(frozen=True)
class KnnRouter:
    vectors: np.ndarray  # unit rows
    gains: np.ndarray
    k: int
    kind: str = "knn"

    def score(self, vector: np.ndarray, shape: np.ndarray) -> float:
        return float(self.scores(vector[None, :])[0])

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        sims = vectors.astype(np.float32) @ self.vectors.T.astype(np.float32)
        k = min(self.k, sims.shape[1])
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        return self.gains[nearest].astype(np.float64).mean(axis=1)


def load_router(path: Path) -> tuple[LinearRouter | KnnRouter, Calibration]:
    with np.load(path) as z:
        calibration = Calibration(z["oof_scores"], z["oof_weak_ok"], z["oof_strong_ok"])
        kind = str(z["kind"])
        if kind == "linear":
            return LinearRouter(z["mean"], z["scale"], z["coef"], z["intercept"], z["classes"]), calibration
        if kind == "knn":
            return KnnRouter(z["vectors"].astype(np.float32), z["gains"], int(z["k"])), calibration
    raise ValueError(f"{path}: unknown router kind {kind!r}")
