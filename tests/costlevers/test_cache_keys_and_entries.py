"""The exact key, the semantic partition, and a cached answer's round trips (body and stream)."""

from __future__ import annotations

import json

import pytest

from contracts.chat_answer import ChatAnswer
from costlevers.cache.request_key import deterministic, request_keys

BASE = {"model": "m", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}],
        "temperature": 0}


def keys(body: dict, **namespace: str):  # type: ignore[no-untyped-def]
    where = {"route": "m", "model_version": "v1", "prompt_version": "1", "scope": "team-a"} | namespace
    return request_keys(body, **where)


@pytest.mark.parametrize("change", [
    {"messages": [{"role": "system", "content": "Be verbose."}, {"role": "user", "content": "Capital of France?"}]},
    {"messages": [{"role": "user", "content": "Capital of France?"}]},
    {"model": "other"}, {"temperature": 0.0001}, {"top_p": 0.5}, {"max_tokens": 10}, {"max_completion_tokens": 10},
    {"seed": 7}, {"stop": ["."]}, {"n": 2}, {"presence_penalty": 1}, {"frequency_penalty": 1}, {"logit_bias": {"5": 1}},
    {"logprobs": True}, {"top_logprobs": 2}, {"response_format": {"type": "json_object"}},
    {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, {"tool_choice": "none"},
    {"ignore_eos": True},
])
def test_every_field_that_can_change_the_answer_changes_the_key(change: dict) -> None:
    assert keys({**BASE, **change}).exact != keys(BASE).exact


def test_transport_and_accounting_fields_and_key_order_do_not() -> None:
    same = {"stream": True, "stream_options": {"include_usage": True}, "user": "u1", "metadata": {"feature": "x"}}
    reordered = dict(reversed(list({**BASE, **same}.items())))
    assert keys(reordered).exact == keys(BASE).exact


@pytest.mark.parametrize("part", ["route", "model_version", "prompt_version", "scope"])
def test_the_namespace_separates_routes_versions_and_scopes(part: str) -> None:
    assert keys(BASE, **{part: "other"}).exact != keys(BASE).exact


def test_the_semantic_partition_is_everything_but_the_last_user_turn() -> None:
    paraphrase = {**BASE, "messages": [BASE["messages"][0], {"role": "user", "content": "What is France's capital?"}]}
    assert keys(paraphrase).partition == keys(BASE).partition and keys(paraphrase).query_text == "What is France's capital?"
    other_turns = {**BASE, "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                                        {"role": "user", "content": "Capital of France?"}]}
    assert keys(other_turns).partition != keys(BASE).partition, "a multi-turn hit needs the same conversation before"
    assert keys({**BASE, "max_tokens": 5}).partition != keys(BASE).partition
    assistant_last = {**BASE, "messages": [*BASE["messages"], {"role": "assistant", "content": "Paris"}]}
    assert keys(assistant_last).query_text is None


def test_only_greedy_or_seeded_requests_are_deterministic() -> None:
    assert deterministic({"temperature": 0}) and deterministic({"seed": 1, "temperature": 0.9})
    assert not deterministic({}) and not deterministic({"temperature": 0.7})


BODY = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop",
                 "logprobs": {"content": [{"token": "Paris", "logprob": -0.1, "top_logprobs": []}]}}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
}


def test_a_stream_folds_into_the_body_it_stands_for_and_replays_as_a_stream() -> None:
    cached = ChatAnswer(BODY)
    stream = cached.as_stream("chatcmpl-2", include_usage=True)
    assert stream[-1] == "data: [DONE]\n\n"
    folded = ChatAnswer.from_stream(stream)
    assert folded is not None
    assert folded.body["choices"] == BODY["choices"] and folded.body["usage"] == BODY["usage"]
    assert json.loads(stream[-2][6:])["usage"] == BODY["usage"]
    assert all('"usage"' not in p for p in cached.as_stream("x", include_usage=False))


def test_vllm_style_chunks_with_tool_calls_fold_in_order() -> None:
    def sse(choices: list, **extra: object) -> str:
        return "data: " + json.dumps({"id": "c", "model": "m", "choices": choices, **extra}) + "\n\n"

    payloads = [
        sse([{"index": 0, "delta": {"role": "assistant", "content": ""}}]),
        sse([{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "get_", "arguments": '{"ci'}}]}}]),
        sse([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "weather", "arguments": 'ty": "Oslo"}'}}]}}]),
        sse([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
        sse([], usage={"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}), "data: [DONE]\n\n",
    ]
    folded = ChatAnswer.from_stream(payloads)
    assert folded is not None
    call = folded.body["choices"][0]["message"]["tool_calls"][0]
    assert (call["id"], call["function"]["name"], json.loads(call["function"]["arguments"])) == ("call_1", "get_weather", {"city": "Oslo"})
    assert not folded.cacheable(tool_calls=False) and folded.cacheable(tool_calls=True)


def test_only_whole_answers_are_cacheable() -> None:
    assert ChatAnswer(BODY).cacheable(tool_calls=False)
    cut = {**BODY, "choices": [{**BODY["choices"][0], "finish_reason": None}]}
    assert not ChatAnswer(cut).cacheable(tool_calls=False)
    assert not ChatAnswer({**BODY, "usage": None}).cacheable(tool_calls=False)
    assert ChatAnswer.from_stream(['data: {"error": {"message": "boom"}}\n\n']) is None
