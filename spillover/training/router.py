"""Fit, cross-fit and export the routers and the cascade's answer verifier (needs scikit-learn;
serving does not).

    python -m spillover.training.router [--data ../shared/data/routing]

Inputs are RouteLLM's labelled outcomes (:mod:`spillover.training.routing_data`): MMLU's 28
subjects and GSM8K's problems, each prompt with whether Mixtral-8x7B (cheap) and GPT-4 (strong)
answered it correctly. Every exported file keeps out-of-fold scores (each item scored by a model
fitted without its group's fold: subjects for MMLU, problems for GSM8K) with the labels, from
which a route's quality target becomes its threshold at start. ``bench/routing.py`` runs the same
functions one level further out (outer folds held out of everything here) for its figures.

Embeddings are cached under ``~/.cache/spillover/bench/`` by text hash, like the cache verifier's.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from costlevers.routing.checks import arithmetic_slips, final_answer
from costlevers.routing.features import shape_features
from costlevers.routing.router import BUILTIN_WEIGHTS, KnnRouter, LinearRouter
from costlevers.routing.verifier import BUILTIN_VERIFIER, AnswerVerifier, answer_features
from spillover.training.pairs import cached_embeddings, encode_builtin
from spillover.training.routing_data import Labelled, assign_folds, load_gsm8k, load_mmlu
from stores.builtin_models import cache_dir

__all__ = [
    "DATA", "EMBEDDINGS_CACHE", "KNN_K", "LINEAR_C", "VERIFIER_C", "cascade_order_scores", "checks_fail", "embed_prompts",
    "fit_knn", "fit_linear", "fit_verifier", "main", "out_of_fold", "router_inputs", "verifier_inputs",
]

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "routing"
EMBEDDINGS_CACHE = cache_dir() / "bench" / "routing-embeddings.npz"
#: Regularisation and neighbourhood size, fixed before any test fold was looked at (384 embedding
#: dimensions against a few thousand labels call for strong shrinkage).
LINEAR_C = 0.02
VERIFIER_C = 1.0
KNN_K = 100


def embed_prompts(items: Sequence[Labelled]) -> np.ndarray:
    """Every prompt's all-MiniLM-L6-v2 vector (unit rows), from the cache where it has one."""
    vectors = cached_embeddings([i.prompt for i in items], encode_builtin, EMBEDDINGS_CACHE, chunk=512)
    return np.stack([vectors[i.prompt] for i in items]).astype(np.float32)


def router_inputs(items: Sequence[Labelled], vectors: np.ndarray) -> np.ndarray:
    """Each prompt as the linear router reads it: embedding, then shape (a one-message chat)."""
    shapes = np.stack([shape_features({"messages": [{"role": "user", "content": i.prompt}]}, i.prompt) for i in items])
    return np.hstack([vectors, shapes]).astype(np.float32)


def verifier_inputs(items: Sequence[Labelled]) -> np.ndarray:
    return np.stack([answer_features(i.prompt, i.weak_answer or "") for i in items])


def checks_fail(answer: str) -> bool:
    """The cascade's rule checks on a math answer: no final number, or arithmetic that does not
    re-evaluate (truncation shows as a missing final number in these files)."""
    return final_answer(answer) is None or arithmetic_slips(answer)[1] > 0


def cascade_order_scores(verifier_scores: np.ndarray, failed_checks: np.ndarray) -> np.ndarray:
    """The order in which the cascade escalates: answers failing a rule check first (always),
    then by the verifier's P(wrong). Scores are in [0, 1], so +2 puts a failed check above all."""
    return verifier_scores + 2.0 * failed_checks


def fit_linear(features: np.ndarray, gains: np.ndarray, c: float = LINEAR_C) -> LinearRouter:
    scaler = StandardScaler().fit(features)
    model = LogisticRegression(C=c, max_iter=3000).fit(scaler.transform(features), gains)
    return LinearRouter(scaler.mean_.astype(np.float32), np.where(scaler.scale_ > 0, scaler.scale_, 1.0).astype(np.float32),
                        model.coef_.astype(np.float32), model.intercept_.astype(np.float32), model.classes_.astype(np.int8))


