"""Translation tests on examples shaped like Anthropic's API reference (Messages API)."""

import json

import pytest

from contracts.errors import InvalidRequestError
from fallback.anthropic_wire import DEFAULT_MAX_TOKENS, StreamTranslator, from_messages_response, to_messages_request, usage_from_anthropic


def test_request_moves_system_merges_turns_and_maps_tools() -> None:
    body = {
        "model": "claude",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
                {"id": "toolu_02", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
            ]},
            {"role": "tool", "tool_call_id": "toolu_01", "content": "18C"},
            {"role": "tool", "tool_call_id": "toolu_02", "content": "24C"},
        ],
        "stop": "###",
        "temperature": 0.2,
        "user": "u-42",
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "required",
        "parallel_tool_calls": False,
    }
    request = to_messages_request(body, "claude-3-5-haiku-latest")
    assert request["model"] == "claude-3-5-haiku-latest"
    assert request["system"] == "Be brief.\n\nAnswer in English."
    assert request["max_tokens"] == DEFAULT_MAX_TOKENS
    assert request["stop_sequences"] == ["###"] and request["temperature"] == 0.2
    assert request["metadata"] == {"user_id": "u-42"}
    assert [t["role"] for t in request["messages"]] == ["user", "assistant", "user"]
    assert request["messages"][1]["content"][1] == {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {"city": "Rome"}}
    assert [b["tool_use_id"] for b in request["messages"][2]["content"]] == ["toolu_01", "toolu_02"]
    assert request["tools"][0] == {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
    assert request["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("auto", {"type": "auto"}), ("none", {"type": "none"}), ({"type": "function", "function": {"name": "f"}}, {"type": "tool", "name": "f"})],
)
def test_tool_choice_mapping(choice, expected) -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": choice}
    assert to_messages_request(body, "m")["tool_choice"] == expected


def test_unsupported_requests_are_400() -> None:
    with pytest.raises(InvalidRequestError):
        to_messages_request({"messages": [{"role": "user", "content": "x"}], "n": 2}, "m")
    with pytest.raises(InvalidRequestError):
        to_messages_request({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "m")


def test_response_with_text_tool_use_and_cache_usage() -> None:
    response = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "Let me check.", "signature": "sig"},
            {"type": "text", "text": "Checking the weather."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"location": "San Francisco, CA"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 2095, "output_tokens": 503, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 3000},
    }
    body, usage = from_messages_response(response, "claude-sonnet")
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Checking the weather."
    assert choice["message"]["reasoning_content"] == "Let me check."
    call = choice["message"]["tool_calls"][0]
    assert call["id"] == "toolu_01A09q90qw90lq917835lq9" and json.loads(call["function"]["arguments"]) == {"location": "San Francisco, CA"}
    # Anthropic's input_tokens exclude cache reads and writes; OpenAI's prompt_tokens include them.
    assert (usage.prompt_tokens, usage.cached_read_tokens, usage.cache_write_tokens, usage.completion_tokens) == (6095, 3000, 1000, 503)
    assert body["usage"]["prompt_tokens"] == 6095 and body["usage"]["prompt_tokens_details"]["cached_tokens"] == 3000
    from contracts.context import Usage

    assert Usage.from_openai(body["usage"]) == usage, "the usage survives the OpenAI shape (respond reads it back)"


@pytest.mark.parametrize(("stop", "finish"), [("end_turn", "stop"), ("max_tokens", "length"), ("stop_sequence", "stop"), ("refusal", "content_filter")])
def test_stop_reasons(stop: str, finish: str) -> None:
    body, _ = from_messages_response({"content": [{"type": "text", "text": "x"}], "stop_reason": stop, "usage": {}}, "m")
    assert body["choices"][0]["finish_reason"] == finish


def _events() -> list[dict]:
    return [
        {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude",
                                              "usage": {"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 10, "cache_creation_input_tokens": 0}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"location": "San Fra'}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": 'ncisco"}'}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None}, "usage": {"output_tokens": 15}},
        {"type": "message_stop"},
    ]


def test_stream_events_become_openai_chunks_with_usage() -> None:
    translator = StreamTranslator(public_model="claude", include_usage=True)
    payloads = [p for e in _events() for p in translator.feed(e)]
    assert payloads[-1] == "data: [DONE]\n\n"
    chunks = [json.loads(p[6:]) for p in payloads[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello!"
    tool_parts = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]
    assert tool_parts[0]["id"] == "toolu_1" and tool_parts[0]["function"]["name"] == "get_weather"
    assert json.loads("".join(p["function"]["arguments"] for p in tool_parts)) == {"location": "San Francisco"}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]] == ["tool_calls"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {"prompt_tokens": 35, "completion_tokens": 15, "total_tokens": 50, "prompt_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 0}}
    assert translator.finished


def test_a_cut_stream_keeps_the_usage_seen_so_far() -> None:
    translator = StreamTranslator(public_model="claude")
    for event in _events()[:5]:
        list(translator.feed(event))
    assert translator.usage.prompt_tokens == 35 and not translator.finished
    assert all("usage" not in p for e in _events()[5:] for p in StreamTranslator("c").feed(e))


def test_usage_without_cache_fields() -> None:
    usage = usage_from_anthropic({"input_tokens": 5, "output_tokens": 7})
    assert (usage.prompt_tokens, usage.cached_read_tokens, usage.cache_write_tokens) == (5, 0, 0)
