"""The ingress app's HTTP behaviour, over real HTTP (uvicorn) with the official openai SDK.

The engines are scripted in memory here (the item shapes of serving.ray_engines); the e2e
tests run the same paths against real vLLM engines behind Ray Serve.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from contracts.engine_state import EngineState
from spillover.app import create_app
from tests.helpers import UvicornThread
from tests.serving.scripted_engines import ScriptedEngines, chunk, completion, scripted_config, usage_chunk

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def engines() -> ScriptedEngines:
    return ScriptedEngines()


@pytest.fixture
def server(engines: ScriptedEngines) -> Iterator[UvicornThread]:
    config = scripted_config({"SPILLOVER__SERVER__MAX_BODY_BYTES": "2048"})
    with UvicornThread(create_app(config, engines)) as server:
        yield server


@pytest.fixture
def client(server: UvicornThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0)


def test_non_streamed_completion_with_spill_headers(engines: ScriptedEngines, client: openai.OpenAI) -> None:
    engines.script = [completion("hello")]
    raw = client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES, extra_headers={"x-request-id": "abc-1"})
    assert raw.headers["x-request-id"] == "abc-1"
    assert raw.headers["x-spillover-destination"] == "local"
    assert raw.headers["x-spillover-reason"] == "local_ok"
    response = raw.parse()
    assert response.choices[0].message.content == "hello"
    assert response.usage.total_tokens == 5


def test_stream_always_asks_the_engine_for_usage_and_drops_it_unless_asked(engines: ScriptedEngines, client: openai.OpenAI) -> None:
    engines.script = [[chunk("", role="assistant")], [chunk("he"), chunk("llo", finish="stop")], [usage_chunk(3, 2), "data: [DONE]\n\n"]]
    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert engines.bodies[-1]["stream_options"] == {"include_usage": True}
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "hello"
    assert all(c.usage is None for c in chunks)

    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage.completion_tokens == 2 and chunks[-1].choices == []


def test_engine_failure_mid_stream_ends_with_an_error_event(engines: ScriptedEngines, server: UvicornThread) -> None:
    engines.script = [[chunk("", role="assistant")], [chunk("par")], RuntimeError("engine died")]
    with httpx.stream("POST", server.base_url + "/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": True}) as r:
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert json.loads(events[1][6:])["choices"][0]["delta"]["content"] == "par"
    assert json.loads(events[-1][6:])["error"]["code"] == "stream_cut"


def test_client_disconnect_closes_the_engine_stream(engines: ScriptedEngines, server: UvicornThread) -> None:
    engines.script = [[chunk(str(i))] for i in range(200)]
    engines.delay_s = 0.01
    with httpx.stream("POST", server.base_url + "/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": True}) as r:
        for _ in zip(range(3), r.iter_lines()):
            pass
    deadline = time.monotonic() + 5
    while not engines.closed.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engines.closed.is_set(), "the engine's stream must be closed when the client leaves"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": MESSAGES, "max_tokens": "many"}, "max_tokens"),
        ({"model": "m", "messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
        ({"messages": MESSAGES}, "model"),
    ],
)
def test_invalid_requests_are_400_with_param(server: UvicornThread, body: dict, param: str) -> None:
    r = httpx.post(server.base_url + "/v1/chat/completions", json=body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert set(error) == {"message", "type", "param", "code"}


def test_malformed_json_and_non_object_bodies(server: UvicornThread) -> None:
    for content in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        r = httpx.post(server.base_url + "/v1/chat/completions", content=content, headers={"content-type": "application/json"})
        assert r.status_code == 400, content
        assert r.json()["error"]["type"] == "invalid_request_error"


def test_sdk_maps_each_error_to_its_exception(engines: ScriptedEngines, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=MESSAGES)
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=[])
    with pytest.raises(openai.APIStatusError) as too_big:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x" * 4096}])
    assert too_big.value.status_code == 413
    engines.script = [{"status": 400, "error": {"message": "This model's maximum context length is 2048 tokens.", "type": "BadRequestError", "param": None, "code": 400}}]
    with pytest.raises(openai.BadRequestError, match="maximum context length"):
        client.chat.completions.create(model="m", messages=MESSAGES)


def test_invalid_route_header_is_rejected(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="X-Spillover-Route"):
        client.chat.completions.create(model="m", messages=MESSAGES, extra_headers={"X-Spillover-Route": "sideways"})


def test_no_ready_replica_is_503_with_retry_after(engines: ScriptedEngines, server: UvicornThread) -> None:
    engines._state = EngineState(model="m", replicas_starting=1)
    r = httpx.post(server.base_url + "/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == "no_replica_ready"
    ready = httpx.get(server.base_url + "/ready")
    assert ready.status_code == 503 and ready.json()["routes"]["m"]["replicas_starting"] == 1


def test_unknown_urls_and_methods_use_the_openai_envelope(server: UvicornThread) -> None:
    r = httpx.get(server.base_url + "/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"
    r = httpx.get(server.base_url + "/v1/chat/completions")
    assert r.status_code == 405 and r.json()["error"]["type"] == "invalid_request_error"


def test_health_ready_models_state_and_metrics(engines: ScriptedEngines, client: openai.OpenAI, server: UvicornThread) -> None:
    assert httpx.get(server.base_url + "/health").json() == {"status": "ok"}
    assert httpx.get(server.base_url + "/ready").status_code == 200
    assert [m.id for m in client.models.list()] == ["m", "e"]
    assert client.models.retrieve("m").id == "m"
    state = httpx.get(server.base_url + "/v1/engine/state").json()["data"]["m"]
    assert state["replicas_ready"] == 1
    engines.script = [completion("x")]
    client.chat.completions.create(model="m", messages=MESSAGES)
    metrics = httpx.get(server.base_url + "/metrics").text
    assert 'spillover_requests_total{destination="local",model="m",reason="local_ok",status="ok"} 1.0' in metrics
    assert 'spillover_engine_replicas_ready{model="m"} 1.0' in metrics
    assert "spillover_ingress_overhead_seconds_count" in metrics


def test_logs_are_json_lines_without_keys_or_content(engines: ScriptedEngines, server: UvicornThread, caplog: pytest.LogCaptureFixture) -> None:
    from serving.logs import JsonFormatter

    engines.script = [completion("SECRET-COMPLETION")]
    with caplog.at_level(logging.INFO, logger="spillover.access"):
        logging.getLogger("spillover.access").propagate = True
        httpx.post(
            server.base_url + "/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "SECRET-PROMPT"}]},
            headers={"authorization": "Bearer sk-SECRET-KEY", "x-request-id": "rid-7"},
        )
    lines = [JsonFormatter().format(r) for r in caplog.records]
    access = [json.loads(line) for line in lines if "request finished" in line]
    assert access and access[0]["request_id"] == "rid-7" and access[0]["status"] == "ok"
    text = "\n".join(lines)
    assert "SECRET" not in text


def test_start_up_freezes_the_heap_it_built(engines: ScriptedEngines) -> None:
    """Full collections must not walk start-up's objects (spillover.startup_heap): the app's
    start freezes them."""
    import gc

    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        with UvicornThread(create_app(scripted_config(), engines)):
            assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
