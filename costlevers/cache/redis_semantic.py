"""Semantic entries shared through Redis: the cluster form of the semantic store.

Debian's Redis 7.0 has no vector search (and no pgvector package is at hand), so Redis holds
the entries and each ingress replica holds the index: an entry is a hash (partition, question,
vector, answer) with the entry's TTL, announced on a stream; a sorted set by expiry keeps the
count bounded (the soonest to expire go first). A replica follows the stream from the point it
read before loading every entry (in the background, so it serves while its index fills), so
nothing added meanwhile is missed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from contracts.stores import PurgeFilter, SemanticEntry
from costlevers.cache.semantic_store import SemanticStore

__all__ = ["RedisSemanticStore"]

logger = logging.getLogger(__name__)

#: How long one read of the stream waits for news (and so how long a stop takes at most).
_BLOCK_MS = 250
#: Entries read from Redis per round trip while loading.
_LOAD_BATCH = 500
#: Stream entries kept: far more than a replica falls behind between reads.
_STREAM_LEN = 100_000


class RedisSemanticStore(SemanticStore):
    def __init__(self, client: Any, max_entries: int, *, prefix: str = "spillover:cache:s:",
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(max_entries, clock)
        self._redis = client
        self._prefix = prefix
        self._stream = prefix + "log"
        self._order = prefix + "order"
        self._task: asyncio.Task[None] | None = None
        self._follower: Any = None
        self._stopping = False
        #: Set once every entry in Redis at start is in the index.
        self.loaded = asyncio.Event()

    def _key(self, entry_id: int) -> str:
        return f"{self._prefix}e:{entry_id}"

    async def start(self, *, wait: bool = False) -> None:
        """Follow the stream from now, loading every entry first in the background: a replica
        serves at once while its index fills (100k entries take a minute and a half on 2 cores).
        ``wait``: return once everything is loaded."""
        last = await self._redis.xrevrange(self._stream, count=1)
        since = last[0][0] if last else "0-0"
        # The blocking read gets a connection pool of its own: cancelling it mid-read must not
        # hand a connection with an unread reply back to the pool everyone else uses.
        pool = self._redis.connection_pool
        self._follower = type(self._redis)(connection_pool=type(pool)(connection_class=pool.connection_class, **pool.connection_kwargs))
        self._task = asyncio.create_task(self._load_then_follow(since), name="semantic-cache-follow")
        if wait:
            await self.loaded.wait()

    async def _load_then_follow(self, since: Any) -> None:
        try:
            batch: list[int] = []
            async for key in self._redis.scan_iter(match=self._prefix + "e:*", count=1000):
                batch.append(int(key.rsplit(b":", 1)[1]))
                if len(batch) >= _LOAD_BATCH:
                    await self._load(batch)
                    batch = []
                if self._stopping:
                    return
            await self._load(batch)
        except Exception:  # Redis unreachable at start: serve with what came, follow from now on
            logger.warning("semantic cache: loading entries from Redis failed; the index starts partial", exc_info=True)
        finally:
            self.loaded.set()
        await self._follow(since)

    async def aclose(self) -> None:
        """Stop following: the read in progress ends within its block time (cancelling a
        blocked read can hang redis-py's asyncio client, so it is not cancelled)."""
        if self._task is not None:
            self._stopping = True
            await self._task
            await self._follower.aclose()

    async def _load(self, ids: list[int]) -> None:
        """Read entries (one round trip for the lot) into the index; expired ones are skipped."""
        if not ids:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.hmget(self._key(entry_id), "p", "t", "v")
                pipe.pttl(self._key(entry_id))
            replies = await pipe.execute()
        now = self._clock()
        for entry_id, (partition, text, vector), ttl_ms in zip(ids, replies[::2], replies[1::2], strict=True):
            if partition is not None and ttl_ms is not None and ttl_ms > 0:
                self._index_add(SemanticEntry(entry_id, partition.decode(), text.decode(), np.frombuffer(vector, dtype=np.float32),
                                              now + ttl_ms / 1000))

    async def _follow(self, since: Any) -> None:
        while not self._stopping:
            try:
                batches = await self._follower.xread({self._stream: since}, block=_BLOCK_MS, count=500)
                for _, events in batches or []:
                    for event_id, fields in events:
                        since = event_id
                        entry_id = int(fields[b"id"])
                        if fields[b"op"] == b"a":
                            await self._load([entry_id])
                        else:
                            self._index_remove(entry_id)
            except Exception:  # Redis restarting: keep the index, read on from where we were
                logger.warning("semantic cache stream unreadable; retrying", exc_info=True)
                await asyncio.sleep(1.0)

    async def add(self, entry: SemanticEntry, answer: bytes) -> None:
        ttl_ms = max(1, int((entry.expires_at - self._clock()) * 1000))
        key = self._key(entry.id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"p": entry.partition, "t": entry.text, "v": entry.vector.astype(np.float32).tobytes(), "a": answer})
            pipe.pexpire(key, ttl_ms)
            pipe.zadd(self._order, {str(entry.id): entry.expires_at})
            pipe.xadd(self._stream, {"op": "a", "id": entry.id}, maxlen=_STREAM_LEN, approximate=True)
            pipe.zcard(self._order)
            *_, count = await pipe.execute()
        self._index_add(entry)
        if count > self._max:
            await self._remove([int(m) for m, _ in await self._redis.zpopmin(self._order, count - self._max)])

    async def _remove(self, ids: list[int]) -> None:
        if not ids:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.unlink(self._key(entry_id))
                pipe.zrem(self._order, str(entry_id))
                pipe.xadd(self._stream, {"op": "d", "id": entry_id}, maxlen=_STREAM_LEN, approximate=True)
            await pipe.execute()
        for entry_id in ids:
            self._index_remove(entry_id)

    async def answer(self, entry: SemanticEntry) -> bytes | None:
        return await self._redis.hget(self._key(entry.id), "a")

    async def purge(self, which: PurgeFilter) -> int:
        doomed = [e.id for e in self._entries.values() if which.matches(e.namespace)]
        await self._remove(doomed)
        return len(doomed)

    async def sweep_redis(self) -> None:
        """Forget expired members of the order set (their hashes expired on their own)."""
        await self._redis.zremrangebyscore(self._order, "-inf", self._clock())
