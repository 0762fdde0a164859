"""Text completions, embeddings and a property test over the ingress's own OpenAPI schemas."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spillover.app import create_app
from tests.helpers import UvicornThread
from tests.serving.scripted_engines import ScriptedEngines, completion, scripted_config


@pytest.fixture(scope="module")
def engines() -> ScriptedEngines:
    return ScriptedEngines()


@pytest.fixture(scope="module")
def server(engines: ScriptedEngines) -> Iterator[UvicornThread]:
    with UvicornThread(create_app(scripted_config(), engines)) as server:
        yield server


@pytest.fixture
def client(server: UvicornThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)


def test_text_completions_reach_the_engine_as_completions(engines: ScriptedEngines, client: openai.OpenAI) -> None:
    engines.script = [{"id": "cmpl-1", "object": "text_completion", "created": 0, "model": "m",
                       "choices": [{"index": 0, "text": " world", "finish_reason": "length", "logprobs": None}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}]
    response = client.completions.create(model="m", prompt="hello", max_tokens=1)
    assert response.choices[0].text == " world" and engines.apis[-1] == "completions"
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="m", prompt=[], max_tokens=1)
    assert info.value.body["param"] == "prompt"


def test_embeddings_pass_the_body_and_map_errors(engines: ScriptedEngines, client: openai.OpenAI) -> None:
    engines.script = [{"object": "list", "model": "e", "data": [{"object": "embedding", "index": 0, "embedding": [0.6, 0.8]}],
                       "usage": {"prompt_tokens": 3, "total_tokens": 3}}]
    response = client.embeddings.create(model="e", input="hi", encoding_format="float")
    assert response.data[0].embedding == [0.6, 0.8] and response.usage.prompt_tokens == 3
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="m", input="hi")
    engines.script = [{"status": 400, "error": {"message": "Input 0 has 900 tokens", "type": "invalid_request_error", "param": "input", "code": "context_length_exceeded"}}]
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="e", input="hi")
    assert info.value.code == "context_length_exceeded"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "e", "input": ""}, "input"),
        ({"model": "e", "input": []}, "input"),
        ({"model": "e", "input": ["ok", ""]}, "input"),
        ({"model": "e", "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": "e"}, "input"),
    ],
)
def test_invalid_embedding_requests(server: UvicornThread, body: dict, param: str) -> None:
    r = httpx.post(server.base_url + "/v1/embeddings", json=body)
    assert r.status_code == 400 and r.json()["error"]["param"] == param


def test_the_engines_context_window_error_gets_openais_code(engines: ScriptedEngines, client: openai.OpenAI) -> None:
    engines.script = [{"status": 400, "error": {"message": "This model's maximum context length is 2048 tokens. However, you requested 9000 tokens.", "type": "BadRequestError", "param": None, "code": 400}}]
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], max_tokens=9000)
    assert info.value.code == "context_length_exceeded" and info.value.param == "messages"


def test_openapi_documents_the_request_bodies(server: UvicornThread) -> None:
    spec = httpx.get(server.base_url + "/openapi.json").json()
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
        assert "requestBody" in spec["paths"][path]["post"], path


json_scalars = st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
message = st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant", "tool", "x"]), "content": json_values})
fields = {
    "/v1/chat/completions": {"model": st.sampled_from(["m", "e", "", 3]), "messages": st.lists(message, max_size=3) | json_values},
    "/v1/completions": {"model": st.sampled_from(["m", "zz"]), "prompt": json_values},
    "/v1/embeddings": {"model": st.sampled_from(["e", "m"]), "input": json_values, "encoding_format": json_values},
}
common = {"stream": json_values, "max_tokens": json_values, "n": json_values, "stream_options": json_values, "temperature": json_values}


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, object]:
    path = draw(st.sampled_from(list(fields)))
    chosen = {**fields[path], **common}
    keys = draw(st.lists(st.sampled_from(list(chosen)), unique=True))
    body = {k: draw(chosen[k]) for k in keys}
    return path, draw(st.just(body) | json_values)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests())
def test_no_input_makes_a_5xx(engines: ScriptedEngines, server: UvicornThread, request: tuple[str, object]) -> None:
    engines.script = [completion("ok")]
    path, body = request
    r = httpx.post(server.base_url + path, json=body, timeout=10)
    assert r.status_code < 500, (path, body, r.text)
    if r.status_code >= 400:
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
