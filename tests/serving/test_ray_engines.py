"""The Ray adapter's one job besides calling Serve: an engine's error items become the one error
tree, so failover and respond see what they see from a hosted provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from contracts.errors import InvalidRequestError, NotFoundError, RateLimitError, UpstreamError
from fallback.breaker import CircuitBreaker
from fallback.failover import Failover, Target
from serving.ray_engines import engine_error, raise_error_items


def engine(name: str, items: list[Any]) -> Target:
    async def replay() -> AsyncIterator[Any]:
        for item in items:
            yield item

    return Target(name, lambda: raise_error_items(replay()))


@pytest.mark.parametrize(("item", "kind", "code"), [
    ({"status": 400, "error": {"message": "bad"}}, InvalidRequestError, None),
    ({"status": 400, "error": {"message": "This model's maximum context length is 2048 tokens."}}, InvalidRequestError,
     "context_length_exceeded"),
    ({"status": 404, "error": {"message": "no such model"}}, NotFoundError, None),
    ({"status": 429, "error": {"message": "busy"}}, RateLimitError, "rate_limit_exceeded"),
    ({"error": {"message": "boom", "code": 500}}, UpstreamError, "upstream_error"),
])
def test_each_engine_error_item_maps_to_its_error(item: dict[str, Any], kind: type, code: str | None) -> None:
    error = engine_error(item)
    assert type(error) is kind and error.code == code


async def test_an_engine_5xx_item_fails_over_and_a_4xx_item_is_the_answer() -> None:
    started = await Failover({}, attempts_per_target=1).start(
        [engine("local", [{"status": 500, "error": {"message": "boom"}}]), engine("b", [{"ok": 1}])], "r")
    assert started.target == "b"
    breaker = CircuitBreaker(consecutive_failures=1)
    with pytest.raises(InvalidRequestError):
        await Failover({"local": breaker}).start([engine("local", [{"status": 400, "error": {"message": "too long"}}]),
                                                  engine("b", [{"ok": 1}])], "r")
    assert breaker.allow(), "a refusal the engine owns is no failure"


async def test_an_error_item_mid_stream_is_raised_after_the_batches_before_it() -> None:
    seen = []
    with pytest.raises(UpstreamError):
        async for batch in raise_error_items(_items([["data: {}\n\n"], {"status": 503, "error": {"message": "died"}}])):
            seen.append(batch)
    assert seen == [["data: {}\n\n"]]


async def _items(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item
