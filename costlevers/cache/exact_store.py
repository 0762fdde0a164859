"""Where exact entries live: Redis when configured (shared by every ingress replica, TTL per
entry), else an in-process LRU bounded in entries.

Keys are ``namespace:digest`` (costlevers.cache.request_key); a purge matches namespace parts.
A write replaces the whole value in one command, so two identical requests finishing together
leave one of their (equivalent) answers, never a mix.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from contracts.stores import PurgeFilter

__all__ = ["MemoryExactStore", "RedisExactStore"]


class MemoryExactStore:
    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._max = max_entries
        self._clock = clock

    async def get(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if found[1] <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return found[0]

    async def put(self, key: str, value: bytes, ttl_s: int) -> None:
        self._entries[key] = (value, self._clock() + ttl_s)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def purge(self, which: PurgeFilter) -> int:
        doomed = [k for k in self._entries if which.matches(k)]
        for key in doomed:
            del self._entries[key]
        return len(doomed)


class RedisExactStore:
    def __init__(self, client: object, prefix: str = "spillover:cache:x:") -> None:
        self._redis = client
        self._prefix = prefix

    async def get(self, key: str) -> bytes | None:
        return await self._redis.get(self._prefix + key)  # type: ignore[attr-defined]

    async def put(self, key: str, value: bytes, ttl_s: int) -> None:
        await self._redis.set(self._prefix + key, value, ex=ttl_s)  # type: ignore[attr-defined]

    async def purge(self, which: PurgeFilter) -> int:
        removed = 0
        batch: list[bytes] = []
        async for key in self._redis.scan_iter(match=self._prefix + which.glob(), count=1000):  # type: ignore[attr-defined]
            batch.append(key)
            if len(batch) >= 1000:
                removed += await self._redis.unlink(*batch)  # type: ignore[attr-defined]
                batch = []
        if batch:
            removed += await self._redis.unlink(*batch)  # type: ignore[attr-defined]
        return removed
