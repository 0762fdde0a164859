"""A hosted OpenAI-compatible API, stood in for on loopback: benchmarks only.

A hosted API's compute is not ours, so a benchmark of spilling to one must not spend this
machine's CPU on pretend generation. This server speaks the OpenAI wire format
(``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``), streamed or not,
and only sleeps: the first token after a time-to-first-token draw, then one token per decode gap.
It adds the hosted side's failure modes: a token-bucket rate limit (429 with ``Retry-After``) and a
seeded share of 500/503 answers before any token. ``GET /stats`` counts what it answered.

Latency source: Anyscale's LLMPerf leaderboard, Together AI serving Llama-2-70B-chat
(``together_ai/togethercomputer/llama-2-70b-chat``), 150 streamed requests of 550 input and 150
output tokens at concurrency 5, measured 2023-12-19 from AWS us-west-2:
https://github.com/ray-project/llmperf-leaderboard/blob/23af37e3750cc5c7d4a6f8c9dafad186f6c9a7d8/raw_data/summary/together_70b.json

    results_ttft_s_quantiles_p50                  0.6352748079999628 s
    results_ttft_s_quantiles_p90                  0.7336474150000185 s
    results_inter_token_latency_s_quantiles_p50   0.015327874889649842 s
    results_inter_token_latency_s_quantiles_p90   0.01765047838994083 s
    results_number_output_tokens_quantiles_p50    157.0

Fitting: each quantity is lognormal, mu = ln(p50), sigma = ln(p90 / p50) / z(0.9), z(0.9) = 1.2816.
TTFT: mu = -0.4537, sigma = 0.1123. LLMPerf's inter-token latency of a request is the sum of all
its arrival gaps, TTFT included, over its output tokens (``llmperf/ray_clients/*_client.py``:
``sum(time_to_next_token)``, divided by the token count in ``token_benchmark_ray.py``), so the
decode gap is recovered at the medians as (itl * n - ttft_p50) / (n - 1), n = 157: p50 11.35 ms,
p90 13.69 ms, mu = -4.4782, sigma = 0.1461. Check: ttft_p50 + 156 gaps at p50 = 2.41 s against the
published end-to-end p50 of 2.44 s. The published figure is a per-request mean, so one decode gap is
drawn per request and paces all its tokens: drawing every gap afresh would shrink the spread of a
request's mean gap by the square root of its length, which is not what was measured.
``--latency-scale`` multiplies both draws (benchmarks on scaled-down token counts).

    python bench/hosted_standin.py --port 8100 --model hosted-smollm2 [--model NAME ...]
        [--rate-limit-rps R --burst B] [--error-share S] [--latency-scale X] [--seed N]

Ready when ``GET /v1/models`` answers 200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

SOURCE = ("https://github.com/ray-project/llmperf-leaderboard/blob/23af37e3750cc5c7d4a6f8c9dafad186f6c9a7d8/"
          "raw_data/summary/together_70b.json")
TTFT_P50_S = 0.6352748079999628
TTFT_P90_S = 0.7336474150000185
ITL_P50_S = 0.015327874889649842
ITL_P90_S = 0.01765047838994083
OUTPUT_TOKENS_P50 = 157.0

#: Every output token is this text: a stand-in has no model, and a short word is one token anywhere.
TOKEN = " tok"
#: Tokens when the request names no ``max_tokens``; the answer then "stops" rather than hits a length.
DEFAULT_MAX_TOKENS = 16
#: The stand-in has no tokenizer; about four characters of English text make one token.
CHARS_PER_TOKEN = 4
#: A 503 asks the client back after this long, as an overloaded hosted API does.
OVERLOADED_RETRY_AFTER_S = 1

Json = dict[str, Any]


@dataclass(frozen=True)
class LogNormal:
    """A latency distribution, fitted to a published median and 90th percentile."""

    mu: float
    sigma: float

    @classmethod
    def from_percentiles(cls, p50: float, p90: float) -> LogNormal:
        return cls(math.log(p50), math.log(p90 / p50) / NormalDist().inv_cdf(0.9))

    def draw(self, rng: random.Random) -> float:
        return rng.lognormvariate(self.mu, self.sigma)


def decode_gap_s(itl_s: float) -> float:
    """The pure decode gap inside LLMPerf's inter-token latency, which spreads TTFT over the tokens
    too (module docstring); evaluated at the published median TTFT and output length."""
    return (itl_s * OUTPUT_TOKENS_P50 - TTFT_P50_S) / (OUTPUT_TOKENS_P50 - 1)


TTFT = LogNormal.from_percentiles(TTFT_P50_S, TTFT_P90_S)
DECODE_GAP = LogNormal.from_percentiles(decode_gap_s(ITL_P50_S), decode_gap_s(ITL_P90_S))


@dataclass(frozen=True)
class Settings:
    models: tuple[str, ...] = ("hosted-smollm2",)
    #: Requests per second the bucket refills at; 0 = no rate limit.
    rate_limit_rps: float = 0.0
    #: Requests the bucket holds when full: how many may arrive at once.
    burst: int = 1
    #: Share of admitted requests answered 500 or 503 (half each) before any token.
    error_share: float = 0.0
    latency_scale: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("at least one model name")
        if self.rate_limit_rps < 0 or (self.rate_limit_rps > 0 and self.burst < 1):
            raise ValueError("rate_limit_rps must be >= 0, and burst >= 1 when limited")
        if not 0 <= self.error_share <= 1:
            raise ValueError("error_share must be within [0, 1]")
        if self.latency_scale < 0:
            raise ValueError("latency_scale must be >= 0")


class TokenBucket:
    """Admits ``burst`` requests at once and ``rate`` per second after: the shape of a hosted
    API's requests-per-minute limit."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.capacity, self.clock = rate, float(burst), clock
        self.tokens, self.stamp = self.capacity, clock()

    def take(self) -> float:
        """0.0 when a request may go (and it is counted); otherwise the seconds until one could."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass
class Stats:
    """What a benchmark reads back from ``GET /stats``. ``requests`` minus the rest is still in
    flight or was dropped by its client."""

    requests: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    invalid: int = 0
    completed: int = 0


class Invalid(Exception):
    """A request the hosted API would refuse with a 4xx."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(frozen=True)
