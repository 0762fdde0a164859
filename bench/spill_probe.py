"""The spill-over bench's client and its probes of the local replica.

The client streams one chat completion and records where the ingress sent it, when its first
token came and what the ingress predicted (:func:`send`). The probes calibrate the replica
before the replay: the unloaded TTFT that sets the target, the step model's costs, and the
capacity at the target and saturated. Every probe send has a prompt no other send used
(:class:`FreshPrompts`).

Measuring and deriving are apart: :func:`measure_probe` keeps every probe send as a raw row
(and each closed loop's length), :func:`derive_probe` turns those rows into the figures, so a
recorded run's figures can be rebuilt from its raw file alone.
"""

from __future__ import annotations

import asyncio
import functools
import json
import statistics
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from autoscaler.trace import Arrival
from bench.hosted_standin import TTFT_P50_S as HOSTED_TTFT_P50_S
from bench._common import percentile
from bench.serving import MODEL, PROMPTS

__all__ = ["DECODE_BATCH", "PROBE_CONCURRENCY", "SERVE_PORT", "FreshPrompts", "Outcome", "derive_probe", "measure_probe",
           "percentile", "prompt_texts", "send", "ttft_target_s"]

SERVE_PORT = 8000
PROBE_CONCURRENCY = 32
#: The step-cost probe's decode streams: how many at once, and how long each.
DECODE_BATCH, DECODE_TOKENS = 16, 64
#: The prefill probe: prompt lengths at these quantiles of the window's, each sent this often alone.
PREFILL_QUANTILES, PREFILL_SENDS = (0.0, 0.25, 0.5, 0.75, 1.0), 3
GOODPUT_STEP_S = 20.0
#: The target leaves each side twice its own unloaded median time to first token.
TARGET_OVER_UNLOADED = 2.0
GOODPUT_LEVELS = (1, 2, 4, 8, 16)
SATURATED_S = 30.0
#: Fresh prompts for the closed-loop probes, more than they can send on this machine.
PROBE_SENDS = 2000


@dataclass(frozen=True)
class Outcome:
    ttft_s: float | None
    ok: bool
    destination: str = ""
    reason: str = ""
    predicted_s: float | None = None
    total_s: float | None = None
    status: int = 0
    #: The ingress's own time from taking the request to its upstream's first item
    #: (``x-spillover-upstream-start-ms``): the client's TTFT less the path in front of the ingress.
    ingress_start_s: float | None = None


def prompt_texts(arrivals: list[Arrival], first_index: int = 0) -> list[str]:
    """Text of each request's scaled length, cut from Arena-Hard at staggered offsets (by the
    request's index, from ``first_index``) so no two share a prefix (prefix caching would
    otherwise make prefill free)."""
    tokenizer, ids = _corpus()
    return [tokenizer.decode(ids[(i * 7919) % (len(ids) - a.prompt_tokens):][: a.prompt_tokens])
            for i, a in enumerate(arrivals, start=first_index)]


@functools.cache
def _corpus() -> tuple[Any, list[int]]:
    from transformers import AutoTokenizer

    from stores.builtin_models import resolve_source

    tokenizer = AutoTokenizer.from_pretrained(resolve_source(f"builtin:{MODEL}"))
    rows = [json.loads(line) for line in PROMPTS.read_text().splitlines()]
    corpus = " ".join(r.get("prompt") or r["turns"][0]["content"] for r in rows)
    return tokenizer, tokenizer(corpus, add_special_tokens=False)["input_ids"]


class FreshPrompts:
    """Texts no earlier send used. A probe that repeats a prompt hits vLLM's prefix cache from
    the second send on: its TTFT then shows no prefill, and a target set from it is out of reach
    for any new prompt (0.22 s repeated, 0.6-2 s for new prompts of the same lengths, seen in an
    earlier run). The replay's own prompts take their own indices; probes take indices apart."""

    def __init__(self, first_index: int) -> None:
        self._next = first_index

    def of(self, arrivals: list[Arrival]) -> list[str]:
        texts = prompt_texts(arrivals, self._next)
        self._next += len(arrivals)
        return texts

    def pairs(self, arrivals: list[Arrival], count: int) -> Iterator[tuple[Arrival, str]]:
        """``count`` sends cycling through ``arrivals``' lengths, each with a new text."""
        cycled = [arrivals[i % len(arrivals)] for i in range(count)]
        return iter(zip(cycled, self.of(cycled)))


