"""Counters that admit a request only if every limit it touches still has room, atomically.

One admission touches several counters: the key's requests and tokens this minute, and the
money spent this UTC day and month by the key, the user and the team. Checking them one by one
lets a hundred concurrent requests all see room that only ten of them fit (LiteLLM's budgets
are bypassed exactly so). Here a single step checks every counter and, only if all have room,
adds to all: a Lua script in Redis (atomic across ingress replicas), a lock in process without
Redis. Settling a request later adds the difference between its real and reserved amounts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

from redis.exceptions import RedisError

from contracts.errors import StoreUnavailableError
from contracts.stores import Charge

__all__ = ["MemoryCounters", "RedisCounters"]


class MemoryCounters:
    """One process's counters: exact under one ingress, not shared between replicas."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[int, float]] = {}
        self._clock = clock

    async def admit(self, charges: Sequence[Charge]) -> int | None:
        now = self._clock()
        with self._lock:
            self._expire(now)
            for i, c in enumerate(charges):
                if c.limit is not None and self._values.get(c.key, (0, 0.0))[0] + c.amount > c.limit:
                    return i
            for c in charges:
                value, _ = self._values.get(c.key, (0, 0.0))
                self._values[c.key] = (value + c.amount, now + c.ttl_s)
        return None

    async def add(self, deltas: Mapping[str, int]) -> dict[str, int]:
        with self._lock:
            for key, delta in deltas.items():
                value, expires = self._values.get(key, (0, self._clock() + 60))
                self._values[key] = (value + delta, expires)
            return {key: self._values[key][0] for key in deltas}

    async def values(self, keys: Sequence[str]) -> list[int]:
        with self._lock:
            return [self._values.get(k, (0, 0.0))[0] for k in keys]

    def _expire(self, now: float) -> None:
        for key in [k for k, (_, expires) in self._values.items() if expires < now]:
            del self._values[key]


# KEYS: the counters. ARGV: per counter, its amount, its limit (-1: none) and its TTL.
_ADMIT = """
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[3 * i - 1])
  if limit >= 0 and tonumber(redis.call('GET', key) or '0') + tonumber(ARGV[3 * i - 2]) > limit then
    return i
  end
end
for i, key in ipairs(KEYS) do
  redis.call('INCRBY', key, ARGV[3 * i - 2])
  redis.call('EXPIRE', key, ARGV[3 * i])
end
return 0
"""


#: Longest a period's counter is kept (a month and its grace day).
_LATE_TTL_S = 32 * 86_400


class RedisCounters:
    """CounterStore shared by every ingress replica, under ``prefix`` in Redis."""

    def __init__(self, client: object, prefix: str = "spillover:") -> None:
        self._redis = client
        self._prefix = prefix
        self._admit = client.register_script(_ADMIT)  # type: ignore[attr-defined]

    async def admit(self, charges: Sequence[Charge]) -> int | None:
        args: list[int] = []
        for c in charges:
            args += [c.amount, -1 if c.limit is None else c.limit, c.ttl_s]
        try:
            failed = await self._admit(keys=[self._prefix + c.key for c in charges], args=args)
        except RedisError as exc:
            raise StoreUnavailableError("Rate limits and budgets cannot be checked right now; retry shortly.", retry_after_s=1.0) from exc
        return None if failed == 0 else int(failed) - 1

    async def add(self, deltas: Mapping[str, int]) -> dict[str, int]:
        if not deltas:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:  # type: ignore[attr-defined]
            for key, delta in deltas.items():
                pipe.incrby(self._prefix + key, delta)
                # A late settle must not revive an expired counter forever.
                pipe.expire(self._prefix + key, _LATE_TTL_S, nx=True)
            replies = await pipe.execute()
        return {key: int(value) for key, value in zip(deltas, replies[::2], strict=True)}

    async def values(self, keys: Sequence[str]) -> list[int]:
        raw = await self._redis.mget([self._prefix + k for k in keys])  # type: ignore[attr-defined]
        return [int(v or 0) for v in raw]
