"""Stream batching that never holds back the first token.

Ray Serve LLM batches a stream's chunks on a fixed clock started with the request (50 ms by
default), so a first token the engine produced 1 ms after a tick waits 49 ms for the next one:
time to first token comes out quantised to the interval, and which step a request lands on is
luck. The first chunk is the one a user waits for; later chunks are the ones worth batching
(fewer, larger messages between actors). :class:`FirstChunkFirstBatcher` sends whatever has
arrived the moment the first chunk does, then batches the rest on Ray's clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Generic, TypeVar

from ray.llm._internal.serve.utils.batcher import Batcher

__all__ = ["FirstChunkFirstBatcher"]

T = TypeVar("T")


class FirstChunkFirstBatcher(Batcher[T], Generic[T]):
    """Ray's ``Batcher`` with one change: the first batch is yielded as soon as it exists."""

    def __init__(self, generator: AsyncGenerator[T, None], interval_ms: float | None) -> None:
        # Created before the base class starts the read task that sets it.
        self._first_arrived = asyncio.Event()
        super().__init__(generator, interval_ms=interval_ms)

    async def read(self) -> None:
        try:
            async for item in self.generator:
                self.queue.put_nowait(item)
                self._first_arrived.set()
        finally:
            self._first_arrived.set()
            self.done_event.set()

    async def stream(self) -> AsyncGenerator[list[T], None]:
        if not self.interval_s:  # 0: unbatched; None: one batch at the end. Nothing to hurry.
            async for batch in super().stream():
                yield batch
            return
        try:
            await self._first_arrived.wait()
        except BaseException:
            self.read_task.cancel()  # a cancelled request must stop the engine work
            raise
        first = self.drain_queue()
        if first:
            yield first
        async for batch in super().stream():
            yield batch
