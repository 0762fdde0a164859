"""The one periodic helper survives a failing round; the one shutdown leaves no task behind."""

from __future__ import annotations

import asyncio
import logging

import pytest

from contracts.background import run_every, stop_tasks


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
