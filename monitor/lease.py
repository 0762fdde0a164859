"""A named lease in the ledger's database: one holder at a time, lapsing if the holder dies.

The alert evaluator must run once however many ingress replicas serve (N replicas evaluating
would send each alert N times). Each replica tries to take or renew the lease every pass; the
update only succeeds where the lease is free, lapsed, or already this holder's, so exactly one
wins. A holder that dies stops renewing and another takes over within ``ttl_s``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import sqlalchemy as sa

from stores.sql_schema import leases_table as leases

__all__ = ["Lease"]


class Lease:
    def __init__(self, engine: sa.Engine, name: str, holder: str, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self._engine, self.name, self.holder, self._ttl_s, self._clock = engine, name, holder, ttl_s, clock

    def acquire(self) -> bool:
        """Take or renew the lease; whether this holder has it now."""
        now = self._clock()
        with self._engine.begin() as connection:
            renewed = connection.execute(
                leases.update()
                .where(leases.c.name == self.name, sa.or_(leases.c.holder == self.holder, leases.c.until < now))
                .values(holder=self.holder, until=now + self._ttl_s)
            ).rowcount
            if renewed:
                return True
            if connection.execute(sa.select(leases.c.name).where(leases.c.name == self.name)).first() is not None:
                return False
        try:
            with self._engine.begin() as connection:
                connection.execute(leases.insert().values(name=self.name, holder=self.holder, until=now + self._ttl_s))
            return True
        except sa.exc.IntegrityError:  # another replica inserted it first
            return False

    def release(self) -> None:
        with self._engine.begin() as connection:
            connection.execute(leases.delete().where(leases.c.name == self.name, leases.c.holder == self.holder))
