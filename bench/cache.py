"""Semantic cache lookup cost at 100k entries: what a lookup adds to a request.

The cache stage as the ingress runs it (exact GET, HNSW search, the verifier, the answer's
HGET), Redis round trips included, the embedding excluded (vectors are precomputed), over
100,000 entries in Redis loaded into the replica's index the way a restart does. The entries
are the QQP test split's distinct questions, then copies of the dev file's other questions with
a little noise on their vectors until there are 100,000 (so the index is full of close
neighbours, the hard case); the queries are the test split's ``text_b``. Also: one text's
embedding in process (all-MiniLM-L6-v2, one thread, as the embedding deployment runs it), one
verifier decision over 5 candidates, and bytes per entry in the replica and in Redis.

Hit quality is not here: ``bench/cache_shift.py`` records it (the steered threshold, the judge,
the verifier against cosine with guards on held-back data); ``bench/cache_quality.py`` prints the
QQP test split's tradeoff. Every lookup, embedding and decision time is a raw row in
``bench/results/cache_lookup.raw.jsonl.gz``; ``--recompute`` rebuilds the figures from it.

    python bench/cache.py [--entries 100000] [--redis-url URL] [--allow-dirty] [--no-record]
    python bench/cache.py --recompute [RAW]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    add_provenance_arguments,
    add_recompute_arguments,
    percentile,
    publish,
    recompute_if_asked,
    refuse_dirty_tree,
    table,
)
from bench.cache_quality import DATA, decide_times_s, test_split  # noqa: E402
from contracts.context import ANONYMOUS, Api, RequestContext  # noqa: E402
from contracts.chat_answer import ChatAnswer  # noqa: E402
from costlevers.cache.exact_store import RedisExactStore  # noqa: E402
from costlevers.cache.redis_semantic import RedisSemanticStore  # noqa: E402
from costlevers.cache.request_key import request_keys  # noqa: E402
from costlevers.cache.semantic_store import entry_id  # noqa: E402
from costlevers.cache.stage import CacheStage, RoutePolicy  # noqa: E402
from costlevers.cache.verifier import HitVerifier  # noqa: E402
from stores.redis import RedisPools  # noqa: E402
from spillover.training.cache_verifier import embed_all  # noqa: E402
from spillover.training.pairs import load_pairs  # noqa: E402

NAME = "cache_lookup"
ROUTE = "bench"
POLICY = RoutePolicy(ttl_s=3600, model_version="v1", prompt_version="1", non_deterministic=False, tool_calls=False, semantic=True)
ANSWER = ChatAnswer({"id": "x", "object": "chat.completion", "created": 0, "model": ROUTE, "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "A typical short answer of a few sentences. " * 8}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 20, "completion_tokens": 90, "total_tokens": 110}}).to_bytes()


def body(text: str) -> dict:
    return {"model": ROUTE, "messages": [{"role": "user", "content": text}], "temperature": 0}


def entries(target: int, seed: int = 7) -> tuple[list[str], np.ndarray, str]:
    """The test split's distinct questions, then noisy copies of the dev file's others up to ``target``."""
    test, _, vectors = test_split(DATA)
    index_texts = list(dict.fromkeys(p.text_a for p in test))
    others = embed_all(load_pairs(DATA))
    pool = [t for t in others if t not in vectors]
    rng = np.random.default_rng(seed)
    texts, rows = list(index_texts), [vectors[t] for t in index_texts]
    while len(texts) < target:
        source = pool[len(texts) % len(pool)]
        noisy = others[source] + rng.normal(0, 0.02, others[source].shape).astype(np.float32)
        texts.append(f"{source} [{len(texts)}]")
        rows.append(noisy / np.linalg.norm(noisy))
    # The queries come without a key: the anonymous principal's team is their scope.
    partition = request_keys(body("x"), route=ROUTE, model_version=POLICY.model_version, prompt_version=POLICY.prompt_version,
                             scope=ANONYMOUS.team).partition
    return texts, np.stack(rows).astype(np.float32), partition


async def load_redis(client: object, prefix: str, texts: list[str], matrix: np.ndarray, partition: str) -> None:
    """Write the entries as the store writes them (hash + TTL), in pipelines of 1,000."""
    for start in range(0, len(texts), 1000):
        async with client.pipeline(transaction=False) as pipe:  # type: ignore[attr-defined]
            for text, vector in zip(texts[start:start + 1000], matrix[start:start + 1000], strict=True):
                key = f"{prefix}s:e:{entry_id(partition, text)}"
                pipe.hset(key, mapping={"p": partition, "t": text, "v": vector.tobytes(), "a": ANSWER})
                pipe.expire(key, 3600)
            await pipe.execute()


#: The lookup cost goal of the cache issue: p99 at most this, at 100k entries.
LOOKUP_P99_GOAL_MS = 5.0


async def runtime(redis_url: str, target: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The index's one-off figures (entries, rebuild time, bytes per entry) and one raw row per lookup."""
    texts, matrix, partition = entries(target)
    test, _, vectors = test_split(DATA)
    queries = [p.text_b for p in test if p.text_b not in set(texts)][:2000]
    pools = RedisPools()
    client = pools.client(redis_url)
    prefix = f"spillover-bench-{uuid.uuid4().hex[:8]}:cache:"
    semantic = RedisSemanticStore(client, target + 1000, prefix=prefix + "s:")
    try:
        await load_redis(client, prefix, texts, matrix, partition)
        started = time.perf_counter()
        await semantic.start(wait=True)
        rebuild_s = time.perf_counter() - started
        stage = CacheStage({ROUTE: POLICY}, RedisExactStore(client, prefix + "x:"), semantic=semantic,
                           embed=lambda text: _vector(vectors, text), decision=HitVerifier.load())
        rows = []
        for text in queries:
            ctx = RequestContext("r", Api.CHAT, ROUTE, body(text), False, {})
            t0 = time.perf_counter()
            await stage.process(ctx)
            rows.append({"phase": "lookup", "ms": round((time.perf_counter() - t0) * 1000, 4), "hit": ctx.outcome is not None})
        if not any(r["hit"] for r in rows):
            raise RuntimeError("no lookup hit: the queries did not reach the entries' partition")
        sample = [f"{prefix}s:e:{entry_id(partition, t)}" for t in texts[:: max(1, len(texts) // 200)]]
        redis_bytes = statistics.mean([await client.memory_usage(k) for k in sample])  # type: ignore[attr-defined]
        index = {"entries": len(semantic), "rebuild_s": round(rebuild_s, 3), "bytes_per_entry": semantic.bytes_per_entry(),
                 "redis_bytes_per_entry": round(redis_bytes, 1)}
        return index, rows
    finally:
        await semantic.aclose()
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=5000)]
        for start in range(0, len(keys), 5000):
            await client.unlink(*keys[start:start + 5000])
        await pools.aclose()


async def _vector(vectors: dict[str, np.ndarray], text: str) -> np.ndarray:
    return vectors[text]


def embed_rows(samples: int = 200) -> list[dict[str, Any]]:
    """One raw row per embedding of one query text, in process on one thread."""
    from serving.embeddings import SentenceEncoder

    encoder = SentenceEncoder.builtin(threads=1)
    test, _, _ = test_split(DATA)
    rows = []
    for p in test[:samples]:
        t0 = time.perf_counter()
        encoder.encode([p.text_b])
        rows.append({"phase": "embed", "ms": round((time.perf_counter() - t0) * 1000, 4)})
    return rows


def derive(header: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Every figure from the raw file: lookup percentiles and hits, embedding and decision medians."""
    def times(phase: str) -> list[float]:
        return [r["ms"] for r in rows if r["phase"] == phase]

    lookups = times("lookup")
    figures = {
        **header["index"],
        "lookups": len(lookups),
        "hits": sum(1 for r in rows if r["phase"] == "lookup" and r["hit"]),
        "lookup_p50_ms": round(percentile(lookups, 0.5), 3),
        "lookup_p99_ms": round(percentile(lookups, 0.99), 3),
        "embed_p50_ms": round(percentile(times("embed"), 0.5), 3),
        "decide_p50_ms": round(percentile(times("decide/new_query"), 0.5), 3),
        "decide_nothing_profiled_p50_ms": round(percentile(times("decide/nothing_profiled"), 0.5), 3),
    }
    figures["goal_met"] = figures["lookup_p99_ms"] <= LOOKUP_P99_GOAL_MS
    return figures


def summary_table(figures: dict[str, Any]) -> str:
    return table(["figure", "value"], [[k, v] for k, v in figures.items()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_provenance_arguments(parser)
    add_recompute_arguments(parser)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--no-record", action="store_true", help="print the figures, write nothing")
    args = parser.parse_args()
    recompute_if_asked(args, NAME, derive, summary_table)
    refuse_dirty_tree(args.allow_dirty)
    index, rows = asyncio.run(runtime(args.redis_url, args.entries))
    rows += embed_rows()
    rows += [{"phase": f"decide/{case}", "ms": round(t * 1000, 4)} for case, series in decide_times_s(DATA, HitVerifier.load()).items()
             for t in series]
    header = {"entries_asked": args.entries, "index": index, "queries": "QQP dev test split text_b, first 2000 not in the index"}
    publish(args, NAME, "Semantic cache: lookup cost at 100k entries", header, rows, derive, summary_table)


if __name__ == "__main__":
    main()
