"""How the ingress reaches Redis: one blocking connection pool per client, so a burst of requests
waits briefly for a connection instead of failing (redis-py's default pool raises past 100)."""

from __future__ import annotations

import redis.asyncio as redis

__all__ = ["redis_client"]

#: Connections one ingress replica may hold; every request needs at most one at a time.
MAX_CONNECTIONS = 128
#: How long a request waits for a free connection before the store counts as unavailable.
WAIT_S = 5.0


def redis_client(url: str, max_connections: int = MAX_CONNECTIONS) -> redis.Redis:
    pool = redis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=WAIT_S)
    return redis.Redis(connection_pool=pool)
