"""The semantic store: nearest entries per partition, TTL and size eviction, purge, and (on real
Redis) two replicas kept in step through the stream, and a restart that rebuilds the index."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest
import redis.asyncio as aioredis

from contracts.stores import PurgeFilter, SemanticEntry
from costlevers.cache.redis_semantic import RedisSemanticStore
from costlevers.cache.request_key import namespace_of
from costlevers.cache.semantic_store import SemanticStore, entry_id
from tests.helpers import wait_for_async

NS = namespace_of("m", "v1", "1", "team-a")
PART = f"{NS}:partition-1"


def unit(*values: float) -> np.ndarray:
    v = np.zeros(8, dtype=np.float32)
    v[: len(values)] = values
    return v / np.linalg.norm(v)


def entry(text: str, vector: np.ndarray, *, partition: str = PART, expires_at: float = 1e12) -> SemanticEntry:
    return SemanticEntry(entry_id(partition, text), partition, text, vector, expires_at)


async def test_nearest_live_entries_of_the_same_partition_only() -> None:
    now = [1000.0]
    store = SemanticStore(max_entries=10, clock=lambda: now[0])
    await store.add(entry("a", unit(1, 0)), b"A")
    await store.add(entry("b", unit(1, 1)), b"B")
    await store.add(entry("c", unit(0, 1), expires_at=1500.0), b"C")
    await store.add(entry("x", unit(1, 0), partition=f"{NS}:partition-2"), b"X")
    found = store.candidates(PART, unit(1, 0.1), k=5, min_cosine=0.5)
    assert [c.entry.text for c in found] == ["a", "b"] and found[0].cosine == pytest.approx(0.995, abs=1e-3)
    assert [c.entry.text for c in store.candidates(PART, unit(0, 1), k=5, min_cosine=0.5)] == ["c", "b"]
    now[0] = 2000.0
    assert [c.entry.text for c in store.candidates(PART, unit(0, 1), k=5, min_cosine=0.5)] == ["b"], "c expired"
    assert store.sweep() == 1 and len(store) == 3
    assert await store.answer(found[0].entry) == b"A"


async def test_the_oldest_go_past_max_entries_and_a_purge_matches_namespaces() -> None:
    store = SemanticStore(max_entries=2)
    for i, text in enumerate(["one", "two", "three"]):
        await store.add(entry(text, unit(1, i)), text.encode())
    assert sorted(c.entry.text for c in store.candidates(PART, unit(1, 1), k=5, min_cosine=-1)) == ["three", "two"]
    other = namespace_of("m", "v1", "2", "team-a")
    await store.add(entry("old prompt", unit(1), partition=f"{other}:p"), b"O")
    assert await store.purge(PurgeFilter(prompt_version="1")) == 1 and len(store) == 1
    assert store.bytes_per_entry() > 0


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[tuple[aioredis.Redis, str]]:
    client = aioredis.Redis.from_url(redis_url)
    prefix = f"spillover-test-{uuid.uuid4().hex[:8]}:cache:s:"
    yield client, prefix
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_two_replicas_share_entries_through_redis_and_a_restart_rebuilds(redis_client: tuple[aioredis.Redis, str]) -> None:
    client, prefix = redis_client
    a, b = RedisSemanticStore(client, 100, prefix=prefix), RedisSemanticStore(client, 100, prefix=prefix)
    await a.start()
    await b.start()
    try:
        await a.add(entry("capital of France", unit(1, 0), expires_at=time.time() + 60), b"Paris")
        await wait_for_async(lambda: len(b) == 1, what="the entry on the second replica")
        (found,) = b.candidates(PART, unit(1, 0), k=3, min_cosine=0.9)
        assert await b.answer(found.entry) == b"Paris", "the answer is read from Redis"
        await b.purge(PurgeFilter(route="m"))
        await wait_for_async(lambda: len(a) == 0, what="the purge on the first replica")
        assert await a.answer(found.entry) is None
        await a.add(entry("capital of Spain", unit(0, 1), expires_at=time.time() + 60), b"Madrid")
    finally:
        await a.aclose()
        await b.aclose()
    restarted = RedisSemanticStore(client, 100, prefix=prefix)
    await restarted.start(wait=True)
    try:
        assert [c.entry.text for c in restarted.candidates(PART, unit(0, 1), k=3, min_cosine=0.9)] == ["capital of Spain"]
    finally:
        await restarted.aclose()


async def test_redis_keeps_at_most_max_entries_soonest_expiring_first(redis_client: tuple[aioredis.Redis, str]) -> None:
    client, prefix = redis_client
    store = RedisSemanticStore(client, 2, prefix=prefix)
    await store.start()
    try:
        for i, text in enumerate(["first", "second", "third"]):
            await store.add(entry(text, unit(1, i), expires_at=time.time() + 60 + i), text.encode())
        assert sorted(e.text for e in store._entries.values()) == ["second", "third"]
        assert await client.zcard(prefix + "order") == 2
        assert not await client.exists(prefix + f"e:{entry_id(PART, 'first')}")
    finally:
        await store.aclose()
