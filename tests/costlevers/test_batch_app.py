"""The batch API through the official SDK against the running ingress app: scripted engines, the
real pipeline, SQLite for files, batches, lines and the ledger, file bytes in a directory."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa

from contracts.engine_state import EngineState
from spillover.app import create_app
from spillover.config import parse_config
from stores.sql_schema import ledger_table
from tests.helpers import UvicornThread, wait_for
from tests.serving.scripted_engines import ScriptedEngines, completion, scripted_config

ADMIN = "sk-admin-batch-test"


def config(tmp_path: Path, **env: str) -> Any:
    return scripted_config({
        "SPILLOVER__AUTH__ENABLED": "true",
        "SPILLOVER__STORES__SQLITE_PATH": str(tmp_path / "spillover.db"),
        "SPILLOVER__STORES__SPOOL_DIR": str(tmp_path / "spool"),
        "SPILLOVER__AUTH__SECRET_FILE": str(tmp_path / "key-secret"),
        "SPILLOVER__BATCH__FILES_DIR": str(tmp_path / "files"),
        "SPILLOVER__BATCH__POLL_S": "0.05",
        **env,
    })


@pytest.fixture
def engines() -> ScriptedEngines:
    engines = ScriptedEngines()
    engines.script = [completion("answer")]
    return engines


@pytest.fixture
def server(tmp_path: Path, engines: ScriptedEngines, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("SPILLOVER_ADMIN_KEY", ADMIN)
    with UvicornThread(create_app(config(tmp_path, SPILLOVER__BATCH__MAX_LINES="5"), engines, keys_and_costs=True)) as app:
        yield app.base_url


def new_key(base_url: str, user: str) -> openai.OpenAI:
    created = httpx.post(base_url + "/admin/keys", json={"user": user, "team": "t"}, headers={"authorization": f"Bearer {ADMIN}"})
    assert created.status_code == 201, created.text
    client = openai.OpenAI(base_url=base_url + "/v1", api_key=created.json()["key"], max_retries=0)
    wait_for(lambda: _works(client), timeout_s=10, what="the new key")
    return client


def _works(client: openai.OpenAI) -> bool:
    try:
        client.files.list()
    except openai.AuthenticationError:
        return False
    return True


def jsonl(lines: list[dict[str, Any]]) -> io.BytesIO:
    return io.BytesIO(b"".join(json.dumps(line).encode() + b"\n" for line in lines))


def chat_line(custom_id: str, model: str = "m", url: str = "/v1/chat/completions") -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": url,
            "body": {"model": model, "messages": [{"role": "user", "content": f"q {custom_id}"}], "max_tokens": 8}}


def run_to_end(client: openai.OpenAI, batch_id: str, timeout_s: float = 20) -> Any:
    wait_for(lambda: client.batches.retrieve(batch_id).status in ("completed", "failed", "cancelled", "expired"), timeout_s=timeout_s,
             what="the batch to end")
    return client.batches.retrieve(batch_id)


def test_upload_create_poll_download_and_map_by_custom_id(server: str, tmp_path: Path) -> None:
    client = new_key(server, "ana")
    uploaded = client.files.create(file=("in.jsonl", jsonl([chat_line(f"c{i}") for i in range(4)])), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes > 0 and client.files.retrieve(uploaded.id).filename == "in.jsonl"
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
                                  metadata={"job": "nightly"})
    assert batch.status == "in_progress" and batch.request_counts.total == 4 and batch.metadata == {"job": "nightly"}
    done = run_to_end(client, batch.id)
    assert done.status == "completed" and done.request_counts.completed == 4 and done.error_file_id is None
    out = [json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()]
    by_id = {o["custom_id"]: o for o in out}
    assert sorted(by_id) == ["c0", "c1", "c2", "c3"]
    assert all(o["response"]["status_code"] == 200 and o["response"]["body"]["choices"][0]["message"]["content"] == "answer" for o in out)
    assert [b.id for b in client.batches.list().data] == [batch.id]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'spillover.db'}")

    def rows() -> list[Any]:
        with engine.connect() as connection:
            return list(connection.execute(sa.select(ledger_table).where(ledger_table.c.batch_id == batch.id)))

    wait_for(lambda: len(rows()) == 4, timeout_s=10, what="a ledger row per line")
    assert {(r.user_name, r.destination, r.status) for r in rows()} == {("ana", "local", "ok")}
    engine.dispose()


@pytest.mark.parametrize(("line", "code"), [
    (b"{not json", "invalid_json_line"),
    (json.dumps(chat_line("a")).encode(), "duplicate_custom_id"),
    (json.dumps(chat_line("b", url="/v1/completions")).encode(), "mismatched_endpoint"),
    (json.dumps(chat_line("b", model="gpt-9")).encode(), "model_not_found"),
])
def test_a_bad_line_fails_the_batch_naming_the_line(server: str, line: bytes, code: str) -> None:
    client = new_key(server, "bo")
    data = json.dumps(chat_line("a")).encode() + b"\n" + line + b"\n"
    uploaded = client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert batch.status == "failed" and batch.failed_at is not None
    assert [(e.code, e.line) for e in batch.errors.data] == [(code, 2)]


def test_too_many_lines_and_bad_arguments(server: str) -> None:
    client = new_key(server, "cy")
    uploaded = client.files.create(file=("in.jsonl", jsonl([chat_line(f"c{i}") for i in range(6)])), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert [e.code for e in batch.errors.data] == ["too_many_lines"]
    with pytest.raises(openai.BadRequestError) as raised:
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="1h")  # type: ignore[arg-type]
    assert raised.value.body["param"] == "completion_window"
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")


def test_another_key_sees_none_of_the_first_keys_files_or_batches(server: str) -> None:
    owner, other = new_key(server, "di"), new_key(server, "ed")
    uploaded = owner.files.create(file=("in.jsonl", jsonl([chat_line("x")])), purpose="batch")
    batch = owner.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    for call in (lambda: other.files.retrieve(uploaded.id), lambda: other.files.content(uploaded.id),
                 lambda: other.files.delete(uploaded.id), lambda: other.batches.retrieve(batch.id), lambda: other.batches.cancel(batch.id),
                 lambda: other.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")):
        with pytest.raises(openai.NotFoundError):
            call()
    assert other.files.list().data == [] and other.batches.list().data == []
    assert owner.files.delete(uploaded.id).deleted and owner.files.list(purpose="batch").data == []  # its output file may be there already


def test_an_upload_over_the_limit_is_a_413(tmp_path: Path, engines: ScriptedEngines, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPILLOVER_ADMIN_KEY", ADMIN)
    with UvicornThread(create_app(config(tmp_path, SPILLOVER__BATCH__MAX_FILE_BYTES="100"), engines, keys_and_costs=True)) as app:
        client = new_key(app.base_url, "fa")
        with pytest.raises(openai.APIStatusError) as raised:
            client.files.create(file=("big.jsonl", io.BytesIO(b"x" * 500)), purpose="batch")
        assert raised.value.status_code == 413


def test_cancel_mid_run_keeps_what_finished(server: str, engines: ScriptedEngines) -> None:
    engines.delay_s = 0.3
    client = new_key(server, "gu")
    uploaded = client.files.create(file=("in.jsonl", jsonl([chat_line(f"c{i}") for i in range(5)])), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    wait_for(lambda: client.batches.retrieve(batch.id).request_counts.completed >= 1, timeout_s=10, what="a first line")
    assert client.batches.cancel(batch.id).status in ("cancelling", "cancelled")
    ended = run_to_end(client, batch.id)
    assert ended.status == "cancelled" and 1 <= ended.request_counts.completed < 5
    assert len(client.files.content(ended.output_file_id).text.splitlines()) == ended.request_counts.completed


def test_lines_wait_while_interactive_requests_are_in_flight(server: str, engines: ScriptedEngines) -> None:
    engines._state = EngineState(model="m", replicas_ready=1, running=1, waiting=0)  # someone else's request on the engine
    client = new_key(server, "ha")
    uploaded = client.files.create(file=("in.jsonl", jsonl([chat_line("c0")])), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    time.sleep(0.5)
    assert client.batches.retrieve(batch.id).request_counts.completed == 0 and engines.bodies == []
    engines._state = EngineState(model="m", replicas_ready=1)
    assert run_to_end(client, batch.id).request_counts.completed == 1


def test_a_restart_resumes_the_batch_and_runs_no_finished_line_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPILLOVER_ADMIN_KEY", ADMIN)
    first = ScriptedEngines()
    first.script, first.delay_s = [completion("one")], 0.3
    with UvicornThread(create_app(config(tmp_path), first, keys_and_costs=True)) as app:
        client = new_key(app.base_url, "io")
        key = client.api_key
        uploaded = client.files.create(file=("in.jsonl", jsonl([chat_line(f"c{i}") for i in range(6)])), purpose="batch")
        batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
        wait_for(lambda: client.batches.retrieve(batch.id).request_counts.completed >= 2, timeout_s=10, what="two lines")
    done_before = len(first.bodies)
    second = ScriptedEngines()
    second.script = [completion("two")]
    with UvicornThread(create_app(config(tmp_path), second, keys_and_costs=True)) as app:
        client = openai.OpenAI(base_url=app.base_url + "/v1", api_key=key, max_retries=0)
        ended = run_to_end(client, batch.id)
        out = [json.loads(line) for line in client.files.content(ended.output_file_id).text.splitlines()]
    assert ended.status == "completed" and sorted(o["custom_id"] for o in out) == [f"c{i}" for i in range(6)]
    # Lines answered before the stop keep their first answer; at most the one cut mid-call ran twice.
    assert len(second.bodies) <= 6 - done_before + 1
    assert sum(o["response"]["body"]["choices"][0]["message"]["content"] == "one" for o in out) >= 2


def test_lines_the_window_will_not_hold_go_to_a_hosted_batch_api_at_its_batch_price(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hosted batch API is a second ingress on loopback (the same OpenAI files and batches
    protocol), its engine answering; ours has no headroom, so no line is answered locally and
    the predicted end is past the window less the margin."""
    monkeypatch.setenv("SPILLOVER_ADMIN_KEY", ADMIN)
    hosted_engines = ScriptedEngines()
    hosted_engines.script = [completion("hosted answer", prompt=3, completion_tokens=2)]
    hosted_raw = config(tmp_path / "hosted").model_dump(mode="json")
    hosted_raw["auth"]["enabled"] = False
    hosted_raw["routes"] = {"hosted-m": {"local_model": "m"}}
    prices = tmp_path / "prices.yaml"
    prices.write_text("version: t-1\nmodels:\n  hosted-m: {input: 2, output: 4, batch_input: 1, batch_output: 2}\n")
    local_engines = ScriptedEngines(EngineState(model="m", replicas_ready=1, running=1))
    with UvicornThread(create_app(parse_config(hosted_raw), hosted_engines, keys_and_costs=True)) as hosted:
        raw = config(tmp_path).model_dump(mode="json")
        raw["costs"]["price_table"] = str(prices)
        raw["providers"] = [{"name": "bulk", "kind": "openai", "base_url": hosted.base_url + "/v1", "models": {"m": "hosted-m"}}]
        raw["batch"]["hosted"] = {"provider": "bulk", "min_observe_s": 0.3, "handoff_margin_s": 86_400 - 5, "poll_s": 0.2}
        with UvicornThread(create_app(parse_config(raw), local_engines, keys_and_costs=True)) as app:
            client = new_key(app.base_url, "jo")
            uploaded = client.files.create(file=("in.jsonl", jsonl([chat_line(f"c{i}") for i in range(3)])), purpose="batch")
            batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
            ended = run_to_end(client, batch.id)
            out = [json.loads(line) for line in client.files.content(ended.output_file_id).text.splitlines()]
    assert ended.status == "completed" and ended.request_counts.completed == 3 and local_engines.bodies == []
    assert sorted(o["custom_id"] for o in out) == ["c0", "c1", "c2"]
    assert {o["response"]["body"]["choices"][0]["message"]["content"] for o in out} == {"hosted answer"}
    assert {b["model"] for b in hosted_engines.bodies} == {"m"}, "the hosted side was asked for its own model name"
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'spillover.db'}")
    with engine.connect() as connection:
        rows = list(connection.execute(sa.select(ledger_table).where(ledger_table.c.batch_id == batch.id)))
    engine.dispose()
    # 3 prompt tokens at $1/M and 2 completion tokens at $2/M (the batch prices, half the list's): 7 micro-dollars a line.
    assert [(r.destination, r.model_served, r.cost_micro_usd, r.price_version) for r in rows] == [("bulk", "hosted-m", 7, "t-1")] * 3