class Job:
    """One admitted completion request, as far as the stand-in reads it."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    stream: bool
    include_usage: bool

    @property
    def usage(self) -> Json:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}


def _chat_choice(text: str | None, finish_reason: str | None, *, streamed: bool, first: bool = False) -> Json:
    if not streamed:
        return {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason, "logprobs": None}
    delta = {} if text is None else {"role": "assistant", "content": text} if first else {"content": text}
    return {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}


def _text_choice(text: str | None, finish_reason: str | None, *, streamed: bool, first: bool = False) -> Json:
    return {"index": 0, "text": text or "", "finish_reason": finish_reason, "logprobs": None}


@dataclass(frozen=True)
class Wire:
    """What differs between the chat and the text-completion formats."""

    prompt_field: str
    object: str
    chunk_object: str
    id_prefix: str
    choice: Callable[..., Json]


CHAT = Wire("messages", "chat.completion", "chat.completion.chunk", "chatcmpl-", _chat_choice)
TEXT = Wire("prompt", "text_completion", "text_completion", "cmpl-", _text_choice)


def _text_of(value: object) -> str:
    """Every string in a prompt: plain content, content parts, lists of prompts or messages."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_text_of(item) for item in value)
    if isinstance(value, dict):
        return _text_of(value.get("content") or value.get("text") or "")
    return ""


def parse_job(body: object, wire: Wire, models: tuple[str, ...]) -> Job:
    if not isinstance(body, dict) or wire.prompt_field not in body:
        raise Invalid(400, f"'{wire.prompt_field}' is a required property")
    if body.get("model") not in models:
        raise Invalid(404, f"The model '{body.get('model')}' does not exist", "model_not_found")
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise Invalid(400, f"max_tokens must be a positive integer, got {limit!r}")
    stream = body.get("stream") is True
    options = body.get("stream_options") or {}
    return Job(model=body["model"], prompt_tokens=len(_text_of(body[wire.prompt_field])) // CHARS_PER_TOKEN,
               completion_tokens=limit or DEFAULT_MAX_TOKENS, finish_reason="stop" if limit is None else "length",
               stream=stream, include_usage=stream and isinstance(options, dict) and options.get("include_usage") is True)


def error_response(status: int, message: str, type_: str, code: str | None, headers: dict[str, str] | None = None) -> JSONResponse:
    """The OpenAI error body, which the official SDKs parse into their exception types."""
    return JSONResponse({"error": {"message": message, "type": type_, "param": None, "code": code}}, status, headers=headers)


def _sse(payload: Json) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


async def _sleep_until(deadline: float) -> None:
    """Sleep to an absolute loop time, so scheduling delays do not add up over a long answer."""
    await asyncio.sleep(max(0.0, deadline - asyncio.get_running_loop().time()))


