"""Failover logic on scripted targets (the e2e tests run it against real servers and faults)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from contracts.errors import (
    CapacityError,
    InvalidRequestError,
    LocalEngineFailedError,
    RateLimitError,
    UpstreamError,
    UpstreamRateLimitError,
    UpstreamUnavailableError,
)
from fallback.breaker import CircuitBreaker
from fallback.failover import Failover, Target


def scripted(name: str, outcomes: list[Any], calls: list[str]) -> Target:
    """Each open() pops the next outcome: an exception to raise before the first item, or items."""

    def open_() -> AsyncIterator[Any]:
        calls.append(name)
        outcome = outcomes.pop(0)

        async def gen() -> AsyncIterator[Any]:
            if isinstance(outcome, Exception):
                raise outcome
            for item in outcome:
                yield item

        return gen()

    return Target(name, open_)


async def test_first_failure_fails_over_to_the_next_target() -> None:
    calls: list[str] = []
    breakers = {"a": CircuitBreaker(), "b": CircuitBreaker()}
    failover = Failover(breakers, attempts_per_target=1)
    started = await failover.start(
        [scripted("a", [UpstreamUnavailableError("down")], calls), scripted("b", [[{"ok": 1}, {"more": 2}]], calls)], "r"
    )
    assert started.target == "b" and started.failures == 1 and calls == ["a", "b"]
    assert [i async for i in started.items()] == [{"ok": 1}, {"more": 2}]


async def test_retry_after_is_honoured_on_the_same_target() -> None:
    calls: list[str] = []
    failover = Failover({}, attempts_per_target=2, deadline_s=5)
    started = await failover.start(
        [scripted("a", [UpstreamRateLimitError("slow down", retry_after_s=0.01), [{"ok": 1}]], calls)], "r"
    )
    assert started.target == "a" and calls == ["a", "a"]


async def test_a_retry_after_past_the_deadline_moves_on_at_once() -> None:
    calls: list[str] = []
    failover = Failover({}, attempts_per_target=3, deadline_s=1)
    started = await failover.start(
        [scripted("a", [UpstreamRateLimitError("later", retry_after_s=60)], calls), scripted("b", [[{"ok": 1}]], calls)], "r"
    )
    assert started.target == "b" and calls == ["a", "b"]


async def test_client_errors_are_answers_not_failures() -> None:
    calls: list[str] = []
    breaker = CircuitBreaker(consecutive_failures=1)
    failover = Failover({"a": breaker})
    with pytest.raises(InvalidRequestError):
        await failover.start([scripted("a", [InvalidRequestError("bad")], calls), scripted("b", [[{}]], calls)], "r")
    assert calls == ["a"] and breaker.allow()


async def test_exhaustion_is_429_after_rate_limits_and_503_otherwise() -> None:
    calls: list[str] = []
    with pytest.raises(RateLimitError) as limited:
        await Failover({}, attempts_per_target=1).start([scripted("a", [UpstreamRateLimitError("x", retry_after_s=7)], calls)], "r")
    assert limited.value.status_code == 429 and limited.value.headers() == {"Retry-After": "7"}
    with pytest.raises(CapacityError) as down:
        await Failover({}, attempts_per_target=1).start([scripted("a", [UpstreamError("auth")], calls)], "r")
    assert down.value.status_code == 503 and "Retry-After" in down.value.headers()


async def test_an_open_breaker_skips_its_target() -> None:
    calls: list[str] = []
    breaker = CircuitBreaker(consecutive_failures=1, cooldown_s=60)
    breaker.record(False)
    started = await Failover({"a": breaker}).start([scripted("a", [[{"never": 1}]], calls), scripted("b", [[{"ok": 1}]], calls)], "r")
    assert started.target == "b" and calls == ["b"]


async def test_a_silent_local_target_times_out_once_and_fails_over() -> None:
    """A request Serve holds for a replica that is not coming is moved on, and the hold released."""
    released: list[str] = []

    async def never_starts() -> AsyncIterator[Any]:
        try:
            await asyncio.sleep(60)
            yield {"late": 1}
        finally:
            released.append("local")

    calls: list[str] = []
    silent = Target("local", lambda: (calls.append("local"), never_starts())[1], start_timeout_s=0.05)
    started = await Failover({}, attempts_per_target=2).start([silent, scripted("b", [[{"ok": 1}]], calls)], "r")
    assert started.target == "b" and calls == ["local", "b"], "a start timeout is not retried on the same target"
    assert released == ["local"]


async def test_a_dead_local_replica_moves_on_without_retrying_locally() -> None:
    calls: list[str] = []
    started = await Failover({}, attempts_per_target=2).start(
        [scripted("local", [LocalEngineFailedError("replica died")], calls), scripted("b", [[{"ok": 1}]], calls)], "r"
    )
    assert started.target == "b" and calls == ["local", "b"]


async def test_a_rate_limit_moves_on_to_the_next_target_without_waiting() -> None:
    calls: list[str] = []
    failover = Failover({"a": CircuitBreaker(), "b": CircuitBreaker()}, attempts_per_target=3, deadline_s=30)
    begun = asyncio.get_running_loop().time()
    started = await failover.start(
        [scripted("a", [UpstreamRateLimitError("full", retry_after_s=5)], calls), scripted("b", [[{"ok": 1}]], calls)], "r"
    )
    assert started.target == "b" and calls == ["a", "b"]
    assert asyncio.get_running_loop().time() - begun < 1


async def test_the_last_available_target_still_honours_retry_after() -> None:
    calls: list[str] = []
    opened = CircuitBreaker(consecutive_failures=1)
    opened.record(False)
    failover = Failover({"a": CircuitBreaker(), "b": opened}, attempts_per_target=2, deadline_s=5)
    started = await failover.start(
        [scripted("a", [UpstreamRateLimitError("full", retry_after_s=0.01), [{"ok": 1}]], calls), scripted("b", [], calls)], "r"
    )
    assert started.target == "a" and calls == ["a", "a"]
