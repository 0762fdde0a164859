"""Background work an ingress or a loop runs beside requests: one periodic helper, one shutdown.

Every periodic job (reloading keys, moving ledger rows, pricing local work, sweeping the
semantic index, posting engine state) has the same shape: wait, work, and on a failure log it
and carry on, because one bad round must never end the job. :func:`run_every` is that shape;
:func:`stop_tasks` cancels tasks and waits for them to finish, so shutdown leaves none behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

__all__ = ["periodically", "run_every", "stop_tasks"]


async def periodically(period_s: float, work: Callable[[], Awaitable[object]], *, logger: logging.Logger, what: str,
                       first_at_once: bool = False, start_to_start: bool = False) -> None:
    """Run ``work`` until cancelled, ``period_s`` apart: a pause of ``period_s`` after each round
    (background upkeep yields the event loop that long however slow a round was), or with
    ``start_to_start``, one round every ``period_s`` (a control loop's tick). A failure is logged
    as ``what failed`` and the next round still comes."""
    if not first_at_once:
        await asyncio.sleep(period_s)
    while True:
        started = time.monotonic()
        try:
            await work()
        except Exception:
            logger.warning("%s failed; trying again in %.1f s", what, period_s, exc_info=True)
        await asyncio.sleep(max(0.0, period_s - (time.monotonic() - started)) if start_to_start else period_s)


def run_every(period_s: float, work: Callable[[], Awaitable[object]], *, logger: logging.Logger, what: str,
              first_at_once: bool = False) -> asyncio.Task[None]:
    """:func:`periodically` (a pause of ``period_s`` after each round) as a task named after ``what``."""
    return asyncio.create_task(periodically(period_s, work, logger=logger, what=what, first_at_once=first_at_once), name=what)


async def stop_tasks(*tasks: asyncio.Task[object] | None) -> None:
    """Cancel every task given (None is skipped) and wait until each has ended."""
    live = [t for t in tasks if t is not None]
    for task in live:
        task.cancel()
    for task in live:
        with contextlib.suppress(asyncio.CancelledError):
            await task