def fit_knn(vectors: np.ndarray, gains: np.ndarray, k: int = KNN_K) -> KnnRouter:
    return KnnRouter(vectors.astype(np.float32), gains.astype(np.int8), k)


def fit_verifier(features: np.ndarray, wrong: np.ndarray, c: float = VERIFIER_C) -> AnswerVerifier:
    scaler = StandardScaler().fit(features)
    model = LogisticRegression(C=c, max_iter=3000).fit(scaler.transform(features), wrong)
    return AnswerVerifier(scaler.mean_.astype(np.float32), np.where(scaler.scale_ > 0, scaler.scale_, 1.0).astype(np.float32),
                          model.coef_[0].astype(np.float32), float(model.intercept_[0]))


def out_of_fold(groups: Sequence[str], folds: int, fit_and_score: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """Each item's score from a model fitted on the other folds (folds by group)."""
    fold_of = assign_folds(list(groups), folds)
    fold = np.array([fold_of[g] for g in groups])
    scores = np.zeros(len(groups))
    for k in range(folds):
        train, test = np.nonzero(fold != k)[0], np.nonzero(fold == k)[0]
        scores[test] = fit_and_score(train, test)
    return scores


def _calibration(scores: np.ndarray, weak_ok: np.ndarray, strong_ok: np.ndarray) -> dict[str, np.ndarray]:
    """What a weights file keeps to turn a quality target into a threshold (Calibration)."""
    return {"oof_scores": scores.astype(np.float32), "oof_weak_ok": weak_ok, "oof_strong_ok": strong_ok}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--knn-out", type=Path, help="also export a kNN router (its labelled vectors) to this file")
    args = parser.parse_args()
    mmlu, gsm8k = load_mmlu(args.data / "mmlu"), load_gsm8k(args.data / "gsm8k" / "gsm8k_responses.csv")
    items = mmlu + gsm8k
    vectors = embed_prompts(items)
    features = router_inputs(items, vectors)
    gains = np.array([i.gain for i in items])
    weak_ok, strong_ok = np.array([i.weak_ok for i in items]), np.array([i.strong_ok for i in items])
    groups = [f"{i.source}:{i.group}" for i in items]
    linear_oof = out_of_fold(groups, args.folds, lambda train, test: fit_linear(features[train], gains[train]).scores(features[test]))
    linear = fit_linear(features, gains)
    np.savez_compressed(BUILTIN_WEIGHTS, kind=np.array("linear"), mean=linear.mean, scale=linear.scale, coef=linear.coef,
                        intercept=linear.intercept, classes=linear.classes, **_calibration(linear_oof, weak_ok, strong_ok))
    print(f"linear router: {len(items)} items, written to {BUILTIN_WEIGHTS}")
    if args.knn_out is not None:
        knn_oof = out_of_fold(groups, args.folds, lambda train, test: fit_knn(vectors[train], gains[train]).scores(vectors[test]))
        np.savez_compressed(args.knn_out, kind=np.array("knn"), vectors=vectors.astype(np.float16), gains=gains.astype(np.int8),
                            k=np.array(KNN_K), **_calibration(knn_oof, weak_ok, strong_ok))
        print(f"knn router: written to {args.knn_out}")
    answers = verifier_inputs(gsm8k)
    wrong = np.array([not i.weak_ok for i in gsm8k]).astype(int)
    failed = np.array([checks_fail(i.weak_answer or "") for i in gsm8k])
    oof = out_of_fold([i.group for i in gsm8k], args.folds, lambda train, test: fit_verifier(answers[train], wrong[train]).scores(answers[test]))
    verifier = fit_verifier(answers, wrong)
    np.savez_compressed(BUILTIN_VERIFIER, mean=verifier.mean, scale=verifier.scale, coef=verifier.coef, intercept=np.array(verifier.intercept),
                        **_calibration(cascade_order_scores(oof, failed), np.array([i.weak_ok for i in gsm8k]),
                                       np.array([i.strong_ok for i in gsm8k])))
    print(f"verifier: {len(gsm8k)} answers, written to {BUILTIN_VERIFIER}")


if __name__ == "__main__":
    main()
