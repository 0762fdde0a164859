"""The request context's slots and the usage record's two OpenAI shapes."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.context import Api, RequestContext, Usage


@dataclass
class Held:
    amount: int


@dataclass
class Other:
    note: str


def test_each_stage_keeps_its_own_state_under_its_own_type() -> None:
    ctx = RequestContext("r", Api.CHAT, "m", {}, False, {})
    assert ctx.slot(Held) is None
    ctx.put(Held(3))
    ctx.put(Other("x"))
    assert ctx.slot(Held) == Held(3) and ctx.slot(Other) == Other("x")
    assert ctx.pop(Held) == Held(3) and ctx.pop(Held) is None, "settled once"
    assert ctx.slot(Other) == Other("x")


def test_usage_round_trips_through_openai_s_shape() -> None:
    usage = Usage(prompt_tokens=120, cached_read_tokens=100, cache_write_tokens=4, completion_tokens=30, reasoning_tokens=7)
    assert Usage.from_openai(usage.to_openai()) == usage
    plain = Usage(prompt_tokens=9, completion_tokens=2).to_openai()
    assert plain == {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