class StandIn:
    """The server's state: settings, seeded generators, the bucket and the counts."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Separate streams: whether a request fails must not depend on how many latencies were drawn.
        self.latency_rng = random.Random(f"{settings.seed}:latency")
        self.error_rng = random.Random(f"{settings.seed}:errors")
        self.bucket = TokenBucket(settings.rate_limit_rps, settings.burst) if settings.rate_limit_rps > 0 else None
        self.stats = Stats()

    async def chat(self, request: Request) -> Response:
        return await self._complete(request, CHAT)

    async def text(self, request: Request) -> Response:
        return await self._complete(request, TEXT)

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "hosted-standin"} for name in self.settings.models]})

    async def stats_view(self, request: Request) -> Response:
        return JSONResponse(asdict(self.stats))

    async def _complete(self, request: Request, wire: Wire) -> Response:
        start = asyncio.get_running_loop().time()
        self.stats.requests += 1
        try:
            job = parse_job(json.loads(await request.body()), wire, self.settings.models)
        except (ValueError, Invalid) as exc:  # json.JSONDecodeError is a ValueError
            self.stats.invalid += 1
            status, code = (exc.status, exc.code) if isinstance(exc, Invalid) else (400, None)
            return error_response(status, str(exc), "invalid_request_error", code)
        refusal = self._refusal()
        if refusal is not None:
            return refusal
        ttft = TTFT.draw(self.latency_rng) * self.settings.latency_scale
        gap = DECODE_GAP.draw(self.latency_rng) * self.settings.latency_scale
        head = {"id": wire.id_prefix + uuid.uuid4().hex, "created": int(time.time()), "model": job.model}
        if job.stream:
            return StreamingResponse(self._stream(job, wire, head, start + ttft, gap), media_type="text/event-stream")
        await _sleep_until(start + ttft + (job.completion_tokens - 1) * gap)
        self.stats.completed += 1
        return JSONResponse({**head, "object": wire.object, "usage": job.usage,
                             "choices": [wire.choice(TOKEN * job.completion_tokens, job.finish_reason, streamed=False)]})

    def _refusal(self) -> Response | None:
        """A 429 past the rate limit, else a 500 or 503 for the configured share, else None."""
        wait_s = self.bucket.take() if self.bucket is not None else 0.0
        if wait_s > 0:
            self.stats.rate_limited += 1
            return error_response(429, f"Rate limit reached: {self.settings.rate_limit_rps:g} requests per second. Please try again later.",
                                  "rate_limit_error", "rate_limit_exceeded",
                                  {"retry-after": str(math.ceil(wait_s)), "retry-after-ms": str(math.ceil(wait_s * 1000))})
        if self.error_rng.random() >= self.settings.error_share:
            return None
        self.stats.server_errors += 1
        if self.error_rng.random() < 0.5:
            return error_response(500, "The server had an error while processing your request.", "server_error", None)
        return error_response(503, "The engine is currently overloaded, please try again later.", "server_error", None,
                              {"retry-after": str(OVERLOADED_RETRY_AFTER_S)})

    async def _stream(self, job: Job, wire: Wire, head: Json, first_at: float, gap: float) -> AsyncIterator[bytes]:
        head = {**head, "object": wire.chunk_object}
        later = _sse({**head, "choices": [wire.choice(TOKEN, None, streamed=True)]})  # every token after the first
        for index in range(job.completion_tokens):
            await _sleep_until(first_at + index * gap)
            yield later if index else _sse({**head, "choices": [wire.choice(TOKEN, None, streamed=True, first=True)]})
        yield _sse({**head, "choices": [wire.choice(None, job.finish_reason, streamed=True)]})
        if job.include_usage:
            yield _sse({**head, "choices": [], "usage": job.usage})
        yield b"data: [DONE]\n\n"
        self.stats.completed += 1


def build_app(settings: Settings) -> Starlette:
    standin = StandIn(settings)
    return Starlette(routes=[
        Route("/v1/chat/completions", standin.chat, methods=["POST"]),
        Route("/v1/completions", standin.text, methods=["POST"]),
        Route("/v1/models", standin.models),
        Route("/stats", standin.stats_view),
    ])


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Settings]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--model", action="append", help="a served model name (repeatable; default hosted-smollm2)")
    parser.add_argument("--rate-limit-rps", type=float, default=0.0, help="token-bucket refill, requests/s; 0 = unlimited")
    parser.add_argument("--burst", type=int, default=1, help="token-bucket size: requests admitted at once")
    parser.add_argument("--error-share", type=float, default=0.0, help="share of admitted requests answered 500/503")
    parser.add_argument("--latency-scale", type=float, default=1.0, help="multiplies TTFT and decode gaps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        settings = Settings(models=tuple(args.model or Settings.models), rate_limit_rps=args.rate_limit_rps, burst=args.burst,
                            error_share=args.error_share, latency_scale=args.latency_scale, seed=args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    return args, settings


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    args, settings = parse_args(argv)
    # uvloop and httptools: the least CPU per request and per chunk of what uvicorn offers.
    uvicorn.run(build_app(settings), host=args.host, port=args.port, loop="uvloop", http="httptools",
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
