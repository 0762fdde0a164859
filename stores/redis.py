"""How spillover reaches Redis: one blocking connection pool per URL, shared by every subsystem
of the process (rate limits, budgets, the caches), so a burst of requests waits briefly for a
connection instead of failing (redis-py's default pool raises past 100)."""

from __future__ import annotations

import redis.asyncio as redis

__all__ = ["RedisPools"]

#: Connections one ingress replica may hold; every request needs at most one at a time.
MAX_CONNECTIONS = 128
#: How long a request waits for a free connection before the store counts as unavailable.
WAIT_S = 5.0


def _client(url: str, max_connections: int) -> redis.Redis:
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=WAIT_S)
    return redis.Redis(connection_pool=pool)


class RedisPools:
    """The process's Redis clients, one per URL; closed together at shutdown."""

    def __init__(self, max_connections: int = MAX_CONNECTIONS) -> None:
        self._max_connections = max_connections
        self._clients: dict[str, redis.Redis] = {}

    def client(self, url: str) -> redis.Redis:
        if url not in self._clients:
            self._clients[url] = _client(url, self._max_connections)
        return self._clients[url]

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
