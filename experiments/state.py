"""Which experiments split traffic now: the config's ``running`` until the admin API says
otherwise, shared by every ingress replica through the database.

Why polled: a stop must reach every replica, and the database is the one thing they share that
outlives them; a replica reads the table every few seconds (a request never waits on it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping

import sqlalchemy as sa

from contracts.background import run_every, stop_tasks
from stores.sql_schema import experiments_table as t

__all__ = ["ExperimentSwitches"]

logger = logging.getLogger(__name__)


class ExperimentSwitches:
    def __init__(self, engine: sa.Engine, configured: Mapping[str, bool], *, refresh_s: float = 5.0) -> None:
        self._engine = engine
        self._configured = dict(configured)
        self._running = dict(configured)
        self._refresh_s = refresh_s
        self._task: asyncio.Task[None] | None = None

    def running(self, name: str) -> bool:
        return self._running.get(name, False)

    def states(self) -> dict[str, bool]:
        return dict(self._running)

    def load(self) -> None:
        with self._engine.connect() as connection:
            stored = {r.name: bool(r.running) for r in connection.execute(sa.select(t.c.name, t.c.running))}
        self._running = {name: stored.get(name, default) for name, default in self._configured.items()}

    def set(self, name: str, running: bool) -> None:
        """Start or stop ``name`` for every replica (this one at once, others within refresh_s)."""
        if name not in self._configured:
            raise KeyError(name)
        now = dt.datetime.now(dt.UTC)
        with self._engine.begin() as connection:
            updated = connection.execute(sa.update(t).where(t.c.name == name).values(running=running, changed_at=now)).rowcount
            if not updated:
                connection.execute(sa.insert(t).values(name=name, running=running, changed_at=now))
        self._running[name] = running

    def start(self) -> None:
        if self._configured:
            self._task = run_every(self._refresh_s, lambda: asyncio.to_thread(self.load), logger=logger,
                                   what="experiment switches reload", first_at_once=True)

    async def aclose(self) -> None:
        await stop_tasks(self._task)
