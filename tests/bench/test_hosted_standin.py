"""The hosted-API stand-in (bench/hosted_standin.py) speaks the OpenAI wire format to the official
SDK, paces tokens by the cited latency fit, and refuses past its rate limit and error share."""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest
from starlette.testclient import TestClient

from bench.hosted_standin import (
    DECODE_GAP,
    ITL_P50_S,
    ITL_P90_S,
    OUTPUT_TOKENS_P50,
    TTFT,
    TTFT_P50_S,
    TTFT_P90_S,
    Settings,
    StandIn,
    TokenBucket,
    build_app,
    decode_gap_s,
)
from tests.helpers import Clock, UvicornThread, free_port, terminate_tree, wait_for

REPO = Path(__file__).resolve().parents[2]
MODEL = "hosted-smollm2"
SCALE = 0.2
#: results_end_to_end_latency_s_quantiles_p50 in the same LLMPerf summary the stand-in cites.
E2E_P50_S = 2.4384245429999964
#: An asyncio timer may fire up to its clock's resolution early; a busy machine may deliver late.
EARLY_S, LATE_S = 0.005, 0.5


@contextmanager
def _standin_process(log_path: Path, *flags: str) -> Iterator[str]:
    """The stand-in as its CLI starts it, in a process of its own: its base URL once it answers."""
    port = free_port()
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, str(REPO / "bench" / "hosted_standin.py"), "--port", str(port), "--model", MODEL, *flags],
                                   stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/v1"
        try:
            wait_for(lambda: httpx.get(f"{url}/models", timeout=2).status_code == 200 or process.poll() is not None,
                     timeout_s=30, what="hosted stand-in", period_s=0.1)
            assert process.poll() is None, f"stand-in exited with {process.returncode}"
            yield url
        finally:
            terminate_tree(process, 5)


@pytest.fixture(scope="module")
def standin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _standin_process(tmp_path_factory.mktemp("standin") / "standin.log", "--latency-scale", "0.01") as url:
        yield url


def _client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=10)


def test_the_fit_reproduces_the_cited_percentiles() -> None:
    rng = random.Random(1)
    for dist, p50, p90 in [(TTFT, TTFT_P50_S, TTFT_P90_S), (DECODE_GAP, decode_gap_s(ITL_P50_S), decode_gap_s(ITL_P90_S))]:
        deciles = statistics.quantiles([dist.draw(rng) for _ in range(20_000)], n=10)
        assert deciles[4] == pytest.approx(p50, rel=0.02)
        assert deciles[8] == pytest.approx(p90, rel=0.02)


def test_the_decode_gap_rebuilds_the_published_end_to_end_median() -> None:
    modelled = TTFT_P50_S + (OUTPUT_TOKENS_P50 - 1) * decode_gap_s(ITL_P50_S)
    assert modelled == pytest.approx(E2E_P50_S, rel=0.03)


def test_the_token_bucket_admits_a_burst_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=2, clock=clock)
    assert [bucket.take(), bucket.take()] == [0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.5)


def test_a_stream_paces_max_tokens_by_the_seeded_draws(tmp_path: Path) -> None:
    # The first admitted request of a process started with --seed 7 draws exactly these.
    rng = StandIn(Settings(seed=7)).latency_rng
    ttft, gap = TTFT.draw(rng) * SCALE, DECODE_GAP.draw(rng) * SCALE
    max_tokens = 100  # 99 gaps: a gap off by the scale (x5) is late by far more than LATE_S
    with _standin_process(tmp_path / "standin.log", "--latency-scale", str(SCALE), "--seed", "7") as url:
        client = _client(url)
        client.models.list()  # a warm connection: the first token's time is the stand-in's, not the SDK's start-up
        started = time.monotonic()
        stream = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Say hi."}], max_tokens=max_tokens, stream=True,
            stream_options={"include_usage": True})
        arrivals, finish_reasons, usage = [], [], None
        for chunk in stream:
            now = time.monotonic()
            for choice in chunk.choices:
                if choice.delta.content:
                    arrivals.append((now, choice.delta.content))
                if choice.finish_reason:
                    finish_reasons.append(choice.finish_reason)
            usage = chunk.usage or usage
    assert len(arrivals) == max_tokens and {text for _, text in arrivals} == {" tok"}
    assert finish_reasons == ["length"]
    assert usage is not None and usage.completion_tokens == max_tokens and usage.prompt_tokens == len("Say hi.") // 4
    # Never early (the timer's resolution aside); late only by what a loaded machine adds.
    first, last = arrivals[0][0] - started, arrivals[-1][0] - started
    assert ttft - EARLY_S <= first <= ttft + LATE_S
    assert ttft + (max_tokens - 1) * gap - EARLY_S <= last <= ttft + (max_tokens - 1) * gap + LATE_S