async def send(client: httpx.AsyncClient, model: str, arrival: Arrival, prompt: str) -> Outcome:
    """One streamed chat completion of ``arrival``'s output length (``ignore_eos``)."""
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": arrival.output_tokens,
            "ignore_eos": True, "temperature": 0, "stream": True}
    started = time.perf_counter()
    ttft, done, errored = None, False, False
    try:
        async with client.stream("POST", f"http://127.0.0.1:{SERVE_PORT}/v1/chat/completions", json=body) as response:
            headers = response.headers
            route = (headers.get("x-spillover-destination", ""), headers.get("x-spillover-reason", ""))
            predicted_ms = headers.get("x-spillover-predicted-ttft-ms")
            predicted = float(predicted_ms) / 1000 if predicted_ms else None
            start_ms = headers.get("x-spillover-upstream-start-ms")
            ingress_start = float(start_ms) / 1000 if start_ms else None
            if response.status_code != 200:
                await response.aread()
                return Outcome(None, False, *route, predicted, status=response.status_code)
            async for line in response.aiter_lines():
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data: {"):
                    chunk = json.loads(line[6:])
                    errored |= "error" in chunk
                    if ttft is None and chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                        ttft = time.perf_counter() - started
    except httpx.HTTPError:
        return Outcome(None, False)
    ok = done and not errored and ttft is not None
    return Outcome(ttft, ok, *route, predicted, time.perf_counter() - started, response.status_code, ingress_start)


async def replay(model: str, arrivals: list[Arrival], prompts: list[str]) -> list[Outcome]:
    """Each arrival sent to ``model`` at its time (from half a second after the call), all at once
    in flight as the trace has them; their outcomes in arrival order."""
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=httpx.Timeout(900, connect=30), limits=limits) as client:
        zero = time.perf_counter() + 0.5

        async def at(arrival: Arrival, prompt: str) -> Outcome:
            await asyncio.sleep(max(0.0, zero + arrival.at_s - time.perf_counter()))
            return await send(client, model, arrival, prompt)

        return list(await asyncio.gather(*(at(a, p) for a, p in zip(arrivals, prompts))))


class ProbeRecorder:
    """Sends probe requests with fresh prompts and keeps each one's outcome as a raw row."""

    def __init__(self, model: str, fresh: FreshPrompts) -> None:
        self.model, self.fresh = model, fresh
        self.rows: list[dict[str, Any]] = []
        #: Each closed loop's measured length, seconds: its throughput's denominator.
        self.loops_s: dict[str, float] = {}

    def _keep(self, phase: str, arrival: Arrival, outcome: Outcome) -> Outcome:
        self.rows.append({"phase": phase, "prompt_tokens": arrival.prompt_tokens, "output_tokens": arrival.output_tokens,
                          **asdict(outcome)})
        return outcome

    async def alone(self, phase: str, arrival: Arrival, count: int, model: str | None = None) -> None:
        """``count`` sends one after another: nothing else in flight (to ``model``, else the recorder's)."""
        async with httpx.AsyncClient(timeout=120) as client:
            for text in self.fresh.of([arrival] * count):
                self._keep(phase, arrival, await send(client, model or self.model, arrival, text))

    async def together(self, phase: str, arrival: Arrival, count: int) -> None:
        """``count`` sends at once."""
        async with httpx.AsyncClient(timeout=600) as client:
            outcomes = await asyncio.gather(*(send(client, self.model, arrival, t) for t in self.fresh.of([arrival] * count)))
        for outcome in outcomes:
            self._keep(phase, arrival, outcome)

    async def loop(self, phase: str, sends: Iterator[tuple[Arrival, str]], concurrency: int, duration_s: float) -> None:
        """A closed loop: ``concurrency`` always in flight for ``duration_s``."""
        deadline = time.perf_counter() + duration_s
        async with httpx.AsyncClient(timeout=600) as client:

            async def worker() -> None:
                while time.perf_counter() < deadline:
                    arrival, text = next(sends)
                    self._keep(phase, arrival, await send(client, self.model, arrival, text))

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            self.loops_s[phase] = round(time.perf_counter() - started, 3)


