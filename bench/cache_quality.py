"""Semantic-cache hit quality on held-back QQP pairs: spillover's verifier against plain cosine (GPTCache's method).

Both protocols of :mod:`spillover.training.protocols` (whole index, partner only) on the *test*
split only (20% of ``qqp_pairs_dev.jsonl`` by label-graph component; the verifier was trained
and its threshold calibrated on the other 80%). Definitions, over the queries scored:

* ``duplicate_hit_rate`` = label-1 queries whose hit is a known duplicate / label-1 queries;
* ``false_hit_rate`` = label-0 queries whose hit is not a known duplicate / label-0 queries;
* ``wrong_hit_rate_on_duplicates`` = label-1 queries whose hit is not a known duplicate / label-1 queries;

"known duplicate" = joined by a chain of label-1 pairs. In the whole index, queries whose exact
text is an index entry are exact-cache hits, counted apart (``exact_hits``) and not scored.
``baseline`` is plain cosine at the lowest threshold whose ``false_hit_rate`` is not above the
verifier's (the same false-hit rate, as near as the data allows). The goal: both false rates
<= 1% and a duplicate hit rate >= 2x the baseline's, under both protocols.

``tradeoff`` compares the two rankings rather than the calibrated operating point: for each
false-hit ceiling, each method's lowest threshold *on the test split* that keeps within it
(ROC-style, so neither is calibrated there), and the duplicate hit rates that leaves.

    python bench/cache_quality.py [--data PATH] [--k 5]

Prints a table; writes nothing (``bench/cache.py`` records the figures).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import table  # noqa: E402
from costlevers.cache.guards import profile  # noqa: E402
from costlevers.cache.verifier import HitVerifier  # noqa: E402
from spillover.training.cache_verifier import embed_all  # noqa: E402
from spillover.training.pairs import DuplicateGraph, Pair, load_pairs, split_pairs  # noqa: E402
from spillover.training.protocols import Decisions, lowest_safe_threshold, partner_decisions, rates, whole_index_decisions  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "semantic_cache" / "qqp_pairs_dev.jsonl"
GOAL_MAX_FALSE = 0.01
GOAL_RATIO = 2.0
#: GPTCache's default similarity threshold, reported for reference.
GPTCACHE_THRESHOLD = 0.95
TRADEOFF_LEVELS = (0.0025, 0.005, 0.01, 0.02, 0.05)


@lru_cache(maxsize=2)
def test_split(data: Path = DATA) -> tuple[list[Pair], DuplicateGraph, dict[str, np.ndarray]]:
    """The test split's pairs, the duplicate graph of the whole file, and the test texts' vectors (cached on disk)."""
    pairs = load_pairs(data)
    test = split_pairs(pairs)["test"]
    return test, DuplicateGraph(pairs), embed_all(test)


def _compare(cosine: Decisions, verified: Decisions, threshold: float) -> dict[str, object]:
    ours = rates(verified, threshold)
    base_threshold = lowest_safe_threshold(cosine, ours["false_hit_rate"])
    base = rates(cosine, base_threshold)
    ratio = ours["duplicate_hit_rate"] / base["duplicate_hit_rate"] if base["duplicate_hit_rate"] else float("inf")
    return {
        **ours,
        "threshold": threshold,
        "baseline": {"method": "plain cosine", "threshold": base_threshold, **_only_rates(base)},
        f"cosine_{GPTCACHE_THRESHOLD}": _only_rates(rates(cosine, GPTCACHE_THRESHOLD)),
        "duplicate_hit_ratio_vs_baseline": ratio,
        "tradeoff": [_tradeoff_point(cosine, verified, level) for level in TRADEOFF_LEVELS],
        "goal_met": max(ours["false_hit_rate"], ours["wrong_hit_rate_on_duplicates"]) <= GOAL_MAX_FALSE and ratio >= GOAL_RATIO,
    }


def _tradeoff_point(cosine: Decisions, verified: Decisions, level: float) -> dict[str, float]:
    ours = rates(verified, lowest_safe_threshold(verified, level))["duplicate_hit_rate"]
    theirs = rates(cosine, lowest_safe_threshold(cosine, level))["duplicate_hit_rate"]
    return {"max_false_hit_rate": level, "verifier": ours, "plain_cosine": theirs, "ratio": ours / theirs if theirs else float("inf")}


def _only_rates(r: dict[str, float | int]) -> dict[str, float | int]:
    return {key: r[key] for key in ("duplicate_hit_rate", "false_hit_rate", "wrong_hit_rate_on_duplicates")}


def whole_index(data: Path = DATA, verifier: HitVerifier | None = None, *, k: int = 5) -> dict[str, object]:
    """Whole-index protocol on the test split: the verifier over the top ``k`` by cosine vs plain cosine's top entry."""
    verifier = verifier or HitVerifier.load()
    pairs, graph, vectors = test_split(data)
    cosine = whole_index_decisions(pairs, graph, vectors, None, k=k)
    verified = whole_index_decisions(pairs, graph, vectors, verifier, k=k)
    return {
        **_compare(cosine, verified, verifier.threshold),
        "exact_hits": verified.exact_hits,
        "index_entries": len({p.text_a for p in pairs}),
        "k": k,
    }


