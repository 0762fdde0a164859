"""The batch worker on its own, with a clock it is handed: a window that closes while the hosted
batch still runs ends the batch ``expired``, with the lines answered so far in its output file.
The store is real SQLite; the hosted batch API is tests/batch_server.py over an upstream that
never answers in time."""

from __future__ import annotations

import asyncio
import time
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from costlevers.batch.config import BatchConfig, HostedBatchConfig
from costlevers.batch.files import FileBytes
from costlevers.batch.hosted import OpenAIBatches
from costlevers.batch.store import BatchStore
from costlevers.batch.worker import BatchWorker, HandOff
from stores.config import StoresConfig
from stores.sql import Database
from tests.batch_server import batch_api
from tests.helpers import UvicornThread

BODY = {"model": "m", "messages": [{"role": "user", "content": "q"}]}


def stalled_upstream() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def stall() -> dict[str, Any]:
        await asyncio.sleep(5)
        return {}

    return app


@pytest.fixture
def hosted() -> Iterator[str]:
    with UvicornThread(stalled_upstream()) as upstream, UvicornThread(batch_api(upstream.base_url, None)) as server:
        yield server.base_url


async def test_a_window_that_closes_during_the_hosted_batch_expires_with_what_was_answered(tmp_path: Path, hosted: str) -> None:
    database = Database.open(StoresConfig(sqlite_path=str(tmp_path / "db.sqlite")))
    store, files = BatchStore(database), FileBytes(str(tmp_path / "files"))
    now = [1_000.0]
    store.create_batch({"id": "batch-x", "key_id": "k", "user_name": "u", "team": "t", "feature": None, "endpoint": "/v1/chat/completions",
                        "input_file_id": "file-x", "completion_window": "24h", "status": "in_progress", "created_at": 1000,
                        "in_progress_at": 1000, "expires_at": 1100, "total": 3},
                       [(n, f"c{n}", BODY) for n in (1, 2, 3)])
    ran: list[int] = []

    async def run_line(batch: dict[str, Any], line: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ran.append(line["line"])
        return "done", {"response": {"status_code": 200, "request_id": "r", "body": {"ok": True}}, "error": None}

    async def record(batch: dict[str, Any], line: dict[str, Any], result: dict[str, Any]) -> None:
        raise AssertionError("the hosted batch never answered")

    config = BatchConfig(max_in_flight=1)
    hand_off = HandOff(OpenAIBatches(hosted + "/v1", None), HostedBatchConfig(provider="p", min_observe_s=5, handoff_margin_s=0, poll_s=0.01),
                       lambda body: body, record)
    worker = BatchWorker(store, files, config, run_line=run_line, headroom=lambda model, flying: not ran and flying == 0,
                         hand_off=hand_off, clock=lambda: now[0])
    await worker.step()  # line 1 runs locally; the others find no headroom
    await asyncio.sleep(0.1)
    now[0] = 1_010.0  # watched 10 s: 1 line in 10 s, 2 left, 20 s more: past the window less the margin? no: 1030 < 1100
    await worker.step()
    assert store.counts("batch-x")["hosted"] == 0, "on time: nothing handed over yet"
    now[0] = 1_090.0  # 1 line in 90 s: the 2 left need 180 s more, past 1100
    await worker.step()
    assert store.counts("batch-x")["hosted"] == 2 and store.batch("batch-x")["hosted_batch_id"]
    now[0] = 1_100.0
    await worker.step()
    batch = store.batch("batch-x")
    assert batch["status"] == "expired" and batch["expired_at"] is not None
    output = [json.loads(line) for line in files.read(batch["output_file_id"]).splitlines()]
    assert [o["custom_id"] for o in output] == ["c1"] and ran == [1]
    await worker.aclose()
    database.dispose()


async def test_two_workers_on_one_database_run_each_line_once(tmp_path: Path) -> None:
    """Two ingress replicas' workers over one store: each line is claimed before it runs, so none
    runs twice, and a claim whose worker died lapses and the line runs elsewhere."""
    database = Database.open(StoresConfig(sqlite_path=str(tmp_path / "db.sqlite")))
    store, files = BatchStore(database), FileBytes(str(tmp_path / "files"))
    store.create_batch({"id": "batch-y", "key_id": "k", "user_name": "u", "team": "t", "feature": None, "endpoint": "/v1/chat/completions",
                        "input_file_id": "file-y", "completion_window": "24h", "status": "in_progress", "created_at": 1000,
                        "in_progress_at": 1000, "expires_at": 10_000_000_000, "total": 6},
                       [(n, f"c{n}", BODY) for n in range(1, 7)])
    ran: list[int] = []

    async def run_line(batch: dict[str, Any], line: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        ran.append(line["line"])
        await asyncio.sleep(0.05)
        return "done", {"response": {"status_code": 200, "request_id": "r", "body": {"ok": True}}, "error": None}

    config = BatchConfig(max_in_flight=2)
    workers = [BatchWorker(store, files, config, run_line=run_line, headroom=lambda model, flying: flying < 2) for _ in range(2)]
    dead = BatchWorker(store, files, config, run_line=run_line, headroom=lambda model, flying: True)
    assert store.claim("batch-y", 6, dead.name, until=time.time() + 1.0, now=time.time())  # a worker that will never finish line 6
    for _ in range(60):
        await asyncio.gather(*(w.step() for w in workers))
        await asyncio.sleep(0.05)
        if store.batch("batch-y")["status"] == "completed":
            break
    assert sorted(ran) == [1, 2, 3, 4, 5, 6], "every line once; line 6 after its dead worker's claim lapsed"
    assert store.batch("batch-y")["status"] == "completed"
