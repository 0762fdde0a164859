"""The ledger's writer: every finished request's row, durable before its last byte.

The pipeline runs sinks before it releases a response's last packet (contracts.pipeline), and
:meth:`LedgerRecorder.append` returns only once the row is fsync'd in the spool; the mover
carries rows on to the database in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from contracts.background import stop_tasks
from contracts.ledger_row import LedgerRow
from contracts.stores import LedgerStore
from costbook.spool import LedgerMover, Spool

__all__ = ["LedgerRecorder"]


class LedgerRecorder:
    def __init__(self, store: LedgerStore, spool_base: Path, *, move_period_s: float = 0.5) -> None:
        self.spool = Spool(spool_base)
        self.mover = LedgerMover(self.spool, store.insert, period_s=move_period_s)
        self._task: asyncio.Task[None] | None = None

    async def append(self, row: LedgerRow) -> None:
        await self.spool.append(row)

    def start(self) -> None:
        self._task = self.mover.start()

    async def aclose(self) -> None:
        """Stop moving, move what is spooled (the database may be down: then it stays on disk)."""
        await stop_tasks(self._task)
        with contextlib.suppress(Exception):
            await self.mover.move_once()
        self.spool.close()
