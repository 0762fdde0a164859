"""Aliases and output limits as a new user meets them: an app written for a hosted API sends
``gpt-4o-mini``; a request without ``max_tokens`` gets the route's default, not the context limit."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from contracts.errors import ConfigError
from spillover.app import create_app
from spillover.config import DEFAULT_MAX_TOKENS_ON_CPU, DEFAULT_MODEL_NAME, load_config
from tests.helpers import UvicornThread
from tests.serving.scripted_engines import ScriptedEngines, completion, scripted_config, usage_chunk

MESSAGES = [{"role": "user", "content": "hi"}]
ROUTE = f"SPILLOVER__ROUTES__{DEFAULT_MODEL_NAME}__MAX_TOKENS"


@pytest.fixture(scope="module")
def engines() -> ScriptedEngines:
    return ScriptedEngines()


@pytest.fixture(scope="module")
def server(engines: ScriptedEngines) -> Iterator[UvicornThread]:
    config = scripted_config({"SPILLOVER__MODELS__0__ALIASES": '["gpt-4o-mini", "gpt-4o"]',
                              "SPILLOVER__EMBEDDINGS__0__ALIASES": '["text-embedding-3-small"]',
                              f"{ROUTE}__DEFAULT": "100", f"{ROUTE}__MAX": "500"})
    with UvicornThread(create_app(config, engines)) as server:
        yield server


@pytest.fixture
def client(server: UvicornThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)


def test_models_lists_every_alias_and_an_alias_is_served_as_its_model(engines: ScriptedEngines, client: openai.OpenAI,
                                                                         server: UvicornThread) -> None:
    assert {m.id for m in client.models.list()} == {"m", "gpt-4o-mini", "gpt-4o", "e", "text-embedding-3-small"}
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
    engines.script = [completion("hello")]
    assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices[0].message.content == "hello"
    assert engines.models_called[-1] == "m" and engines.bodies[-1]["model"] == "m"
    assert 'spillover_requests_total{destination="local",model="m",reason="local_ok",status="ok"}' in httpx.get(
        server.base_url + "/metrics").text, "metrics (and the ledger) count it under the model's own name"
    engines.embedding = [0.5, 0.5]
    assert client.embeddings.create(model="text-embedding-3-small", input="x").data[0].embedding == [0.5, 0.5]


def test_a_request_without_an_output_limit_gets_the_route_default(engines: ScriptedEngines, client: openai.OpenAI) -> None:
    engines.script = [completion("x")]
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert engines.bodies[-1]["max_tokens"] == 100
    engines.script = [completion("x")]
    client.chat.completions.create(model="m", messages=MESSAGES, max_completion_tokens=7)
    assert engines.bodies[-1]["max_completion_tokens"] == 7 and "max_tokens" not in engines.bodies[-1]


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_an_output_limit_above_the_route_maximum_is_400_naming_it(engines: ScriptedEngines, client: openai.OpenAI, field: str) -> None:
    calls = len(engines.bodies)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, **{field: 501})
    error = info.value.body
    assert error["param"] == field and error["code"] == "max_tokens_too_large" and "500" in error["message"]
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="m", prompt="x", max_tokens=501)
    assert len(engines.bodies) == calls, "refused before any engine"


def test_null_usage_details_are_left_out_as_openai_s_spec_wants(engines: ScriptedEngines, server: UvicornThread) -> None:
    """vLLM answers ``prompt_tokens_details: null``; the spec has an optional object there."""
    nulls = {"prompt_tokens_details": None, "completion_tokens_details": None}
    engines.script = [{"id": "cmpl-1", "object": "text_completion", "created": 0, "model": "m",
                       "choices": [{"index": 0, "text": " w", "finish_reason": "length", "logprobs": None}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2, **nulls}}]
    usage = httpx.post(server.base_url + "/v1/completions", json={"model": "m", "prompt": "x", "max_tokens": 1}).json()["usage"]
    assert usage == {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    last = json.loads(usage_chunk(3, 2)[len("data: "):])
    last["usage"].update(nulls)
    engines.script = [["data: " + json.dumps(last, separators=(",", ":")) + "\n\n", "data: [DONE]\n\n"]]
    body = {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", server.base_url + "/v1/chat/completions", json=body) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    assert events[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_the_embedded_default_aliases_nothing_and_caps_unset_output_on_cpu() -> None:
    config = load_config(None, env={})
    assert not config.models[0].aliases and not config.embeddings[0].aliases
    assert config.routes[DEFAULT_MODEL_NAME].max_tokens.default == DEFAULT_MAX_TOKENS_ON_CPU


@pytest.mark.parametrize(("env", "message"), [
    ({"SPILLOVER__MODELS__0__ALIASES": '["all-minilm-l6-v2"]'}, "already a model or route name"),
    ({"SPILLOVER__MODELS__0__ALIASES": '["x"]', "SPILLOVER__EMBEDDINGS__0__ALIASES": '["x"]'}, "given to both"),
    ({f"{ROUTE}__DEFAULT": "600", f"{ROUTE}__MAX": "500"}, "default (600) is above max (500)"),
])
def test_bad_aliases_and_limits_fail_at_start(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(None, env=env)