def test_a_plain_answer_carries_usage(standin_url: str) -> None:
    content = "Name three colours, please."
    answer = _client(standin_url).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": content}], max_tokens=5)
    assert answer.object == "chat.completion" and answer.model == MODEL
    assert answer.choices[0].message.content == " tok" * 5 and answer.choices[0].finish_reason == "length"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (len(content) // 4, 5, len(content) // 4 + 5)


def test_text_completions_default_to_sixteen_tokens_that_stop(standin_url: str) -> None:
    answer = _client(standin_url).completions.create(model=MODEL, prompt="Once upon a time")
    assert answer.object == "text_completion"
    assert answer.choices[0].text == " tok" * 16 and answer.choices[0].finish_reason == "stop"


def test_text_completions_stream(standin_url: str) -> None:
    chunks = list(_client(standin_url).completions.create(model=MODEL, prompt="Once upon a time", max_tokens=3, stream=True))
    assert [chunk.choices[0].text for chunk in chunks] == [" tok", " tok", " tok", ""]
    assert chunks[-1].choices[0].finish_reason == "length"


def test_the_models_list_names_the_served_model(standin_url: str) -> None:
    assert [model.id for model in _client(standin_url).models.list()] == [MODEL]


def test_an_unknown_model_is_refused(standin_url: str) -> None:
    with pytest.raises(openai.NotFoundError) as refused:
        _client(standin_url).chat.completions.create(model="gpt-nothing", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.code == "model_not_found"


def test_past_the_rate_limit_a_request_gets_429_with_retry_after() -> None:
    # 0.5 rps: the bucket gains one request per 2 s, so the third of three quick requests is refused
    # even on a loaded machine.
    with UvicornThread(build_app(Settings(models=(MODEL,), rate_limit_rps=0.5, burst=2, latency_scale=0.001))) as server:
        client = _client(f"{server.base_url}/v1")
        for _ in range(2):
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=1)
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=1)
        stats = httpx.get(f"{server.base_url}/stats").json()
    error = refused.value
    assert (error.status_code, error.code, error.type) == (429, "rate_limit_exceeded", "rate_limit_error")
    assert error.response.headers["retry-after"] in {"1", "2"}
    assert 0 < int(error.response.headers["retry-after-ms"]) <= 2000
    assert stats == {"requests": 3, "rate_limited": 1, "server_errors": 0, "invalid": 0, "completed": 2}


def test_an_error_share_of_one_fails_every_request_before_any_token() -> None:
    with UvicornThread(build_app(Settings(models=(MODEL,), error_share=1.0, latency_scale=0.001))) as server:
        client = _client(f"{server.base_url}/v1")
        statuses = []
        for _ in range(6):
            with pytest.raises(openai.InternalServerError) as failed:
                client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True)
            statuses.append(failed.value.status_code)
            if failed.value.status_code == 503:
                assert failed.value.response.headers["retry-after"] == "1"
        stats = httpx.get(f"{server.base_url}/stats").json()
    assert set(statuses) == {500, 503}
    assert (stats["server_errors"], stats["completed"]) == (6, 0)


def test_the_seed_makes_the_error_pattern_reproducible() -> None:
    def statuses(seed: int) -> list[int]:
        client = TestClient(build_app(Settings(models=(MODEL,), error_share=0.5, latency_scale=0.0, seed=seed)))
        return [client.post("/v1/chat/completions", json={"model": MODEL, "messages": [], "max_tokens": 1}).status_code for _ in range(16)]

    first = statuses(3)
    assert first == statuses(3)
    assert set(first) == {200, 500, 503}
    assert first != statuses(4)
