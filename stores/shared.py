"""The stores every subsystem of one process shares: the SQL database and the Redis pool.

The composition root opens them once from the ``stores`` section and hands them to each
subsystem with that subsystem's own config section; it closes them after the subsystems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stores.config import StoresConfig
from stores.redis import RedisPools
from stores.sql import Database

__all__ = ["SharedStores"]


@dataclass
class SharedStores:
    config: StoresConfig
    redis_pools: RedisPools = field(default_factory=RedisPools)
    _database: Database | None = None

    @property
    def redis(self) -> Any:
        """The Redis client of ``stores.redis_url``, or None without one."""
        return self.redis_pools.client(self.config.redis_url) if self.config.redis_url else None

    def database(self) -> Database:
        """The SQL database, opened and migrated on first use."""
        if self._database is None:
            self._database = Database.open(self.config)
        return self._database

    async def aclose(self) -> None:
        await self.redis_pools.aclose()
        if self._database is not None:
            self._database.dispose()
