"""Batches on real engines: the local SmolLM2 (vLLM on CPU behind Ray Serve), and a hosted batch
API on loopback (tests/batch_server.py: OpenAI's files + batches protocol, each line run by
vLLM's own OpenAI server). The window's margin is set so that, once the worker has watched the
local rate, the rest of the batch is predicted late and handed to the hosted batch API; the
ingress replica (where the worker runs) is SIGKILLed mid-batch and Serve's replacement resumes.
The local engine schedules by priority, so its lines carry a low one (vLLM refuses a non-zero
priority from an engine that does not)."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import psutil
import pytest
import sqlalchemy as sa
import yaml

from contracts.deployments import APP_NAME
from costlevers.batch.config import BatchConfig, HostedBatchConfig
from costlevers.batch.files import FileBytes
from costlevers.batch.store import BatchStore
from costlevers.batch.worker import BatchWorker, HandOff
from fallback.providers.anthropic_batches import AnthropicBatches
from fallback.providers.config import ProviderConfig
from spillover.application import INGRESS_NAME
from spillover.config import DEFAULT_MODEL_NAME
from stores.config import StoresConfig
from stores.sql import Database
from stores.sql_schema import ledger_table
from tests.batch_server import batch_api
from tests.e2e.conftest import HOSTED_KEY
from tests.helpers import SpilloverServe, UvicornThread, spillover_serving, wait_for

pytestmark = pytest.mark.e2e
MODEL = DEFAULT_MODEL_NAME


@pytest.fixture(scope="module")
def hosted_batches(hosted_vllm: str) -> Iterator[str]:
    with UvicornThread(batch_api(hosted_vllm, HOSTED_KEY)) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def spillover(ray_cluster: dict[str, str], serve_port: int, hosted_batches: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpilloverServe]:
    workdir = tmp_path_factory.mktemp("serve-batch")
    prices = workdir / "prices.yaml"
    prices.write_text(yaml.safe_dump({"version": "e2e-batch", "models": {"hosted-smollm2": {"input": 2.0, "output": 4.0, "batch_input": 1.0,
                                                                                              "batch_output": 2.0}}}))
    config = {
        "costs": {"price_table": str(prices)},
        # vLLM's priority scheduling (the CPU build has it): batch lines go at BATCH_PRIORITY.
        "models": [{"name": MODEL, "source": f"builtin:{MODEL}", "engine_kwargs": {"scheduling_policy": "priority"}}],
        "embeddings": [],
        "providers": [{"name": "bulk", "kind": "openai", "base_url": hosted_batches + "/v1", "models": {MODEL: "hosted-smollm2"}}],
        # Predicted late as soon as it is predicted at all: the end must come 2 s into a 24 h window.
        "batch": {"files_dir": str(workdir / "files"), "hosted": {"provider": "bulk", "min_observe_s": 8, "handoff_margin_s": 86_398,
                                                                  "poll_s": 1}},
    }
    with spillover_serving(ray_cluster, serve_port, config, workdir) as process:
        yield process


def _lines(n: int, prefix: str) -> io.BytesIO:
    return io.BytesIO(b"".join(json.dumps({"custom_id": f"{prefix}{i}", "method": "POST", "url": "/v1/chat/completions", "body": {
        "model": MODEL, "messages": [{"role": "user", "content": f"Count to {i + 3}."}], "max_tokens": 24, "temperature": 0}}).encode() + b"\n"
        for i in range(n)))


def _finished(client: openai.OpenAI, batch_id: str) -> Any:
    wait_for(lambda: client.batches.retrieve(batch_id).status in ("completed", "failed", "expired", "cancelled"), timeout_s=300,
             what="the batch to end", period_s=1)
    return client.batches.retrieve(batch_id)


def _ledger(spillover: SpilloverServe, batch_id: str, count: int) -> list[Any]:
    engine = sa.create_engine(f"sqlite:///{spillover.log_path.parent / 'spillover.db'}")

    def rows() -> list[Any]:
        with engine.connect() as connection:
            return list(connection.execute(sa.select(ledger_table).where(ledger_table.c.batch_id == batch_id)))

    try:
        wait_for(lambda: len(rows()) >= count, timeout_s=30, what=f"{count} ledger rows")
        return rows()
    finally:
        engine.dispose()


def test_a_batch_runs_locally_then_hands_the_rest_to_the_hosted_batch_api(spillover: SpilloverServe) -> None:
    client = openai.OpenAI(base_url=spillover.base_url, api_key="unused", max_retries=0, timeout=120)
    uploaded = client.files.create(file=("in.jsonl", _lines(40, "a")), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    ended = _finished(client, batch.id)
    assert ended.status == "completed" and ended.request_counts.completed == 40
    out = [json.loads(line) for line in client.files.content(ended.output_file_id).text.splitlines()]
    assert sorted(o["custom_id"] for o in out) == sorted(f"a{i}" for i in range(40))
    assert all(o["response"]["body"]["choices"][0]["message"]["content"] for o in out)
    rows = _ledger(spillover, batch.id, 40)
    by_destination = {d: [r for r in rows if r.destination == d] for d in {r.destination for r in rows}}
    assert set(by_destination) == {"local", "bulk"}, "some lines ran locally, the rest went to the hosted batch API"
    for row in by_destination["bulk"]:  # at the batch price: $1/M in, $2/M out
        assert row.model_served == "hosted-smollm2" and row.cost_micro_usd == round(row.prompt_tokens * 1 + row.completion_tokens * 2)


def test_a_killed_ingress_replica_resumes_its_batch_and_answers_each_line_once(spillover: SpilloverServe) -> None:
    client = openai.OpenAI(base_url=spillover.base_url, api_key="unused", max_retries=0, timeout=120)
    uploaded = client.files.create(file=("in.jsonl", _lines(6, "k")), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    wait_for(lambda: client.batches.retrieve(batch.id).request_counts.completed >= 1, timeout_s=120, what="a first line", period_s=0.5)
    title = f"ray::ServeReplica:{APP_NAME}:{INGRESS_NAME}"
    (replica,) = [p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [""])[0].startswith(title)]
    replica.send_signal(signal.SIGKILL)
    time.sleep(2)
    wait_for(lambda: _answers(client, batch.id), timeout_s=180, what="the restarted ingress", period_s=2)
    ended = _finished(client, batch.id)
    assert ended.status == "completed" and ended.request_counts.completed == 6
    out = [json.loads(line) for line in client.files.content(ended.output_file_id).text.splitlines()]
    assert sorted(o["custom_id"] for o in out) == [f"k{i}" for i in range(6)], "each line answered once"
    assert len(_ledger(spillover, batch.id, 6)) == 6, "one ledger row per line"


def _answers(client: openai.OpenAI, batch_id: str) -> bool:
    try:
        client.batches.retrieve(batch_id)
    except (openai.APIConnectionError, openai.InternalServerError, openai.APIStatusError):
        return False
    return True


async def test_anthropic_message_batches_take_the_lines_and_answer_them_as_openai_lines(hosted_batches: str, tmp_path: Path) -> None:
    """The worker's hand-off to Anthropic's Message Batches protocol (the batch server running each
    line through vLLM's own Messages endpoint): chat lines in OpenAI's shape go out as Messages
    requests, custom ids Anthropic would refuse go out hashed, and the answers come back as
    OpenAI chat completions, billed through the hand-off's record."""
    database = Database.open(StoresConfig(sqlite_path=str(tmp_path / "db.sqlite")))
    store, files = BatchStore(database), FileBytes(str(tmp_path / "files"))
    ids = ["plain-1", "with space/and:colons 2"]
    body = {"model": "hosted-smollm2", "messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 8, "temperature": 0}
    store.create_batch({"id": "batch-a", "key_id": "k", "user_name": "u", "team": "t", "feature": None, "endpoint": "/v1/chat/completions",
                        "input_file_id": "file-a", "completion_window": "24h", "status": "in_progress", "created_at": int(time.time()),
                        "in_progress_at": int(time.time()), "expires_at": int(time.time()) + 86_400, "total": 2},
                       [(n, cid, body) for n, cid in enumerate(ids, 1)])
    recorded: list[dict[str, Any]] = []

    async def record(batch: dict[str, Any], line: dict[str, Any], result: dict[str, Any]) -> None:
        recorded.append(result)

    async def never(batch: dict[str, Any], line: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        raise AssertionError("no local capacity in this test")

    provider = ProviderConfig(name="claude-batches", kind="anthropic", base_url=hosted_batches + "/v1", api_key_env="SPILLOVER_TEST_NO_KEY",
                              auth_header="bearer")
    api = AnthropicBatches(provider)
    hand_off = HandOff(api, HostedBatchConfig(provider="claude-batches", min_observe_s=0, handoff_margin_s=0, poll_s=0.1), lambda b: b, record)
    worker = BatchWorker(store, files, BatchConfig(), run_line=never, headroom=lambda model, flying: False, hand_off=hand_off)
    try:
        deadline = time.monotonic() + 120
        while store.batch("batch-a")["status"] == "in_progress" and time.monotonic() < deadline:
            await worker.step()
            await asyncio.sleep(0.2)
    finally:
        await api.aclose()
    assert store.batch("batch-a")["status"] in ("finalizing", "completed")
    assert store.batch("batch-a")["hosted_batch_id"].startswith("msgbatch_")
    assert len(recorded) == 2
    for result in recorded:
        answer = result["response"]["body"]
        assert answer["object"] == "chat.completion" and answer["choices"][0]["message"]["content"]
        assert answer["usage"]["prompt_tokens"] > 0 and answer["usage"]["completion_tokens"] > 0
