"""The exact cache in the running ingress app, over real HTTP with the openai SDK, on real Redis
and in process. The engines are scripted (tests/serving/scripted_engines.py): what is under test
is what the cache lets through to them and what it answers itself."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest
import redis

from spillover.app import create_app
from tests.helpers import UvicornThread
from tests.serving.scripted_engines import ScriptedEngines, chunk, completion, scripted_config, usage_chunk

ASK = [{"role": "user", "content": "Capital of France?"}]
ADMIN = "sk-admin-cache-test"


@pytest.fixture(params=["memory", "redis"])
def store_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    if request.param == "memory":
        yield {}
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"spillover-test-{uuid.uuid4().hex[:8]}:"
    yield {"SPILLOVER__STORES__REDIS_URL": url, "SPILLOVER__STORES__REDIS_PREFIX": f"'{prefix}'"}  # YAML: quoted
    _clean(url, prefix)


def _clean(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


class App:
    def __init__(self, env: dict[str, str], engines: ScriptedEngines | None = None) -> None:
        self.engines = engines or ScriptedEngines()
        self.engines.script = [completion("Paris.", prompt=9, completion_tokens=2)]
        self.server = UvicornThread(create_app(scripted_config(env), self.engines))

    def __enter__(self) -> App:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    def client(self, key: str = "unused") -> openai.OpenAI:
        return openai.OpenAI(base_url=self.server.base_url + "/v1", api_key=key, max_retries=0)

    def ask(self, key: str = "unused", **kwargs: object):  # type: ignore[no-untyped-def]
        raw = self.client(key).chat.completions.with_raw_response.create(**{"model": "m", "messages": ASK, "temperature": 0, **kwargs})
        return raw.headers["x-spillover-cache"], raw.parse()


@pytest.fixture
def app(store_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    monkeypatch.setenv("SPILLOVER_ADMIN_KEY", ADMIN)
    with App(store_env) as app:
        yield app


def test_a_repeat_is_answered_by_the_cache_with_the_original_usage(app: App) -> None:
    assert app.ask()[0] == "miss"
    header, hit = app.ask()
    assert header == "hit-exact" and len(app.engines.bodies) == 1, "the engine saw only the first"
    assert hit.choices[0].message.content == "Paris." and (hit.usage.prompt_tokens, hit.usage.completion_tokens) == (9, 2)
    assert app.ask(max_tokens=5)[0] == "miss", "another parameter, another entry"
    metrics = httpx.get(app.server.base_url + "/metrics").text
    assert 'spillover_cache_requests_total{kind="exact",result="hit"} 1.0' in metrics
    assert 'spillover_cache_hit_ratio{kind="exact"} 0.333' in metrics


def test_a_hit_replays_as_a_stream_and_a_streamed_miss_serves_a_body(app: App) -> None:
    app.ask()
    chunks = list(app.client().chat.completions.create(model="m", messages=ASK, temperature=0, stream=True,
                                                       stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Paris."
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 11
    app.engines.script = [[chunk("", role="assistant")], [chunk("Ber"), chunk("lin.", finish="stop")], [usage_chunk(7, 3), "data: [DONE]\n\n"]]
    streamed = list(app.client().chat.completions.create(model="m", messages=ASK, temperature=0, seed=3, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "Berlin."
    header, body = app.ask(seed=3)
    assert header == "hit-exact" and body.choices[0].message.content == "Berlin." and body.usage.completion_tokens == 3


def test_sampled_requests_errors_cut_streams_and_tool_calls_are_not_cached(app: App) -> None:
    for _ in range(2):
        assert app.client().chat.completions.with_raw_response.create(model="m", messages=ASK).headers["x-spillover-cache"] == "miss"
    assert len(app.engines.bodies) == 2, "temperature 1 without a seed: every request reaches the model"
    app.engines.script = [{"status": 400, "error": {"message": "bad", "type": "invalid_request_error", "param": None, "code": None}}]
    with pytest.raises(openai.BadRequestError):
        app.ask(max_tokens=7)
    app.engines.script = [[chunk("", role="assistant")], [chunk("Pa")], RuntimeError("engine died")]
    with pytest.raises(openai.APIError):
        list(app.client().chat.completions.create(model="m", messages=ASK, temperature=0, max_tokens=8, stream=True))
    tool = completion("")
    tool["choices"][0] |= {"finish_reason": "tool_calls", "message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}
    app.engines.script = [tool]
    app.ask(max_tokens=9)
    app.engines.script = [completion("fresh")]
    assert [app.ask(max_tokens=n)[0] for n in (7, 8, 9)] == ["miss", "miss", "miss"]


def test_cache_control_no_cache_skips_the_read_and_no_store_the_write(app: App) -> None:
    app.ask(extra_headers={"cache-control": "no-store"})
    assert app.ask(extra_headers={"cache-control": "no-cache"})[0] == "miss", "nothing was stored; this one is"
    assert app.ask()[0] == "hit-exact"
    assert len(app.engines.bodies) == 2


def test_an_admin_purge_by_model_empties_the_model_s_entries(app: App) -> None:
    app.ask()
    url = app.server.base_url + "/admin/cache/purge"
    assert httpx.post(url, json={"model": "m"}, headers={"authorization": "Bearer nope"}).status_code == 403
    assert httpx.post(url, json={"model": "m", "colour": 1}, headers={"authorization": f"Bearer {ADMIN}"}).status_code == 400
    purged = httpx.post(url, json={"model": "m"}, headers={"authorization": f"Bearer {ADMIN}"}).json()
    assert purged == {"object": "cache.purge", "purged": {"exact": 1, "semantic": 0}}
    assert app.ask()[0] == "miss"


def test_entries_expire_with_their_ttl(store_env: dict[str, str]) -> None:
    with App({**store_env, "SPILLOVER__CACHE__TTL_S": "1"}) as app:
        app.ask()
        assert app.ask()[0] == "hit-exact"
        time.sleep(1.2)
        assert app.ask()[0] == "miss"


@pytest.fixture
def redis_env(redis_url: str) -> Iterator[dict[str, str]]:
    """Redis only: an in-process store lives and dies with its app, so a version bump is only
    observable (old entries still there, unreachable) in a shared store."""
    prefix = f"spillover-test-{uuid.uuid4().hex[:8]}:"
    yield {"SPILLOVER__STORES__REDIS_URL": redis_url, "SPILLOVER__STORES__REDIS_PREFIX": f"'{prefix}'"}
    _clean(redis_url, prefix)


def test_a_prompt_version_bump_invalidates_every_entry(redis_env: dict[str, str]) -> None:
    store_env = redis_env
    with App(store_env) as app:
        app.ask()
        assert app.ask()[0] == "hit-exact"
    with App({**store_env, "SPILLOVER__CACHE__PROMPT_VERSION": "2"}) as bumped:
        assert bumped.ask()[0] == "miss"
    with App(store_env) as again:
        assert again.ask()[0] == "hit-exact", "the old version's entries are still there for the old version"


@pytest.mark.parametrize(("scope", "shared"), [("team", True), ("key", False), ("global", True)])
def test_the_scope_decides_who_shares_entries(store_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, scope: str, shared: bool) -> None:
    monkeypatch.setenv("SPILLOVER_API_KEYS", "sk-one,sk-two")
    with App({**store_env, "SPILLOVER__AUTH__ENABLED": "true", "SPILLOVER__CACHE__SCOPE": scope}) as app:
        app.ask("sk-one")
        assert app.ask("sk-two")[0] == ("hit-exact" if shared else "miss")


def test_identical_requests_in_flight_together_leave_one_whole_entry(store_env: dict[str, str]) -> None:
    engines = ScriptedEngines()
    engines.delay_s = 0.2
    with App(store_env, engines) as app:
        async def many() -> list[str]:
            client = openai.AsyncOpenAI(base_url=app.server.base_url + "/v1", api_key="unused", max_retries=0)
            answers = await asyncio.gather(*(client.chat.completions.create(model="m", messages=ASK, temperature=0) for _ in range(8)))
            await client.close()
            return [a.choices[0].message.content for a in answers]

        assert asyncio.run(many()) == ["Paris."] * 8
        header, hit = app.ask()
        assert header == "hit-exact" and hit.choices[0].message.content == "Paris." and hit.usage.total_tokens == 11
