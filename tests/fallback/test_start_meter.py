"""The sender's view of the queue in front of a local engine, and what the decision does with it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from contracts.engine_state import EngineState
from contracts.spill import SpillReason
from fallback.decision import DispatchRequest, HostedTarget, Route, decide, predict_ttft_s
from fallback.start_meter import StartMeter, metered
from tests.helpers import Clock


def test_starts_per_busy_second_ignores_idle_time() -> None:
    clock = Clock()
    meter = StartMeter(clock=clock)
    for _ in range(4):  # four requests, each waiting 0.25 s to start, 10 s apart
        meter.enter()
        clock.now += 0.25
        meter.leave(started=True)
        clock.now += 10
    assert meter.unstarted == 0 and meter.starts_per_busy_s() == pytest.approx(4.0, rel=0.05)


def test_a_stuck_queue_drives_the_rate_down() -> None:
    clock = Clock()
    meter = StartMeter(clock=clock, horizon_s=10)
    meter.enter()
    clock.now += 0.5
    meter.leave(started=True)
    before = meter.starts_per_busy_s()
    meter.enter()
    clock.now += 20  # nothing starts
    assert meter.starts_per_busy_s() < before / 10


async def test_metered_counts_until_the_first_item_or_the_end() -> None:
    meter = StartMeter()

    async def answers(n: int) -> AsyncIterator[int]:
        for i in range(n):
            assert meter.unstarted == (1 if i == 0 else 0)
            yield i

    assert [i async for i in metered(meter, answers(3))] == [0, 1, 2]
    assert [i async for i in metered(meter, answers(0))] == []
    assert meter.unstarted == 0 and meter.starts_per_busy_s() > 0


async def test_a_stream_counts_from_the_call_so_the_next_decision_sees_it() -> None:
    """Requests arriving together: the second decides before the first's stream is read."""
    meter = StartMeter()

    async def answers() -> AsyncIterator[int]:
        yield 0

    first = metered(meter, answers(), work_s=0.5)
    assert (meter.unstarted, meter.backlog_s()) == (1, pytest.approx(0.5, abs=0.01))
    second = metered(meter, answers(), work_s=0.5)
    assert meter.unstarted == 2
    assert [i async for i in first] == [0]
    await second.aclose()  # never read: closing it still takes it off the queue
    assert meter.unstarted == 0


def test_a_queue_the_engine_cannot_see_spills() -> None:
    route = Route("m", "m", ttft_target_s=1.0, hosted=(HostedTarget("api", "x"),))
    engine_sees_little = EngineState(model="m", replicas_ready=1, running=64, waiting=0, prefill_tokens_per_s=1000)
    request = DispatchRequest(prompt_tokens=100, max_tokens=16)
    assert decide(request, engine_sees_little, route).reason is SpillReason.LOCAL_OK
    queued = EngineState(**{**engine_sees_little.to_dict(), "local_unstarted": 30, "local_starts_per_s": 3.0})
    assert predict_ttft_s(request, queued, route) == pytest.approx(30 / 3 + 0.1)
    assert decide(request, queued, route).reason is SpillReason.PREDICTED_WAIT


def test_queued_prompt_work_outweighs_a_short_request_s_own_length() -> None:
    route = Route("m", "m", ttft_target_s=2.0, hosted=(HostedTarget("api", "x"),))
    short = DispatchRequest(prompt_tokens=200, max_tokens=16)
    one_long_ahead = EngineState(model="m", replicas_ready=1, running=0, waiting=1, prefill_tokens_per_s=2000, local_unstarted=1,
                                 local_backlog_s=6000 / 2000)
    assert predict_ttft_s(short, one_long_ahead, route) == pytest.approx((6000 + 200) / 2000)
    assert decide(short, one_long_ahead, route).reason is SpillReason.PREDICTED_WAIT


def test_the_work_ahead_is_worked_off_while_the_engine_runs() -> None:
    """A long prompt half done delays a short one by its remaining half, not the whole."""
    clock = Clock()
    meter = StartMeter(clock=clock)
    meter.enter(work_s=3.0)
    clock.now += 1.5
    assert meter.backlog_s() == pytest.approx(1.5)
    meter.enter(work_s=0.1)
    clock.now += 1.0
    assert meter.backlog_s() == pytest.approx(0.6)
    meter.leave(started=True)
    clock.now += 10.0
    assert meter.backlog_s() == 0.0, "never below nothing"
    meter.leave(started=True)
    meter.enter(work_s=0.2)
    assert meter.backlog_s() == pytest.approx(0.2), "an empty queue starts from nothing"


def test_the_oldest_wait_is_the_first_sent_still_waiting() -> None:
    clock = Clock()
    meter = StartMeter(clock=clock)
    assert meter.oldest_wait_s() == 0.0
    meter.enter(0.2)
    clock.now += 0.3
    meter.enter(0.2)
    clock.now += 0.1
    assert meter.oldest_wait_s() == pytest.approx(0.4)
    meter.leave(started=True)  # the engine starts them in the order sent
    assert meter.oldest_wait_s() == pytest.approx(0.1)
    meter.leave(started=True)
    assert meter.oldest_wait_s() == 0.0


def test_keeping_a_request_that_would_make_an_older_one_miss_spills_it() -> None:
    """Live, four prompts sent within 0.1 s got their first tokens together at 1.56 s: one step
    prefilled them all. A request whose own prediction fits, but whose step would end past the
    target for the one waiting longest, goes hosted."""
    route = Route("m", "m", ttft_target_s=1.0, hosted=(HostedTarget("openai", "x"),))
    request = DispatchRequest(prompt_tokens=300, max_tokens=16)
    alone = EngineState(model="m", replicas_ready=1, prefill_tokens_per_s=1000, local_unstarted=1, local_backlog_s=0.3)
    assert predict_ttft_s(request, alone, route) == pytest.approx(0.6)
    assert decide(request, alone, route).reason is SpillReason.LOCAL_OK
    older = EngineState(model="m", replicas_ready=1, prefill_tokens_per_s=1000, local_unstarted=1, local_backlog_s=0.3, local_oldest_wait_s=0.5)
    decision = decide(request, older, route)
    assert (decision.destination, decision.reason) == ("openai", SpillReason.PREDICTED_WAIT)
    assert decision.predicted_ttft_s == pytest.approx(0.6)  # its own prediction, still the one logged
