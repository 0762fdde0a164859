"""What a platform team checks before it trusts a gateway with its traffic: the admin surface is
the admin's alone (every route of it, found from the app itself, so a new one cannot slip by),
one key reaches none of another's data, keys are kept and compared safely, hostile bodies stop
at the door with an OpenAI-style error, and no secret reaches a log line.

The running ingress app over real HTTP (scripted engines, the real pipeline, SQLite).
"""

from __future__ import annotations

import hmac
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from fastapi.routing import APIRoute

from spillover.app import create_app
from tests.costlevers.test_batch_app import ADMIN, chat_line, config, jsonl, new_key, run_to_end
from tests.helpers import UvicornThread
from tests.serving.scripted_engines import ScriptedEngines, completion

#: Where the admin's routes live: every route under these is checked, including ones added later.
ADMIN_PREFIXES = ("/admin", "/dashboard/api")


@pytest.fixture
def engines() -> ScriptedEngines:
    engines = ScriptedEngines()
    engines.script = [completion("answer")]
    return engines


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """Every log line any logger writes during the test, formatted as its handler would."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record) + json.dumps({k: str(v) for k, v in vars(record).items()}))

    handler = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    loggers = [root, *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]
    for logger in loggers:
        logger.addHandler(handler)
    yield lines
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.fixture
def app(tmp_path: Path, engines: ScriptedEngines, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[UvicornThread, Any]]:
    monkeypatch.setenv("SPILLOVER_ADMIN_KEY", ADMIN)
    application = create_app(config(tmp_path, SPILLOVER__SERVER__MAX_BODY_BYTES="65536"), engines, keys_and_costs=True)
    with UvicornThread(application) as server:
        yield server, application


def admin_routes(application: Any) -> list[tuple[str, str]]:
    found = [(method, route.path) for route in application.routes if isinstance(route, APIRoute) and route.path.startswith(ADMIN_PREFIXES)
             for method in sorted(route.methods)]
    assert len(found) >= 5, found  # keys (create, list, revoke), cache purge, the dashboard's data
    return found


def test_every_admin_route_refuses_user_keys_and_takes_the_admin_key(app: tuple[UvicornThread, Any], logged: list[str]) -> None:
    server, application = app
    user = new_key(server.base_url, "mallory").api_key
    for method, path in admin_routes(application):
        url = server.base_url + re.sub(r"\{[^}]+\}", "key-000000000000", path)
        body = {} if method in ("POST", "PUT", "PATCH") else None
        for key, allowed in ((None, False), ("sk-not-a-key", False), (user, False), (ADMIN, True)):
            headers = {"authorization": f"Bearer {key}"} if key else {}
            response = httpx.request(method, url, json=body, headers=headers)
            if allowed:
                assert response.status_code not in (401, 403), (method, path, response.text)
            else:
                assert response.status_code in (401, 403), (method, path, key, response.status_code)
                assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert not [line for line in logged if user in line or ADMIN in line], "no key in any log line"


def test_one_key_reaches_none_of_another_key_s_files_batches_or_budget(app: tuple[UvicornThread, Any], logged: list[str]) -> None:
    server, _ = app
    ana, eve = new_key(server.base_url, "ana"), new_key(server.base_url, "eve")
    uploaded = ana.files.create(file=("in.jsonl", jsonl([chat_line("c0")])), purpose="batch")
    batch = ana.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    done = run_to_end(ana, batch.id)
    for reach in (lambda: eve.files.retrieve(uploaded.id), lambda: eve.files.content(uploaded.id), lambda: eve.files.delete(uploaded.id),
                  lambda: eve.files.content(done.output_file_id), lambda: eve.batches.retrieve(batch.id),
                  lambda: eve.batches.cancel(batch.id)):
        with pytest.raises(openai.NotFoundError):
            reach()
    with pytest.raises(openai.NotFoundError):  # a batch over another key's file: that file does not exist for eve
        eve.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert eve.files.list().data == [] and eve.batches.list().data == []
    assert ana.files.retrieve(uploaded.id).id == uploaded.id, "the owner still has it"
    budget = httpx.get(server.base_url + "/v1/budget", headers={"authorization": f"Bearer {eve.api_key}"}).json()
    assert budget["user"] == "eve" and "ana" not in json.dumps(budget)
    assert not [line for line in logged if ana.api_key in line or eve.api_key in line]


def test_keys_are_stored_hashed_shown_once_and_compared_in_constant_time(app: tuple[UvicornThread, Any], tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    server, _ = app
    admin = {"authorization": f"Bearer {ADMIN}"}
    created = httpx.post(server.base_url + "/admin/keys", json={"user": "u", "team": "t"}, headers=admin).json()
    secret = created["key"]
    listed = httpx.get(server.base_url + "/admin/keys", headers=admin)
    assert secret not in listed.text and all("key" not in k for k in listed.json()["data"]), "the admin API shows a key once"
    assert secret.encode() not in (tmp_path / "spillover.db").read_bytes(), "the database holds a keyed hash, not the key"
    compared: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append(a)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert httpx.get(server.base_url + "/admin/keys", headers={"authorization": "Bearer sk-guess"}).status_code == 403
    assert compared == [b"sk-guess"], "the admin key is compared with hmac.compare_digest"


def _post(server: UvicornThread, key: str, content: bytes) -> httpx.Response:
    return httpx.post(server.base_url + "/v1/chat/completions", content=content,
                      headers={"content-type": "application/json", "authorization": f"Bearer {key}"})


def _chat(**fields: Any) -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}).encode()


HOSTILE = {
    "oversized": (lambda: _chat(pad="x" * 70_000), 413, None),
    "deep JSON (100 levels)": (lambda: _chat(metadata=json.loads("[" * 100 + "]" * 100)), 400, "json_too_deep"),
    "deep JSON (30k levels)": (lambda: b'{"model": "m", "x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", 400, "json_too_deep"),
    "huge n": (lambda: _chat(n=100_000), 400, "invalid_value"),
    "logit_bias flood": (lambda: _chat(logit_bias={str(i): 1 for i in range(2000)}), 400, "invalid_value"),
    "logit_bias out of range": (lambda: _chat(logit_bias={"1": 1e9}), 400, "invalid_value"),
    "invalid UTF-8": (lambda: _chat().replace(b'"hi"', b'"h\xff\xfei"'), 400, None),
    "lone surrogate": (lambda: _chat().replace(b'"hi"', b'"h\\ud800i"'), 400, "invalid_unicode"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_bodies_get_an_openai_error_before_any_engine(app: tuple[UvicornThread, Any], engines: ScriptedEngines, name: str,
                                                              logged: list[str]) -> None:
    server, _ = app
    key = new_key(server.base_url, "h").api_key
    make, status, code = HOSTILE[name]
    response = _post(server, key, make())
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and (code is None or error["code"] == code)
    assert engines.bodies == [], "nothing reached an engine"
    engines.script = [completion("still here")]
    assert _post(server, key, _chat()).json()["choices"][0]["message"]["content"] == "still here", "the next request is served"
    assert not [line for line in logged if key in line or ADMIN in line]


def test_hostile_batch_lines_fail_their_batch_naming_the_line(app: tuple[UvicornThread, Any]) -> None:
    server, _ = app
    client = new_key(server.base_url, "up")
    deep = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": ' + b"[" * 5000 + b"]" * 5000 + b"}\n"
    surrogate = json.dumps(chat_line("b")).replace('"q b"', '"q \\ud800"').encode() + b"\n"
    uploaded = client.files.create(file=("in.jsonl", io.BytesIO(deep + surrogate)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert batch.status == "failed", "a bad line fails the batch, as OpenAI's does"
    assert [(e.line, e.code) for e in batch.errors.data] == [(1, "invalid_json_line"), (2, "invalid_json_line")]
