"""The OpenAI API surface against real engines (vLLM on CPU behind Ray Serve), via the SDK."""

from __future__ import annotations

import base64
import json
import math
import struct
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings

from spillover.config import DEFAULT_EMBEDDING_MODEL_NAME, DEFAULT_MODEL_NAME
from tests.helpers import SpilloverServe, spillover_serving, wait_for
from tests.spillover.test_app_apis import requests

pytestmark = pytest.mark.e2e
MODEL, EMBED = DEFAULT_MODEL_NAME, DEFAULT_EMBEDDING_MODEL_NAME
ASK = [{"role": "user", "content": "List three fruits, one per line."}]
MAX_BODY = 65536


@pytest.fixture(scope="module")
def spillover(ray_cluster: dict[str, str], serve_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpilloverServe]:
    config = {
        "server": {"max_body_bytes": MAX_BODY},
        "models": [{"name": MODEL, "source": f"builtin:{MODEL}", "tool_call_parser": "hermes"}],
        "embeddings": [{"name": EMBED, "source": f"builtin:{EMBED}"}],
    }
    with spillover_serving(ray_cluster, serve_port, config, tmp_path_factory.mktemp("serve-surface")) as process:
        yield process


@pytest.fixture
def client(spillover: SpilloverServe) -> openai.OpenAI:
    return openai.OpenAI(base_url=spillover.base_url, api_key="unused", max_retries=0, timeout=180)


def test_stream_concatenates_to_the_whole_answer(client: openai.OpenAI) -> None:
    args = dict(model=MODEL, messages=ASK, max_tokens=40, temperature=0, seed=7, user="u-1", metadata={"feature": "e2e"})
    whole = client.chat.completions.create(**args)
    chunks = list(client.chat.completions.create(**args, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content


def test_n_stop_and_logprobs(client: openai.OpenAI) -> None:
    two = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=8, n=2, temperature=1.0, seed=3)
    assert [c.index for c in two.choices] == [0, 1]
    assert two.usage.completion_tokens <= 16

    free = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=30, temperature=0).choices[0].message.content
    words = [w for w in free.split() if len(w) > 3]
    stop_word = words[1] if len(words) > 1 else words[0]
    stopped = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=30, temperature=0, stop=[stop_word]).choices[0]
    assert stopped.finish_reason == "stop" and stop_word not in stopped.message.content
    assert free.startswith(stopped.message.content)

    with_logprobs = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=12, temperature=0, logprobs=True, top_logprobs=2).choices[0]
    tokens = with_logprobs.logprobs.content
    assert tokens and all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in tokens)
    assert "".join(t.token for t in tokens) == with_logprobs.message.content


def test_json_object_and_json_schema(client: openai.OpenAI) -> None:
    prompt = [{"role": "user", "content": "Give a JSON object with a key 'fruit' naming one fruit."}]
    obj = client.chat.completions.create(model=MODEL, messages=prompt, max_tokens=300, temperature=0, response_format={"type": "json_object"})
    assert obj.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(obj.choices[0].message.content), dict)

    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 12}, "age": {"type": "integer", "minimum": 0, "maximum": 120}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    typed = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Invent a person."}], max_tokens=100, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}},
    )
    person = json.loads(typed.choices[0].message.content)
    assert set(person) == {"name", "age"} and isinstance(person["name"], str) and 0 <= person["age"] <= 120


def test_forced_tool_choice_returns_a_tool_call(client: openai.OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}}, "required": ["city"]}}}]
    response = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Weather in Paris?"}], tools=tools, max_tokens=60, temperature=0,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    (call,) = response.choices[0].message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    # Shape, not content: the arguments are JSON. (vLLM 0.32 does not hold a forced tool's
    # arguments to its parameter schema; its own server returns the same for this model.)
    json.loads(call.function.arguments)


def test_text_completions_streamed_and_not(client: openai.OpenAI) -> None:
    whole = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0)
    streamed = list(client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == whole.choices[0].text
    assert whole.usage.completion_tokens == 8


def test_embeddings_unit_norm_deterministic_base64_equals_float(client: openai.OpenAI, spillover: SpilloverServe) -> None:
    texts = ["How do I reset my password?", "What is the capital of France?"]
    first = client.embeddings.create(model=EMBED, input=texts, encoding_format="float")
    again = client.embeddings.create(model=EMBED, input=texts, encoding_format="float")
    vectors = [d.embedding for d in first.data]
    assert len(vectors) == 2 and len(vectors[0]) == 384
    assert all(abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-4 for v in vectors)
    assert all(max(abs(a - b) for a, b in zip(v, w)) < 1e-5 for v, w in zip(vectors, [d.embedding for d in again.data]))
    assert first.usage.prompt_tokens > 0
    raw = httpx.post(spillover.base_url + "/embeddings", json={"model": EMBED, "input": texts, "encoding_format": "base64"}).json()
    decoded = [struct.unpack(f"<{len(vectors[0])}f", base64.b64decode(d["embedding"])) for d in raw["data"]]
    assert all(max(abs(a - b) for a, b in zip(v, w)) < 1e-6 for v, w in zip(vectors, decoded))
    # The SDK's default asks for base64 and decodes it: the same vectors come back.
    sdk_default = client.embeddings.create(model=EMBED, input=texts[0])
    assert max(abs(a - b) for a, b in zip(sdk_default.data[0].embedding, vectors[0])) < 1e-6


def test_bad_input_through_the_sdk(client: openai.OpenAI, spillover: SpilloverServe) -> None:
    with pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(model="gpt-9", messages=ASK)
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[])
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=5000)
    assert too_long.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as long_prompt:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "word " * 3000}], max_tokens=4)
    assert long_prompt.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as wrong_type:
        client.chat.completions.create(model=MODEL, messages=ASK, temperature="hot")  # type: ignore[arg-type]
    assert wrong_type.value.param == "temperature"
    with pytest.raises(openai.APIStatusError) as too_big:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x" * MAX_BODY}])
    assert too_big.value.status_code == 413
    malformed = httpx.post(spillover.base_url + "/chat/completions", content=b'{"model": ', headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"]["type"] == "invalid_request_error"
    assert client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=2).choices, "nothing else was lost"


def test_client_disconnect_cancels_the_engine_work(client: openai.OpenAI, spillover: SpilloverServe) -> None:
    state_url = spillover.base_url + "/engine/state"
    stream = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=1500, temperature=0, stream=True, extra_body={"ignore_eos": True})
    for i, _ in enumerate(stream):
        if i == 5:
            break
    stream.close()
    started = time.monotonic()
    # 1,500 tokens would keep the engine busy for over a minute; a cancel frees it in seconds.
    wait_for(lambda: httpx.get(state_url).json()["data"][MODEL]["running"] == 0, timeout_s=15, what="engine idle after disconnect", period_s=0.2)
    assert time.monotonic() - started < 15


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(requests())
def test_generated_inputs_never_make_a_5xx(spillover: SpilloverServe, request: tuple[str, object]) -> None:
    path, body = request
    real = {"m": MODEL, "e": EMBED}
    if isinstance(body, dict) and body.get("model") in real:
        body = {**body, "model": real[body["model"]]}
        if isinstance(body.get("max_tokens"), int):
            body["max_tokens"] = min(abs(body["max_tokens"]), 4) or 1
        body.setdefault("max_tokens", 4)
    r = httpx.post(spillover.base_url.removesuffix("/v1") + path, json=body, timeout=120)
    assert r.status_code < 500, (path, body, r.text)
