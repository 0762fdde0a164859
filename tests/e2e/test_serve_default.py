"""``spillover serve`` on the embedded default, answering the official openai SDK.

One deployment for the module (the engine takes about a minute to start on CPU); near the end,
SIGKILL of the ingress must lose no finished request's ledger row, and the last test sends
SIGTERM in the middle of a stream and checks the stream still finishes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import psutil
import pytest
import sqlalchemy as sa

from contracts.deployments import APP_NAME
from spillover.application import INGRESS_NAME
from spillover.config import DEFAULT_MAX_TOKENS_ON_CPU, DEFAULT_EMBEDDING_MODEL_NAME, DEFAULT_MODEL_NAME
from stores.sql_schema import ledger_table, local_intervals_table
from tests.helpers import SpilloverServe, spillover_serving, wait_for

pytestmark = pytest.mark.e2e
MODEL = DEFAULT_MODEL_NAME
PROMPT = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def spillover(ray_cluster: dict[str, str], serve_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpilloverServe]:
    with spillover_serving(ray_cluster, serve_port, None, tmp_path_factory.mktemp("serve-default")) as process:
        yield process


@pytest.fixture
def client(spillover: SpilloverServe) -> openai.OpenAI:
    return openai.OpenAI(base_url=spillover.base_url, api_key="unused", max_retries=0, timeout=120)


def test_ready_health_models_and_endpoint_printed(spillover: SpilloverServe, client: openai.OpenAI) -> None:
    root = spillover.base_url.removesuffix("/v1")
    assert any(spillover.base_url in line for line in spillover.stdout_lines)
    assert httpx.get(root + "/health").json() == {"status": "ok"}
    wait_for(lambda: httpx.get(root + "/ready").status_code == 200, timeout_s=10, what="/ready")
    assert [m.id for m in client.models.list()] == [MODEL, DEFAULT_EMBEDDING_MODEL_NAME]


def test_the_console_shows_spillover_s_own_progress_and_libraries_log_to_the_file(spillover: SpilloverServe) -> None:
    console = spillover.stdout_lines + spillover.log_path.read_text(errors="replace").splitlines()
    assert all(line.startswith("spillover: ") for line in spillover.stdout_lines), spillover.stdout_lines
    assert not [line for line in console if "alembic" in line or "Triton" in line or "Deployment Options" in line]
    libraries = spillover.libraries_log_path.read_text(errors="replace")
    assert "setup plugin alembic" in libraries and "Ray" in libraries, "library lines went to --log-file"
    assert any(str(spillover.libraries_log_path) in line for line in spillover.stdout_lines), "the console says where they are"


def test_a_request_without_max_tokens_gets_the_embedded_default_s_limit(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Write a long essay about the sea."}],
                                              extra_body={"ignore_eos": True})
    assert response.usage.completion_tokens == DEFAULT_MAX_TOKENS_ON_CPU and response.choices[0].finish_reason == "length"


def test_sync_completion_streamed_and_not(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=PROMPT, max_tokens=16, temperature=0, extra_headers={"x-request-id": "e2e-rid-1"})
    assert raw.headers["x-request-id"] == "e2e-rid-1"
    assert (raw.headers["x-spillover-destination"], raw.headers["x-spillover-reason"]) == ("local", "local_ok")
    response = raw.parse()
    assert response.choices[0].message.content
    assert response.usage.prompt_tokens > 0 and 0 < response.usage.completion_tokens <= 16

    chunks = list(client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=16, temperature=0, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].choices == [] and 0 < chunks[-1].usage.completion_tokens <= 16


def test_async_completion_streamed_and_not(spillover: SpilloverServe) -> None:
    async def run() -> tuple[str, str]:
        client = openai.AsyncOpenAI(base_url=spillover.base_url, api_key="unused", max_retries=0, timeout=120)
        whole = await client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=12, temperature=0)
        stream = await client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=12, temperature=0, stream=True)
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        await client.close()
        return whole.choices[0].message.content or "", "".join(parts)

    whole, streamed = asyncio.run(run())
    assert whole and streamed


def test_bad_input_is_refused_cleanly(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=PROMPT)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=[])
    # The engine's own validation (prompt + max_tokens over the context window) is still a 400.
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=100_000)
    assert client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=4).choices


def test_engine_state_is_fresh_and_measured(spillover: SpilloverServe, client: openai.OpenAI) -> None:
    root = spillover.base_url.removesuffix("/v1")
    seen_running = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not seen_running.is_set():
            state = httpx.get(root + "/v1/engine/state").json()["data"][MODEL]
            if state["running"] >= 1:
                seen_running.set()
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=64, temperature=0, extra_body={"ignore_eos": True})
    watcher.join()
    assert seen_running.is_set(), "the engine's running request must show in /v1/engine/state"
    state = httpx.get(root + "/v1/engine/state").json()["data"][MODEL]
    assert state["replicas_ready"] == 1 and state["age_s"] < 1.5
    assert state["decode_tokens_per_s"] > 0 and state["prefill_tokens_per_s"] > 0


def test_metrics_from_the_ingress_and_from_rays_export(spillover: SpilloverServe, ray_cluster: dict[str, str]) -> None:
    from contracts.metric_names import ENGINE_GAUGES, REQUESTS_TOTAL, VLLM_RECORDED

    text = httpx.get(spillover.base_url.removesuffix("/v1") + "/metrics").text
    assert f'{REQUESTS_TOTAL}{{destination="local",model="{MODEL}",reason="local_ok",status="ok"}}' in text
    assert all(name in text for name, _ in ENGINE_GAUGES.values())
    # vLLM's engine metrics leave through Ray's export on the node's metrics port (every ~10 s).
    export = f"http://127.0.0.1:{ray_cluster['metrics_port']}/metrics"
    wanted = {source.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") for source in VLLM_RECORDED.values()}
    wait_for(lambda: all(name in httpx.get(export).text for name in wanted), timeout_s=40, what="ray_vllm_* series")


def test_local_work_is_priced_from_the_replica_s_up_and_busy_time(spillover: SpilloverServe, client: openai.OpenAI) -> None:
    started = time.time()
    client.chat.completions.create(model=MODEL, messages=PROMPT, max_tokens=32, extra_body={"ignore_eos": True})
    engine = sa.create_engine(f"sqlite:///{spillover.log_path.parent / 'spillover.db'}")

    def priced_intervals() -> list[sa.Row]:
        with engine.connect() as connection:
            return list(connection.execute(sa.select(local_intervals_table).where(local_intervals_table.c.tokens > 0)))

    try:
        wait_for(priced_intervals, timeout_s=40, what="an interval with requests priced (5 s + 10 s grace)")
        with engine.connect() as connection:
            intervals = list(connection.execute(sa.select(local_intervals_table)))
            pending = connection.execute(sa.select(sa.func.count()).where(
                ledger_table.c.price_version == "gpu:pending", ledger_table.c.finished_at < dt.datetime.fromtimestamp(started - 20, dt.UTC))
            ).scalar_one()
    finally:
        engine.dispose()
    assert all(i.attributed_micro_usd + i.idle_micro_usd == i.cost_micro_usd for i in intervals)
    busy = [i for i in intervals if i.tokens]
    assert all(0 < i.busy_s <= i.up_s <= 5.0 + 1e-6 and i.attributed_micro_usd > 0 for i in busy), "the engine's own busy time"
    assert pending == 0, "every local request that finished before the last intervals is priced"


def test_sigkill_of_the_ingress_loses_no_finished_request_s_ledger_row(spillover: SpilloverServe) -> None:
    finished: list[str] = []
    stop = threading.Event()

    def sender() -> None:
        body = {"model": MODEL, "messages": PROMPT, "max_tokens": 8, "stream": True}
        while not stop.is_set():
            try:
                with httpx.stream("POST", spillover.base_url + "/chat/completions", json=body, timeout=60) as response:
                    text = "".join(response.iter_text())
                    if response.status_code == 200 and text.rstrip().endswith("data: [DONE]"):
                        finished.append(response.headers["x-request-id"])
            except httpx.HTTPError:
                time.sleep(0.2)  # the ingress is gone: try again once Serve has a new one

    senders = [threading.Thread(target=sender, daemon=True) for _ in range(6)]
    for thread in senders:
        thread.start()
    wait_for(lambda: len(finished) >= 10, timeout_s=60, what="finished requests before the kill")
    title = f"ray::ServeReplica:{APP_NAME}:{INGRESS_NAME}"
    (ingress,) = [p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [""])[0].startswith(title)]
    ingress.send_signal(signal.SIGKILL)
    killed_at = len(finished)
    wait_for(lambda: len(finished) >= killed_at + 10, timeout_s=120, what="requests finishing on the new ingress")
    stop.set()
    for thread in senders:
        thread.join(60)
    engine = sa.create_engine(f"sqlite:///{spillover.log_path.parent / 'spillover.db'}")

    def missing() -> set[str]:
        with engine.connect() as connection:
            return set(finished) - set(connection.execute(sa.select(ledger_table.c.request_id)).scalars())

    try:
        wait_for(lambda: not missing(), timeout_s=30, what="a ledger row for every finished request")
    finally:
        engine.dispose()


def test_sigterm_during_a_stream_lets_the_stream_finish(spillover: SpilloverServe, client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=PROMPT, max_tokens=120, temperature=0, stream=True,
        stream_options={"include_usage": True}, extra_body={"ignore_eos": True},
    )
    tokens = 0
    usage = None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            tokens += 1
            if tokens == 5:
                os.kill(spillover.process.pid, signal.SIGTERM)
        if chunk.usage:
            usage = chunk.usage
    assert usage is not None and usage.completion_tokens == 120, "the stream must run to its end"
    assert spillover.process.wait(120) == 0
    assert any("draining" in line for line in spillover.stdout_lines)
