"""The ordered stages every request passes through, and the settle step that always runs.

Each stage is a small object with one method, ``process(ctx)``; it reads and fills the
:class:`~contracts.context.RequestContext` and may answer on its own by setting
``ctx.outcome`` (a cache hit), which ends the walk. A stage that holds something for the
request (a budget reservation, a cache slot) also implements ``settle(ctx)``.

A stage that must see the stream the client gets (the cache keeps a whole answer) wraps it in
:meth:`Stage.observe`; a stage that needs to send a request on from a later stage (the cache's
shadow check asks the model past the cache) keeps the pipeline it is handed in
:meth:`Stage.attach` and calls :meth:`Pipeline.run` with ``after``.

Settle runs exactly once per request, in reverse stage order, however the request ends:
success, error, client disconnect, or a stream cut mid-way; for streams it runs when the
stream ends, before its last packet is released, not when the handler returns. Sinks
(metrics, logs, the ledger) then see the finished context.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import ClassVar

from contracts.context import SSE_DONE, Outcome, RequestContext, Status
from contracts.errors import SpilloverError, UpstreamError

__all__ = ["Pipeline", "Sink", "Stage", "Starter"]

logger = logging.getLogger(__name__)

Sink = Callable[[RequestContext], Awaitable[None] | None]
#: Told when a request enters the pipeline (the in-flight gauge); a sink sees it leave.
Starter = Callable[[RequestContext], None]


class Stage(abc.ABC):
    name: ClassVar[str]

    @abc.abstractmethod
    async def process(self, ctx: RequestContext) -> None:
        """Do this stage's part; set ``ctx.outcome`` to answer without later stages."""

    async def settle(self, ctx: RequestContext) -> None:  # noqa: B027  # optional hook
        """Release or record what ``process`` took; runs once however the request ended."""

    def observe(self, ctx: RequestContext, stream: AsyncIterator[str]) -> AsyncIterator[str]:
        """The client's stream as this stage wants it passed on (by default, untouched); runs for
        every stage the request entered once the outcome is a stream."""
        return stream

    def attach(self, pipeline: Pipeline) -> None:  # noqa: B027  # optional hook
        """Told the pipeline this stage runs in (once, when the pipeline is built)."""


class Pipeline:
    def __init__(self, stages: Sequence[Stage], sinks: Sequence[Sink] = (), starters: Sequence[Starter] = ()) -> None:
        self.stages = tuple(stages)
        self.sinks = tuple(sinks)
        self.starters = tuple(starters)
        for stage in self.stages:
            stage.attach(self)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.stages)

    async def run(self, ctx: RequestContext, *, after: str | None = None, record: bool = True) -> Outcome:
        """Walk the stages (those after the one named ``after``, if given); return the outcome
        with settle wired to its end. ``record=False`` leaves the sinks out: a stage that runs a
        tentative attempt (the cascade's cheap call) records it itself (:meth:`record`) only if
        it is abandoned, since an accepted one becomes the request's own row."""
        stages = self.stages if after is None else self.stages[self.names.index(after) + 1:]
        sinks = self.sinks if record else ()
        if record:
            for starter in self.starters:
                starter(ctx)
        entered: list[Stage] = []
        try:
            for stage in stages:
                entered.append(stage)
                await stage.process(ctx)
                if ctx.outcome is not None:
                    break
            if ctx.outcome is None:
                raise UpstreamError("No stage produced a response.")
        except BaseException as exc:
            _record_failure(ctx, exc)
            await self._settle(ctx, entered, sinks)
            raise
        outcome = ctx.outcome
        if outcome.stream is None:
            ctx.status = Status.OK
            await self._settle(ctx, entered, sinks)
            return outcome
        stream = outcome.stream
        for stage in reversed(entered):
            stream = stage.observe(ctx, stream)
        outcome.stream = self._settle_after(ctx, entered, stream, sinks)
        return outcome

    async def record(self, ctx: RequestContext) -> None:
        """Run the sinks on a finished context the walk did not record (``run(record=False)``);
        the starters first, so what they count in (the in-flight gauge) the sinks count out."""
        for starter in self.starters:
            starter(ctx)
        await self._sink(ctx, self.sinks)

    async def _settle_after(
        self, ctx: RequestContext, entered: list[Stage], stream: AsyncIterator[str], sinks: Sequence[Sink]
    ) -> AsyncIterator[str]:
        """``stream`` as it comes, except its ``[DONE]`` terminator, which leaves after settle:
        a client that has the whole response has its ledger row on disk."""
        done = False
        try:
            async for packet in stream:
                if packet.endswith(SSE_DONE):
                    packet, done = packet[: -len(SSE_DONE)], True
                if packet:
                    yield packet
                    ctx.chunks_sent += 1
            if ctx.status is Status.PENDING:
                ctx.status = Status.OK
        except BaseException as exc:
            _record_failure(ctx, exc)
            # Shielded: a client disconnect cancels this generator, and settle must still run.
            await asyncio.shield(self._settle(ctx, entered, sinks))
            raise
        await asyncio.shield(self._settle(ctx, entered, sinks))
        if done:
            yield SSE_DONE

    async def _settle(self, ctx: RequestContext, entered: list[Stage], sinks: Sequence[Sink]) -> None:
        ctx.timings.finished = time.perf_counter()
        for stage in reversed(entered):
            try:
                await stage.settle(ctx)
            except Exception:
                logger.exception("settle failed in stage %s", stage.name, extra={"request_id": ctx.request_id})
        await self._sink(ctx, sinks)

    @staticmethod
    async def _sink(ctx: RequestContext, sinks: Sequence[Sink]) -> None:
        for sink in sinks:
            try:
                result = sink(ctx)
                if result is not None:
                    await result
            except Exception:
                logger.exception("sink %r failed", sink, extra={"request_id": ctx.request_id})


def _record_failure(ctx: RequestContext, exc: BaseException) -> None:
    if ctx.status is not Status.PENDING:
        return
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        ctx.status = Status.CANCELLED
    elif ctx.chunks_sent > 0:
        ctx.status = Status.CUT
    else:
        ctx.status = Status.ERROR
    ctx.error = exc if isinstance(exc, Exception) else None
    if isinstance(exc, Exception) and not isinstance(exc, SpilloverError):
        logger.error("request failed: %s", type(exc).__name__, extra={"request_id": ctx.request_id})