async def measure_probe(raw: list[Arrival], median_index: int, model: str, first_index: int,
                        hosted_model: str | None = None) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Every probe send (raw rows) and each closed loop's length.

    In order: the median prompt alone, locally and (``hosted_model``: a route with no local
    engine) through the platform to the hosted side (→ the target); prompts at five quantiles of the window's
    lengths alone (→ the prefill rate, the slope through all five); decode streams alone and ``DECODE_BATCH`` together (→ the step's
    overhead and per-sequence cost); closed loops doubling from 1 in flight until TTFT p90 leaves
    the target (→ the capacity at the target); a saturated loop (→ the raw capacity).
    """
    recorder = ProbeRecorder(model, FreshPrompts(first_index))
    await recorder.alone("unloaded", raw[median_index], 10)
    if hosted_model is not None:
        await recorder.alone("hosted_unloaded", raw[median_index], 10, hosted_model)
    lengths = sorted(a.prompt_tokens for a in raw)
    for q in PREFILL_QUANTILES:
        await recorder.alone("prefill", Arrival(0.0, lengths[round(q * (len(lengths) - 1))], 1), PREFILL_SENDS)
    decode = Arrival(0.0, lengths[0], DECODE_TOKENS)
    await recorder.alone("decode_alone", decode, 3)
    await recorder.together("decode_batch", decode, DECODE_BATCH)
    target = ttft_target_s(_median_ttft(recorder.rows, "unloaded"), _hosted_unloaded_s(recorder.rows))
    loops = recorder.fresh.pairs(raw, PROBE_SENDS)
    for concurrency in GOODPUT_LEVELS:
        phase = f"goodput_{concurrency}"
        await recorder.loop(phase, loops, concurrency, GOODPUT_STEP_S)
        ttfts = _ttfts(recorder.rows, phase)
        print(f"probe: {concurrency} in flight: TTFT p50 {statistics.median(ttfts) if ttfts else float('nan'):.3f} s, "
              f"p90 {percentile(ttfts, 0.9):.3f} s (target {target:.3f} s)", flush=True)
        if concurrency > 1 and not percentile(ttfts, 0.9) <= target:
            break
    await recorder.loop("saturated", loops, PROBE_CONCURRENCY, SATURATED_S)
    return recorder.rows, recorder.loops_s


def _ttfts(rows: list[Mapping[str, Any]], phase: str) -> list[float]:
    return [r["ttft_s"] for r in rows if r["phase"] == phase and r["ok"]]


def _median_ttft(rows: list[Mapping[str, Any]], phase: str) -> float:
    return statistics.median(_ttfts(rows, phase))


def _inter_token_s(rows: list[Mapping[str, Any]], phase: str) -> float:
    """Median time per token after the first, over streams of ``DECODE_TOKENS`` tokens."""
    return statistics.median((r["total_s"] - r["ttft_s"]) / (DECODE_TOKENS - 1) for r in rows if r["phase"] == phase and r["ok"])


def _prefill_rate(rows: list[Mapping[str, Any]]) -> float:
    """Tokens per second: the inverse slope of the median unloaded TTFT against prompt length,
    fitted through every probed length (two lengths alone swung the rate from 197 to 280 tokens/s
    between runs on this machine)."""
    by_length: dict[int, list[float]] = {}
    for r in rows:
        if r["phase"] == "prefill" and r["ok"]:
            by_length.setdefault(r["prompt_tokens"], []).append(r["ttft_s"])
    lengths = sorted(by_length)
    slope, _ = statistics.linear_regression(lengths, [statistics.median(by_length[n]) for n in lengths])
    return 1 / max(slope, 1e-6)


def ttft_target_s(local_unloaded_s: float, hosted_unloaded_s: float) -> float:
    """Twice the slower side's unloaded TTFT p50, local or hosted, both as the client sees them.

    A target only the local side meets unloaded would make every spill a miss (on a fast hour
    this CPU's 135M model answers in 0.23 s, the stand-in's 70B in 0.64 s): the bench would
    then measure the stand-in, not the decision. Production has the same shape: a 2 s target
    over a hosted API that starts in well under a second. Both sides are measured through the
    platform (the hosted one used to be the stand-in's own median, which left the platform's
    path to the hosted API out of the hosted side alone).
    """
    return TARGET_OVER_UNLOADED * max(local_unloaded_s, hosted_unloaded_s)


def _hosted_unloaded_s(rows: list[Mapping[str, Any]]) -> float:
    """The hosted side's unloaded TTFT p50 through the platform; records made before the probe
    measured it take the stand-in's own median."""
    ttfts = _ttfts(rows, "hosted_unloaded")
    return statistics.median(ttfts) if ttfts else HOSTED_TTFT_P50_S


