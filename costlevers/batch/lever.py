"""The batch API as the ingress runs it: the store over the shared database, the files directory,
the HTTP router and the worker, started and stopped with the app.

The composition root hands over what a lever may not import: how one line runs through the
pipeline, when a model has headroom, and who a caller is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection

from fastapi import APIRouter

from contracts.background import stop_tasks
from costlevers.batch.api import Identify, batch_router
from costlevers.batch.budget import BudgetHold
from costlevers.batch.config import BatchConfig
from costlevers.batch.files import FileBytes
from costlevers.batch.store import BatchStore
from costlevers.batch.worker import BatchWorker, HandOff, Headroom, RunLine
from stores.sql import Database

__all__ = ["BatchLever"]


class BatchLever:
    def __init__(self, config: BatchConfig, database: Database, *, run_line: RunLine, headroom: Headroom, identify: Identify,
                 models: Callable[[], Collection[str]], hand_off: HandOff | None = None, budget: BudgetHold | None = None) -> None:
        self.config = config
        self.store = BatchStore(database)
        self.files = FileBytes(config.files_dir)
        self.worker = BatchWorker(self.store, self.files, config, run_line=run_line, headroom=headroom, hand_off=hand_off, budget=budget)
        self.router: APIRouter = batch_router(self.store, self.files, config, identify=identify, models=models, budget=budget)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.worker.run_forever())

    async def aclose(self) -> None:
        await stop_tasks(self._task)
        await self.worker.aclose()