def partner_only(data: Path = DATA, verifier: HitVerifier | None = None) -> dict[str, object]:
    """Partner-only protocol on the test split: each ``text_b`` against its own ``text_a``."""
    verifier = verifier or HitVerifier.load()
    pairs, graph, vectors = test_split(data)
    return _compare(partner_decisions(pairs, graph, vectors, None), partner_decisions(pairs, graph, vectors, verifier), verifier.threshold)


def decide_times_s(
    data: Path = DATA, verifier: HitVerifier | None = None, *, k: int = 5, queries: int = 500,
) -> dict[str, list[float]]:
    """Wall time (s) of each :meth:`HitVerifier.decide` over ``k`` candidates.

    ``new_query``: the query is profiled afresh, the cached entries were profiled before (the
    cache's steady state: an entry is profiled when first compared). ``nothing_profiled``:
    the worst case, every text profiled inside the call.
    """
    verifier = verifier or HitVerifier.load()
    pairs, _, vectors = test_split(data)
    index = list(dict.fromkeys(p.text_a for p in pairs))
    matrix = np.stack([vectors[t] for t in index])
    times: dict[str, list[float]] = {"new_query": [], "nothing_profiled": []}
    for p in pairs[:queries]:
        qvec = vectors[p.text_b]
        candidates = [(index[i], matrix[i]) for i in np.argsort(-(matrix @ qvec))[:k]]
        for case, series in times.items():
            profile.cache_clear()
            if case == "new_query":
                for text, _ in candidates:
                    profile(text)
            started = time.perf_counter()
            verifier.decide(p.text_b, qvec, candidates)
            series.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    verifier = HitVerifier.load()
    results = {"whole index": whole_index(args.data, verifier, k=args.k), "partner only": partner_only(args.data, verifier)}
    rows = []
    for name, r in results.items():
        base, ref = r["baseline"], r[f"cosine_{GPTCACHE_THRESHOLD}"]
        for method, threshold, x in (
            ("verifier", r["threshold"], r),
            ("plain cosine, same false rate", base["threshold"], base),
            (f"plain cosine {GPTCACHE_THRESHOLD}", GPTCACHE_THRESHOLD, ref),
        ):
            rows.append([name, method, f"{threshold:.4f}", f"{x['duplicate_hit_rate']:.1%}", f"{x['false_hit_rate']:.2%}",
                         f"{x['wrong_hit_rate_on_duplicates']:.2%}"])
    print(table(["protocol", "decision", "threshold", "duplicate hits", "false hits", "wrong hits on duplicates"], rows))
    print()
    print(table(
        ["protocol", "false hits at most", "verifier duplicate hits", "plain cosine duplicate hits", "ratio"],
        [[name, f"{t['max_false_hit_rate']:.2%}", f"{t['verifier']:.1%}", f"{t['plain_cosine']:.1%}", f"{t['ratio']:.2f}x"]
         for name, r in results.items() for t in r["tradeoff"]],
    ))
    first = results["whole index"]
    print(f"\ntest split: {first['duplicate_queries']} duplicate and {first['non_duplicate_queries']} non-duplicate queries "
          f"scored in the whole index ({first['index_entries']} entries, top {args.k}; {first['exact_hits']} exact hits apart)")
    for name, r in results.items():
        print(f"{name}: {r['duplicate_hit_ratio_vs_baseline']:.2f}x plain cosine's duplicate hits; goal met: {r['goal_met']}")
    latency = {case: statistics.median(series) * 1000 for case, series in decide_times_s(args.data, verifier, k=args.k).items()}
    print(f"decide() over {args.k} candidates, median: {latency['new_query']:.3f} ms with the entries already profiled, "
          f"{latency['nothing_profiled']:.3f} ms with nothing profiled")


if __name__ == "__main__":
    main()
