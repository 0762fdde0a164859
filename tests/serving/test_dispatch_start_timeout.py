"""The local start timeout bounds a stream's first chunk, never a non-stream answer.

A non-stream answer is its own first item: bounding it would cut every answer longer than the
timeout and pay for it twice (the local work, then the hosted call).
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from contracts.context import Api, RequestContext
from contracts.engine_state import EngineState
from contracts.errors import SpilloverError
from contracts.spill import SpillReason
from fallback.breaker import CircuitBreaker
from fallback.decision import HostedTarget, Route
from fallback.providers.config import ProviderConfig
from fallback.providers.openai_compatible import OpenAICompatibleProvider
from serving.stages.dispatch import Dispatch
from serving.wire import ChatCompletionBody, request_facts
from tests.serving.scripted_engines import ScriptedEngines, chunk, completion
from webio.bodies import parse_body

TIMEOUT_S = 0.2


def _closed_port() -> int:
    """A loopback port nothing listens on: the hosted target refuses at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dispatch(engines: ScriptedEngines, *, default_timeout_s: float = TIMEOUT_S, route_timeout_s: float | None = None) -> Dispatch:
    provider = OpenAICompatibleProvider(ProviderConfig(name="h", base_url=f"http://127.0.0.1:{_closed_port()}/v1"))
    route = Route(name="m", local_model="m", ttft_target_s=60.0, hosted=(HostedTarget(provider="h", model="m"),),
                  local_start_timeout_s=route_timeout_s)
    return Dispatch(engines, {"m": route}, providers={"h": provider}, breakers={"h": CircuitBreaker()},
                    local_start_timeout_s=default_timeout_s)


def _context(stream: bool) -> RequestContext:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": stream}
    return RequestContext(request_id="r", api=Api.CHAT, model="m", body=body, stream=stream, headers={}, route="m",
                          facts=request_facts(parse_body(ChatCompletionBody, body), body, 16))


async def _items(ctx: RequestContext) -> list:
    assert ctx.upstream is not None
    return [item async for item in ctx.upstream]


def test_a_non_stream_answer_slower_than_the_start_timeout_stays_local() -> None:
    engines = ScriptedEngines()
    engines.script, engines.delay_s = [completion("slow but whole")], TIMEOUT_S * 3
    ctx = _context(stream=False)
    asyncio.run(_dispatch(engines).process(ctx))
    assert ctx.destination == "local"
    assert asyncio.run(_items(ctx)) == [completion("slow but whole")]


def test_a_stream_with_no_first_chunk_in_time_leaves_the_local_engine() -> None:
    engines = ScriptedEngines()
    engines.script, engines.delay_s = [[chunk("late", role="assistant")]], TIMEOUT_S * 3

    async def run() -> None:
        with pytest.raises(SpilloverError):  # the hosted target refuses too: nowhere left
            await _dispatch(engines).process(_context(stream=True))
        assert engines.closed.is_set(), "the local call is cancelled, not left running"

    asyncio.run(run())


def test_a_routes_own_start_timeout_overrides_the_default() -> None:
    engines = ScriptedEngines()
    engines.script, engines.delay_s = [[chunk("late", role="assistant")]], TIMEOUT_S * 3

    async def run() -> None:
        with pytest.raises(SpilloverError):
            await _dispatch(engines, default_timeout_s=60.0, route_timeout_s=TIMEOUT_S).process(_context(stream=True))
        assert engines.closed.is_set()

    asyncio.run(asyncio.wait_for(run(), TIMEOUT_S * 20))


def test_a_route_named_apart_from_its_local_model_asks_the_engine_for_that_model() -> None:
    """The engine knows only its own model's name: a route such as ``fast`` over local ``m``
    must not reach it as ``fast`` (vLLM answers 404 to a name it does not serve)."""
    engines = ScriptedEngines()
    engines.script = [completion("hi")]
    route = Route(name="fast", local_model="m", ttft_target_s=60.0)
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    ctx = RequestContext(request_id="r", api=Api.CHAT, model="fast", body=body, stream=False, headers={}, route="fast",
                         facts=request_facts(parse_body(ChatCompletionBody, body), body, 16))
    asyncio.run(Dispatch(engines, {"fast": route}).process(ctx))
    assert engines.bodies[0]["model"] == "m" and ctx.body["model"] == "fast"
    assert ctx.model_served == "m"


def test_a_spilled_request_whose_hosted_targets_all_fail_is_served_locally_late() -> None:
    """Late beats lost: the engines' queue predicts a miss, so the request goes hosted; the
    hosted target refuses, and a ready replica answers it (reason ``failover_error``)."""
    busy = EngineState(model="m", replicas_ready=1, waiting=50, prefill_tokens_per_s=100)
    engines = ScriptedEngines(busy)
    engines.script = [[chunk("late", role="assistant"), chunk(finish="stop")]]
    route = Route(name="m", local_model="m", ttft_target_s=1.0, hosted=(HostedTarget(provider="h", model="m"),))
    provider = OpenAICompatibleProvider(ProviderConfig(name="h", base_url=f"http://127.0.0.1:{_closed_port()}/v1"))
    dispatch = Dispatch(engines, {"m": route}, providers={"h": provider}, breakers={"h": CircuitBreaker()}, local_start_timeout_s=TIMEOUT_S)
    ctx = _context(stream=True)
    asyncio.run(dispatch.process(ctx))
    assert (ctx.destination, ctx.spill_reason) == ("local", SpillReason.FAILOVER_ERROR)
    assert ctx.predicted_ttft_s is not None and ctx.predicted_ttft_s > route.ttft_target_s
    assert asyncio.run(_items(ctx)) == engines.script
    # Pinned hosted-only, it is not served locally.
    pinned = _context(stream=True)
    pinned.headers["x-spillover-route"] = "hosted-only"
    with pytest.raises(SpilloverError):
        asyncio.run(dispatch.process(pinned))