@pytest.fixture
def priced(tmp_path: Path, engines: ScriptedEngines, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Local work at $1,000 per million tokens, so a line's worst case (its prompt and 8 tokens) is
    about a cent: budgets of a few cents bite."""
    monkeypatch.setenv("SPILLOVER_ADMIN_KEY", ADMIN)
    app = create_app(config(tmp_path, SPILLOVER__COSTS__LOCAL_USD_PER_MTOK_CEILING="1000"), engines, keys_and_costs=True)
    with UvicornThread(app) as server:
        yield server.base_url


def key_with_budget(base_url: str, user: str, budget_usd: float) -> tuple[openai.OpenAI, str]:
    created = httpx.post(base_url + "/admin/keys", json={"user": user, "team": "t", "budget_usd": budget_usd},
                         headers={"authorization": f"Bearer {ADMIN}"})
    assert created.status_code == 201, created.text
    client = openai.OpenAI(base_url=base_url + "/v1", api_key=created.json()["key"], max_retries=0)
    wait_for(lambda: _works(client), timeout_s=10, what="the new key")
    return client, created.json()["key"]


def spent_usd(base_url: str, key: str) -> float:
    budgets = httpx.get(base_url + "/v1/budget", headers={"authorization": f"Bearer {key}"}).json()["budgets"]
    return float(next(b["spent_usd"] for b in budgets if b["scope"] == "key"))


def ledger_usd(tmp_path: Path, batch_id: str, count: int) -> float:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'spillover.db'}")

    def rows() -> list[Any]:
        with engine.connect() as connection:
            return list(connection.execute(sa.select(ledger_table).where(ledger_table.c.batch_id == batch_id)))

    try:
        wait_for(lambda: len(rows()) == count, timeout_s=10, what=f"{count} ledger rows")
        return sum(r.cost_micro_usd for r in rows()) / 1e6
    finally:
        engine.dispose()


def test_a_batch_whose_worst_case_does_not_fit_the_budget_is_refused_whole(priced: str) -> None:
    client, key = key_with_budget(priced, "ivo", 0.02)
    uploaded = client.files.create(file=("in.jsonl", jsonl([chat_line(f"c{i}") for i in range(5)])), purpose="batch")
    with pytest.raises(openai.RateLimitError) as refused:
        client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert refused.value.body["code"] == "insufficient_quota" and refused.value.body["param"] == "budget.key.month"
    assert client.batches.list().data == [] and spent_usd(priced, key) == 0


def test_a_batch_holds_its_worst_case_and_gives_back_what_it_did_not_spend(priced: str, engines: ScriptedEngines, tmp_path: Path) -> None:
    engines.delay_s = 0.3
    client, key = key_with_budget(priced, "jo", 1.0)
    uploaded = client.files.create(file=("in.jsonl", jsonl([chat_line(f"c{i}") for i in range(5)])), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    held = spent_usd(priced, key)
    assert held > 0.04, "five lines' worst cases are held from creation"
    wait_for(lambda: client.batches.retrieve(batch.id).request_counts.completed >= 1, timeout_s=10, what="a first line")
    client.batches.cancel(batch.id)
    ended = run_to_end(client, batch.id)
    assert ended.status == "cancelled"
    spent = ledger_usd(tmp_path, batch.id, ended.request_counts.completed)
    wait_for(lambda: abs(spent_usd(priced, key) - spent) < 1e-6, timeout_s=10,
             what="the budget to hold exactly what the lines that ran cost (the rest given back)")
    assert spent < held
