"""The one periodic helper survives a failing round; the one shutdown leaves no task behind."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from contracts.background import periodically, run_every, stop_tasks


async def test_a_failing_round_is_logged_and_the_next_round_comes(caplog: pytest.LogCaptureFixture) -> None:
    rounds: list[int] = []

    async def work() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 2:
            raise RuntimeError("one bad round")

    task = run_every(0.01, work, logger=logging.getLogger("test.background"), what="probe work", first_at_once=True)
    while len(rounds) < 4:
        await asyncio.sleep(0.01)
    await stop_tasks(task, None)
    assert task.done() and task.cancelled()
    assert [r.message for r in caplog.records] == ["probe work failed; trying again in 0.0 s"]


async def test_upkeep_pauses_a_whole_period_after_each_round_and_a_tick_keeps_its_rate() -> None:
    async def starts(start_to_start: bool) -> list[float]:
        seen: list[float] = []

        async def slow() -> None:
            seen.append(time.monotonic())
            await asyncio.sleep(0.05)

        task = asyncio.create_task(periodically(0.05, slow, logger=logging.getLogger("test.background"), what="slow",
                                                first_at_once=True, start_to_start=start_to_start))
        while len(seen) < 4:
            await asyncio.sleep(0.005)
        await stop_tasks(task)
        return [b - a for a, b in zip(seen, seen[1:])]

    assert min(await starts(False)) >= 0.1, "work, then a whole period of pause"
    assert max(await starts(True)) < 0.09, "one round every period"