def derive_probe(rows: list[Mapping[str, Any]], loops_s: Mapping[str, float], window: list[Arrival]) -> dict[str, float]:
    """The probe's figures from its raw rows: target, step costs, capacities, the work model's rates."""
    unloaded, hosted_unloaded = _median_ttft(rows, "unloaded"), _hosted_unloaded_s(rows)
    target = ttft_target_s(unloaded, hosted_unloaded)
    prefill_tps = _prefill_rate(rows)
    itl_one, itl_batch = _inter_token_s(rows, "decode_alone"), _inter_token_s(rows, "decode_batch")
    per_sequence = max(0.0, (itl_batch - itl_one) / (DECODE_BATCH - 1))
    step_overhead = max(0.001, itl_one - per_sequence)
    # Capacity at the target: the throughput of the highest concurrency (1 at least: no queue at
    # all) whose TTFT p90 stayed within it. Raw capacity is the wrong yardstick for a latency
    # target: a CPU engine batching 32 requests finishes many a second, each seconds late.
    capacity, capacity_concurrency = 0.0, 0
    for concurrency in GOODPUT_LEVELS:
        phase = f"goodput_{concurrency}"
        if phase not in loops_s:
            break
        ttfts = _ttfts(rows, phase)
        if concurrency > 1 and not percentile(ttfts, 0.9) <= target:
            break
        capacity, capacity_concurrency = len(ttfts) / loops_s[phase], concurrency
    raw_capacity = len(_ttfts(rows, "saturated")) / loops_s["saturated"]
    mean_prompt = statistics.fmean(a.prompt_tokens for a in window)
    mean_output = statistics.fmean(a.output_tokens for a in window)
    # Decode throughput chosen so the work model's capacity equals the measured raw one (else the
    # step model's rate at that concurrency).
    step_rate = PROBE_CONCURRENCY / (step_overhead + PROBE_CONCURRENCY * per_sequence)
    decode_time = 1 / raw_capacity - mean_prompt / prefill_tps
    decode_tps = mean_output / decode_time if decode_time > 0 else step_rate
    # What the saturated loop paid per request beyond the engine steps: the preset's per-request cost.
    request_overhead = max(0.0, 1 / raw_capacity - mean_prompt / prefill_tps - mean_output / step_rate)
    median_prompt = next(r["prompt_tokens"] for r in rows if r["phase"] == "unloaded")
    return {
        "unloaded_ttft_p50_s": round(unloaded, 3),
        "hosted_unloaded_ttft_p50_s": round(hosted_unloaded, 3),
        "target_s": round(target, 3),
        "capacity_rps": round(capacity, 3),
        "capacity_concurrency": capacity_concurrency,
        "raw_capacity_rps": round(raw_capacity, 3),
        "decode_tokens_per_s": round(decode_tps, 1),
        "overhead_s": round(max(0.0, unloaded - median_prompt / prefill_tps), 3),
        "prefill_tokens_per_s": round(prefill_tps, 1),
        "inter_token_s": round(itl_one, 4),
        f"inter_token_s_at_{DECODE_BATCH}": round(itl_batch, 4),
        "step_overhead_s": round(step_overhead, 4),
        "decode_token_s": round(per_sequence, 5),
        "request_overhead_s": round(request_overhead, 4),
        # The fitted preset's own unloaded TTFT for the median prompt, beside the measured one.
        "preset_unloaded_ttft_s": round(step_overhead + median_prompt / prefill_tps + request_overhead, 3),
        "sends": len(rows),
    }
