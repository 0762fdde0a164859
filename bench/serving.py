"""Serving throughput and TTFT: spillover vs Ray Serve LLM's own app vs vLLM's own server.

Three setups, each alone on the machine, in the order ABCABC...: ``spillover`` (every optional
stage off: auth off, no embedding deployment), ``ray_serve_llm`` (``build_openai_app`` with the
same ``LLMConfig``), ``vllm`` (``python -m vllm.entrypoints.openai.api_server`` with the same
engine arguments and dtype). Workload: Arena-Hard prompts cut to 256 tokens, ``max_tokens=128``,
``ignore_eos``, temperature 0, streamed, at concurrency 1, 4 and 16. Per setup and level:
output tokens/s and TTFT p50/p99 (client side); for spillover, the ingress's own time from its
``spillover_ingress_overhead_seconds`` histogram. Medians over rounds. Every request is a raw row
in ``bench/results/serving.raw.jsonl.gz`` (each round's histogram in its header); every figure
is derived from that file by :func:`derive`, live or with ``--recompute``.

    python bench/serving.py [--rounds 3] [--prompts 64] [--prompts-c1 16] [--allow-dirty]
    python bench/serving.py --recompute [RAW]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import (  # noqa: E402
    RAY_SERVE_LLM_PEER,
    add_provenance_arguments,
    median,
    add_recompute_arguments,
    recompute_if_asked,
    record,
    refuse_dirty_tree,
    table,
    terminate,
)

PORT = 8000
MODEL = "smollm2-135m-instruct"
PROMPTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "prompts" / "arena_hard_questions.jsonl"
LEVELS = (1, 4, 16)
SETUPS = ("spillover", "ray_serve_llm", "vllm")
NAME = "serving"


def load_prompts(n: int) -> list[str]:
    """The first ``n`` Arena-Hard questions, each cut to 256 tokens of the served model."""
    from transformers import AutoTokenizer

    from stores.builtin_models import resolve_source

    tokenizer = AutoTokenizer.from_pretrained(resolve_source(f"builtin:{MODEL}"))
    prompts = []
    for line in PROMPTS.read_text().splitlines():
        row = json.loads(line)
        text = row.get("prompt") or row["turns"][0]["content"]
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) >= 64:
            prompts.append(tokenizer.decode(ids[:256]))
        if len(prompts) == n:
            break
    return prompts


def start(setup: str, workdir: Path, model_overrides: dict | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    if setup == "spillover":
        config = workdir / "spillover.yaml"
        model = {"name": MODEL, "source": f"builtin:{MODEL}", "tool_call_parser": "hermes", **(model_overrides or {})}
        # Every optional stage off: the cache would answer rounds 2 and 3 (temperature 0, same prompts).
        config.write_text(json.dumps({"models": [model], "embeddings": [], "cache": {"enabled": False}, "costs": {"ledger": False}}))
        args = [sys.executable, "-m", "spillover.cli", "serve", "--config", str(config)]
    elif setup == "ray_serve_llm":
        args = [sys.executable, "-c", RAY_SERVE_LLM_PEER, str(PORT)]
    else:
        args = vllm_args()
        env |= {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    log = (workdir / f"{setup}.log").open("w")
    return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)


def vllm_args(port: int = PORT, served_name: str = MODEL) -> list[str]:
    """vLLM's own server with exactly the engine arguments spillover gives Ray Serve LLM."""
    from serving.llm_deployment import llm_config_for
    from spillover.config import load_config

    config = load_config(None)
    llm = llm_config_for(config.models[0], config.ingress)
    kwargs = llm.engine_kwargs
    args = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", llm.model_loading_config.model_source,
            "--served-model-name", served_name, "--port", str(port), "--host", "127.0.0.1"]
    for key, value in kwargs.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is not False:
            args += [flag, str(value)]
    return args


def stop(process: subprocess.Popen[bytes]) -> None:
    terminate(process, 120)
    time.sleep(3)


def wait_ready(process: subprocess.Popen[bytes], port: int = PORT, model: str = MODEL) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=30,
                           json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
            if r.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError("server not ready")


