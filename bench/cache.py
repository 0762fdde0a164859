"""Cache benchmark: how often the semantic cache answers, how often wrongly, and what a lookup costs.

Quality (bench/cache_quality.py): the QQP dev pairs' held-back test split (the verifier was
trained and calibrated on the other splits), both protocols (whole index, partner only), plain
cosine (GPTCache's method) against spillover's decision at the same false-hit rate.

Runtime: the cache stage as the ingress runs it (exact GET, HNSW search, the verifier, the
answer's HGET), Redis round trips included, the embedding excluded (vectors are precomputed),
over 100,000 entries in Redis loaded into the replica's index the way a restart does. The
entries are the test split's distinct questions, then copies of the dev file's other questions
with a little noise on their vectors until there are 100,000 (so the index is full of close
neighbours, the hard case); the queries are the test split's ``text_b``. Also: one text's
embedding in process (all-MiniLM-L6-v2, one thread, as the embedding deployment runs it), and
bytes per entry in the replica and in Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import add_provenance_arguments, median, record, refuse_dirty_tree, table  # noqa: E402
from bench.cache_quality import DATA, decide_latency_ms, partner_only, test_split, whole_index  # noqa: E402
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


async def runtime(redis_url: str, target: int) -> dict[str, float]:
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
        times, hits = [], 0
        for text in queries:
            ctx = RequestContext("r", Api.CHAT, ROUTE, body(text), False, {})
            t0 = time.perf_counter()
            await stage.process(ctx)
            times.append((time.perf_counter() - t0) * 1000)
            hits += ctx.outcome is not None
        if not hits:
            raise RuntimeError("no lookup hit: the queries did not reach the entries' partition")
        times.sort()
        sample = [f"{prefix}s:e:{entry_id(partition, t)}" for t in texts[:: max(1, len(texts) // 200)]]
        redis_bytes = statistics.mean([await client.memory_usage(k) for k in sample])  # type: ignore[attr-defined]
        return {"entries": len(semantic), "rebuild_s": rebuild_s, "lookups": len(times), "hits": hits,
                "lookup_p50_ms": times[len(times) // 2], "lookup_p99_ms": times[int(len(times) * 0.99)],
                "bytes_per_entry": semantic.bytes_per_entry(), "redis_bytes_per_entry": redis_bytes}
    finally:
        await semantic.aclose()
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=5000)]
        for start in range(0, len(keys), 5000):
            await client.unlink(*keys[start:start + 5000])
        await pools.aclose()


async def _vector(vectors: dict[str, np.ndarray], text: str) -> np.ndarray:
    return vectors[text]


def embed_p50_ms(samples: int = 200) -> float:
    from serving.embeddings import SentenceEncoder

    encoder = SentenceEncoder.builtin(threads=1)
    test, _, _ = test_split(DATA)
    times = []
    for p in test[:samples]:
        t0 = time.perf_counter()
        encoder.encode([p.text_b])
        times.append((time.perf_counter() - t0) * 1000)
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_provenance_arguments(parser)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    refuse_dirty_tree(args.allow_dirty)
    verifier = HitVerifier.load()
    quality = {"whole_index": whole_index(DATA, verifier), "partner_only": partner_only(DATA, verifier)}
    run = asyncio.run(runtime(args.redis_url, args.entries))
    embed_ms = embed_p50_ms()
    decide = decide_latency_ms(DATA, verifier)
    rows = []
    for name, q in quality.items():
        base = q["baseline"]
        rows.append([name, "spillover", f"{q['threshold']:.3f}", f"{q['duplicate_hit_rate']:.1%}", f"{q['false_hit_rate']:.2%}",
                     f"{q['wrong_hit_rate_on_duplicates']:.2%}"])
        rows.append([name, "plain cosine (same false rate)", f"{base['threshold']:.3f}", f"{base['duplicate_hit_rate']:.1%}",
                     f"{base['false_hit_rate']:.2%}", f"{base['wrong_hit_rate_on_duplicates']:.2%}"])
    text = table(["protocol", "decision", "threshold", "duplicate hits", "false hits", "wrong hits on duplicates"], rows)
    runtime_rows = [[k, f"{v:.3f}" if isinstance(v, float) else v] for k, v in {**run, "embed_p50_ms": embed_ms,
                                                                                  "decide_p50_ms": decide["new_query"]}.items()]
    text += "\n\n" + table(["runtime", "value"], runtime_rows)
    print(text)
    w, p = quality["whole_index"], quality["partner_only"]
    figures = {
        "duplicate_hit_rate": w["duplicate_hit_rate"], "false_hit_rate": w["false_hit_rate"], "threshold": w["threshold"],
        "wrong_hit_rate_on_duplicates": w["wrong_hit_rate_on_duplicates"], "baseline": w["baseline"],
        "ratio_vs_baseline": w["duplicate_hit_ratio_vs_baseline"], "exact_hits": w["exact_hits"],
        "partner_only": {k: p[k] for k in ("duplicate_hit_rate", "false_hit_rate", "wrong_hit_rate_on_duplicates", "threshold", "baseline",
                                           "duplicate_hit_ratio_vs_baseline")},
        "lookup_p99_ms": run["lookup_p99_ms"], "lookup_p50_ms": run["lookup_p50_ms"], "embed_p50_ms": embed_ms,
        "bytes_per_entry": run["bytes_per_entry"], "redis_bytes_per_entry": run["redis_bytes_per_entry"],
        "index_rebuild_s": run["rebuild_s"], "entries": run["entries"], "decide_p50_ms": decide["new_query"],
        "tradeoff": {"whole_index": w["tradeoff"], "partner_only": p["tradeoff"]},
        "goal_met": bool(w["goal_met"] and p["goal_met"] and run["lookup_p99_ms"] <= 5.0),
    }
    record("cache", "Semantic cache: hit quality on QQP and lookup cost at 100k entries", figures, (
        f"```\n{text}\n```\n\nQuality on the QQP dev file's held-back test split (split by label-graph component; the verifier "
        f"trained and calibrated on the others). Whole index: {w['index_entries']} entries, top {w['k']} by cosine judged, "
        f"{w['exact_hits']} exact hits counted apart. The peer is plain cosine (GPTCache's method) at the highest threshold whose "
        f"false-hit rate is not above spillover's: {w['duplicate_hit_ratio_vs_baseline']:.2f}x its duplicate hits (whole index), "
        f"{p['duplicate_hit_ratio_vs_baseline']:.2f}x (partner only). Lookup: the cache stage over {run['entries']:,} entries in "
        f"Redis (test questions plus noisy copies of the dev file's others), Redis round trips in, embedding out; the replica "
        f"rebuilt its index from Redis in {run['rebuild_s']:.0f} s. Goal met: {figures['goal_met']}."), allow_dirty=args.allow_dirty)


if __name__ == "__main__":
    main()