async def one_request(client: httpx.AsyncClient, prompt: str, level_start: float) -> dict[str, float | int]:
    """One streamed request's raw row: when it started and ended (from its level's start), its
    time to first token and its output tokens."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "max_tokens": 128, "temperature": 0,
            "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
    tally = StreamTally()
    async with client.stream("POST", f"http://127.0.0.1:{PORT}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            tally.see(line)
    return {"started_s": round(tally.started - level_start, 6), "done_s": round(time.perf_counter() - level_start, 6), **tally.row()}


class StreamTally:
    """What a streamed answer's SSE lines say as they arrive: the time to the first content chunk
    (from the tally's creation) and the completion tokens of the usage chunk."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.ttft_s: float | None = None
        self.tokens = 0

    def see(self, line: str) -> None:
        if not line.startswith("data: {"):
            return
        chunk = json.loads(line[6:])
        if self.ttft_s is None and chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
            self.ttft_s = time.perf_counter() - self.started
        if chunk.get("usage"):
            self.tokens = chunk["usage"]["completion_tokens"]

    def row(self) -> dict[str, float | int | None]:
        return {"ttft_s": round(self.ttft_s, 6) if self.ttft_s is not None else None, "tokens": self.tokens}


async def run_level(prompts: list[str], concurrency: int) -> list[dict[str, float | int]]:
    """Every prompt through ``concurrency`` closed-loop workers; each request's raw row."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for p in prompts:
        queue.put_nowait(p)
    outcomes: list[dict[str, float | int]] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            outcomes.append(await one_request(client, queue.get_nowait(), level_start))

    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency)) as client:
        level_start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return outcomes


def level_summary(outcomes: list[dict]) -> dict[str, float]:
    """A level's figures from its raw rows: output tokens over the level's wall time, TTFT p50/p99."""
    ttfts = sorted(o["ttft_s"] if o["ttft_s"] is not None else float("nan") for o in outcomes)
    return {
        "tokens_per_s": sum(o["tokens"] for o in outcomes) / max(o["done_s"] for o in outcomes),
        "ttft_p50_ms": 1000 * statistics.median(ttfts),
        "ttft_p99_ms": 1000 * ttfts[min(len(ttfts) - 1, int(0.99 * len(ttfts)))],
    }


def ingress_overhead_buckets() -> list[tuple[float, float]]:
    """The ingress's own-time histogram (cumulative counts by upper bound), from /metrics."""
    text = httpx.get(f"http://127.0.0.1:{PORT}/metrics").text
    return [(float(le), float(v)) for le, v in re.findall(r'spillover_ingress_overhead_seconds_bucket\{api="chat",le="([^"]+)"\} (\S+)', text)]


def ingress_overhead_ms(buckets: list[list[float]]) -> dict[str, float]:
    """p50/p99 (upper bucket bounds) and count of the ingress's own time."""
    total = buckets[-1][1] if buckets else 0.0

    def quantile(q: float) -> float:
        for le, count in buckets:
            if count >= q * total:
                return le * 1000
        return float("inf")

    return {"ingress_p50_ms_le": quantile(0.5), "ingress_p99_ms_le": quantile(0.99), "ingress_count": total}


def derive(header: dict, rows: list[dict]) -> dict[str, object]:
    """Every figure from the raw file: per setup, level and round the level's summary, then
    medians over rounds; the ingress's own time from each round's histogram."""
    by_run: dict[tuple[str, int, int], list[dict]] = {}
    for row in rows:
        by_run.setdefault((row["setup"], row["level"], row["round"]), []).append(row)
    med: dict[tuple[str, int], dict[str, float]] = {}
    for level in LEVELS:
        for setup in SETUPS:
            results = [level_summary(by_run[setup, level, round_]) for round_ in range(header["rounds"])]
            med[setup, level] = {k: median([r[k] for r in results]) for k in results[0]}
    overhead = [ingress_overhead_ms(b) for b in header["ingress_buckets"]]
    ingress = {k: median([o[k] for o in overhead]) for k in overhead[0]}
    return {
        "rounds": header["rounds"],
        "tokens_per_s_ratio": round(med[("spillover", 16)]["tokens_per_s"] / med[("ray_serve_llm", 16)]["tokens_per_s"], 3),
        "added_ttft_p50_ms": round(med[("spillover", 1)]["ttft_p50_ms"] - med[("ray_serve_llm", 1)]["ttft_p50_ms"], 1),
        "ray_vs_direct_tokens_ratio": round(med[("ray_serve_llm", 16)]["tokens_per_s"] / med[("vllm", 16)]["tokens_per_s"], 3),
        "ray_vs_direct_ttft_p50_ms": round(med[("ray_serve_llm", 1)]["ttft_p50_ms"] - med[("vllm", 1)]["ttft_p50_ms"], 1),
        "ingress_overhead_p50_ms_le": ingress["ingress_p50_ms_le"],
        "ingress_overhead_p99_ms_le": ingress["ingress_p99_ms_le"],
        "by_setup": {f"{s}@c{level}": v for (s, level), v in med.items()},
    }


def summary_table(figures: dict) -> str:
    rows = []
    for level in LEVELS:
        for setup in SETUPS:
            m = figures["by_setup"][f"{setup}@c{level}"]
            rows.append((setup, level, figures["rounds"], m["tokens_per_s"], m["ttft_p50_ms"], m["ttft_p99_ms"]))
    return table(["setup", "concurrency", "rounds", "tokens/s", "TTFT p50 ms", "TTFT p99 ms"], rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    add_provenance_arguments(parser)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--prompts-c1", type=int, default=16, help="fewer at concurrency 1: one stream is slow on a CPU")
    add_recompute_arguments(parser)
    args = parser.parse_args()
    recompute_if_asked(args, NAME, derive, summary_table)
    refuse_dirty_tree(args.allow_dirty)
    prompts = load_prompts(args.prompts)
    header: dict = {"rounds": args.rounds, "prompts": args.prompts, "prompts_c1": args.prompts_c1, "ingress_buckets": []}
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for setup in SETUPS:
                process = start(setup, Path(tmp))
                try:
                    wait_ready(process)
                    for level in LEVELS:
                        chosen = prompts[: args.prompts_c1] if level == 1 else prompts
                        outcomes = asyncio.run(run_level(chosen, level))
                        rows += [{"setup": setup, "round": round_, "level": level, **o} for o in outcomes]
                        print(f"round {round_ + 1} {setup} c={level}: {level_summary(outcomes)}", flush=True)
                    if setup == "spillover":
                        header["ingress_buckets"].append(ingress_overhead_buckets())
                finally:
                    stop(process)
    figures = derive(header, rows)
    text = summary_table(figures)
    print(text)
    note = (
        f"Workload: {args.prompts} Arena-Hard prompts cut to 256 tokens ({args.prompts_c1} at concurrency 1), "
        f"max_tokens=128, ignore_eos, temperature 0, streamed; {args.rounds} rounds in the order ABC, medians. "
        f"spillover ÷ Ray Serve LLM tokens/s at c=16: {figures['tokens_per_s_ratio']}; added TTFT p50 at c=1: "
        f"{figures['added_ttft_p50_ms']} ms. Ray Serve LLM ÷ direct vLLM tokens/s at c=16: "
        f"{figures['ray_vs_direct_tokens_ratio']} (the platform's cost); its added TTFT p50 at c=1: "
        f"{figures['ray_vs_direct_ttft_p50_ms']} ms. spillover's ingress own time (received → dispatched, "
        f"server-side histogram): p50 ≤ {figures['ingress_overhead_p50_ms_le']} ms, p99 ≤ {figures['ingress_overhead_p99_ms_le']} ms."
    )
    record(NAME, "Serving: spillover vs Ray Serve LLM vs vLLM direct", figures, text + "\n\n" + note, merge=False,
           allow_dirty=args.allow_dirty, raw=(header, rows))


if __name__ == "__main__":
    main()
