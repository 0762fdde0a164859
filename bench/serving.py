"""Serving throughput and TTFT: spillover vs Ray Serve LLM's own app vs vLLM's own server.

This host's speed drifts by tens of percent within minutes, so setups measured one after another
compare the minutes, not the setups. Here every setup is up at once, each on its own port
(``spillover``: every optional stage off, no embedding deployment; ``ray_serve_llm``:
``build_openai_app`` with the same ``LLMConfig``; ``vllm``: ``python -m
vllm.entrypoints.openai.api_server`` with the same engine arguments), and the measurement is a
run of short slices: in each, every setup in turn gets at most ``--slice-s`` seconds (60) of
load, the order rotated from slice to slice. The headline ratios are taken per slice, between
setups measured within a minute or two of each other, and reported as their median with the
spread (min, max) over the slices. Pinned as ../shared/DESIGN.md says: each engine's compute
thread and engine-core process on core 0, everything else (Ray, the ingresses, this load) on
core 1; only the setup under load computes, the others idle.

Workload per setup and slice: Arena-Hard prompts cut to 256 tokens, ``max_tokens=128``,
``ignore_eos``, temperature 0, streamed; ``--prompts`` at concurrency 16 (output tokens/s) then
``--prompts-c1`` at concurrency 1 (TTFT p50/p99, client side); no new request starts after the
setup's slice time. For spillover, the ingress's own time from its
``spillover_ingress_overhead_seconds`` histogram over all slices. It refuses to start while the
machine is busy (bench._common.heavy_neighbours; ``--allow-busy`` goes on and the record says
so) and records the load average at every slice. Every request is a raw row in
``bench/results/serving.raw.jsonl.gz``; every figure is derived from that file by :func:`derive`,
live or with ``--recompute``.

    python bench/serving.py [--slices 5] [--slice-s 60] [--setups spillover ray_serve_llm vllm] [--prompts 32]
        [--prompts-c1 4] [--allow-dirty] [--allow-busy] [--no-record]
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
    add_busy_arguments,
    add_provenance_arguments,
    median,
    add_recompute_arguments,
    publish,
    recompute_if_asked,
    refuse_busy_machine,
    refuse_dirty_tree,
    table,
    terminate,
)
from bench.cores import ENGINE_CORE, SHARED_CORE, pin_engine_processes  # noqa: E402

PORT = 8000
MODEL = "smollm2-135m-instruct"
PROMPTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "prompts" / "arena_hard_questions.jsonl"
#: Concurrency 16 for output tokens/s, 1 for TTFT: the two headline figures.
LEVELS = (16, 1)
SETUPS = ("spillover", "ray_serve_llm", "vllm")
#: Each setup's own port, so all are up at once.
PORTS = {"spillover": PORT, "ray_serve_llm": PORT + 1, "vllm": PORT + 2}
NAME = "serving"
#: Goals of the issue: spillover's tokens/s against Ray Serve LLM's, and its added TTFT p50.
GOAL_RATIO, GOAL_ADDED_TTFT_MS = 0.95, 5.0


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


def start(setup: str, workdir: Path, model_overrides: dict | None = None, port: int = PORT, pinned: bool = False) -> subprocess.Popen[bytes]:
    """``setup``'s server on ``port``; ``pinned``: on the shared core, its engine's compute thread
    bound to the engine's core (the engine-core process joins it: :func:`pin`)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    if pinned:
        env["VLLM_CPU_OMP_THREADS_BIND"] = str(ENGINE_CORE)
    if setup == "spillover":
        config = workdir / f"spillover-{port}.yaml"
        model = {"name": MODEL, "source": f"builtin:{MODEL}", "tool_call_parser": "hermes", **(model_overrides or {})}
        if pinned:
            model["engine_env"] = {"VLLM_CPU_OMP_THREADS_BIND": str(ENGINE_CORE), **model.get("engine_env", {})}
        # Every optional stage off: the cache would answer repeated prompts (temperature 0, same prompts).
        config.write_text(json.dumps({"server": {"port": port}, "models": [model], "embeddings": [], "cache": {"enabled": False},
                                      "costs": {"ledger": False}}))
        args = [sys.executable, "-m", "spillover.cli", "serve", "--config", str(config)]
    elif setup == "ray_serve_llm":
        args = [sys.executable, "-c", RAY_SERVE_LLM_PEER, str(port)]
    else:
        args = vllm_args(port)
        env |= {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    if pinned:
        args = ["taskset", "-c", str(SHARED_CORE), *args]
    log = (workdir / f"{setup}-{port}.log").open("w")
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
    deadline = time.monotonic() + 900
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


async def one_request(client: httpx.AsyncClient, prompt: str, level_start: float, port: int = PORT) -> dict[str, float | int]:
    """One streamed request's raw row: when it started and ended (from its level's start), its
    time to first token and its output tokens."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "max_tokens": 128, "temperature": 0,
            "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
    tally = StreamTally()
    async with client.stream("POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body) as response:
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


async def run_level(prompts: list[str], concurrency: int, port: int = PORT, deadline: float | None = None) -> list[dict[str, float | int]]:
    """The prompts through ``concurrency`` closed-loop workers, none started after ``deadline``
    (``time.perf_counter()``) but each worker's first, so a level always has rows to summarise;
    each finished request's raw row."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for p in prompts:
        queue.put_nowait(p)
    outcomes: list[dict[str, float | int]] = []

    async def worker(client: httpx.AsyncClient) -> None:
        first = True
        while not queue.empty() and (first or deadline is None or time.perf_counter() < deadline):
            first = False
            outcomes.append(await one_request(client, queue.get_nowait(), level_start, port))

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


def ingress_overhead_buckets(port: int = PORT) -> list[tuple[float, float]]:
    """The ingress's own-time histogram (cumulative counts by upper bound), from /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
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


def slice_order(setups: tuple[str, ...], slice_: int) -> list[str]:
    """The setups in slice ``slice_``'s order: rotated by one each slice, so none is always first."""
    return [setups[(slice_ + i) % len(setups)] for i in range(len(setups))]


def spread(values: list[float], digits: int) -> dict[str, object]:
    """A per-slice figure's median, its range and every slice's value."""
    return {"median": round(median(values), digits), "min": round(min(values), digits), "max": round(max(values), digits),
            "by_slice": [round(v, digits) for v in values]}


def derive(header: dict, rows: list[dict]) -> dict[str, object]:
    """Every figure from the raw file: per setup, level and slice the level's summary; the
    headline ratios per slice (spillover against Ray Serve LLM measured in the same slice), then
    their median and range; the ingress's own time from its histogram's growth over the slices."""
    setups, slices = tuple(header["setups"]), header["slices"]
    by_run: dict[tuple[str, int, int], list[dict]] = {}
    for row in rows:
        by_run.setdefault((row["setup"], row["level"], row["slice"]), []).append(row)
    summary = {(s, level, k): level_summary(by_run[s, level, k]) for s in setups for level in LEVELS for k in range(slices)}

    def per_slice(figure: str, level: int, a: str, b: str, ratio: bool) -> list[float]:
        pairs = [(summary[a, level, k][figure], summary[b, level, k][figure]) for k in range(slices)]
        return [x / y if ratio else x - y for x, y in pairs]

    tokens_ratio = per_slice("tokens_per_s", 16, "spillover", "ray_serve_llm", True)
    added_ttft = per_slice("ttft_p50_ms", 1, "spillover", "ray_serve_llm", False)
    figures: dict[str, object] = {
        "rounds": slices,
        "slices": slices,
        "slice_s": header["slice_s"],
        "setups": list(setups),
        "tokens_per_s_ratio": round(median(tokens_ratio), 3),
        "tokens_per_s_ratio_spread": spread(tokens_ratio, 3),
        "added_ttft_p50_ms": round(median(added_ttft), 1),
        "added_ttft_p50_ms_spread": spread(added_ttft, 1),
        "goal_met": {"tokens_per_s_ratio": median(tokens_ratio) >= GOAL_RATIO, "added_ttft_p50": median(added_ttft) <= GOAL_ADDED_TTFT_MS,
                     "five_slices": slices >= 5},
        "busy_at_start": header["busy"]["busy_at_start"],
        "allow_busy": header["busy"]["allow_busy"],
        "load_average_by_slice": [s["load_average"] for s in header["slice_log"]],
        "by_setup": {f"{s}@c{level}": {k: round(median([summary[s, level, j][k] for j in range(slices)]), 3) for k in summary[s, level, 0]}
                     for s in setups for level in LEVELS},
    }
    if "vllm" in setups:
        ray_ratio = per_slice("tokens_per_s", 16, "ray_serve_llm", "vllm", True)
        ray_ttft = per_slice("ttft_p50_ms", 1, "ray_serve_llm", "vllm", False)
        figures |= {"ray_vs_direct_tokens_ratio": round(median(ray_ratio), 3), "ray_vs_direct_tokens_ratio_spread": spread(ray_ratio, 3),
                    "ray_vs_direct_ttft_p50_ms": round(median(ray_ttft), 1), "ray_vs_direct_ttft_p50_ms_spread": spread(ray_ttft, 1)}
    snapshots = header["ingress_buckets"]
    if len(snapshots) >= 2:  # the histogram's growth from before the first slice to after the last
        first = dict((le, count) for le, count in snapshots[0])
        grown = [[le, count - first.get(le, 0.0)] for le, count in snapshots[-1]]
        ingress = ingress_overhead_ms(grown)
        figures |= {"ingress_overhead_p50_ms_le": ingress["ingress_p50_ms_le"], "ingress_overhead_p99_ms_le": ingress["ingress_p99_ms_le"]}
    return figures


def summary_table(figures: dict) -> str:
    rows = [(setup, level, figures["slices"], m["tokens_per_s"], m["ttft_p50_ms"], m["ttft_p99_ms"])
            for level in LEVELS for setup in figures["setups"] for m in [figures["by_setup"][f"{setup}@c{level}"]]]
    text = table(["setup", "concurrency", "slices", "tokens/s (median)", "TTFT p50 ms", "TTFT p99 ms"], rows)
    ratio, ttft = figures["tokens_per_s_ratio_spread"], figures["added_ttft_p50_ms_spread"]
    if figures["busy_at_start"]:
        text += f"\n\nMEASURED ON A BUSY MACHINE (--allow-busy): {'; '.join(figures['busy_at_start'])}."
    return text + (
        f"\n\nPer slice, spillover against Ray Serve LLM in the same slice: tokens/s at c=16 ×{ratio['median']} "
        f"(range {ratio['min']}–{ratio['max']}; goal ≥ {GOAL_RATIO}), added TTFT p50 at c=1 {ttft['median']} ms "
        f"(range {ttft['min']} to {ttft['max']}; goal ≤ {GOAL_ADDED_TTFT_MS:g}) over {figures['slices']} slices."
    )


def bring_up(setups: tuple[str, ...], workdir: Path) -> dict[str, subprocess.Popen[bytes]]:
    """Every setup up, one after another (start-up is CPU-heavy), pinned, each on its own port."""
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for setup in setups:
            processes[setup] = start(setup, workdir, port=PORTS[setup], pinned=True)
            wait_ready(processes[setup], PORTS[setup])
            print(f"{setup} up on port {PORTS[setup]}; engine-core processes pinned: {len(pin_engine_processes(processes[setup].pid))}",
                  flush=True)
    except BaseException:
        for process in processes.values():
            stop(process)
        raise
    return processes


def measure(setups: tuple[str, ...], args: argparse.Namespace, prompts: list[str], header: dict) -> list[dict]:
    """Warm every setup, then ``args.slices`` slices: each setup in the slice's order for at most
    ``args.slice_s`` seconds (c=16, then c=1)."""
    rows: list[dict] = []
    os.sched_setaffinity(0, {SHARED_CORE})  # the load generator shares core 1 with Ray and the ingresses
    for setup in setups:
        asyncio.run(run_level(prompts[:4], 4, PORTS[setup]))
    if "spillover" in setups:
        header["ingress_buckets"].append(ingress_overhead_buckets(PORTS["spillover"]))
    for slice_ in range(args.slices):
        order = slice_order(setups, slice_)
        header["slice_log"].append({"order": order, "load_average": [round(x, 2) for x in os.getloadavg()]})
        for setup in order:
            deadline = time.perf_counter() + args.slice_s
            for level in LEVELS:
                chosen = prompts[: args.prompts_c1] if level == 1 else prompts
                outcomes = asyncio.run(run_level(chosen, level, PORTS[setup], deadline))
                rows += [{"setup": setup, "slice": slice_, "level": level, **o} for o in outcomes]
                print(f"slice {slice_ + 1} {setup} c={level}: {len(outcomes)} requests {level_summary(outcomes)}", flush=True)
        header["slice_log"][-1]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        if "spillover" in setups:
            header["ingress_buckets"].append(ingress_overhead_buckets(PORTS["spillover"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    add_provenance_arguments(parser)
    add_busy_arguments(parser)
    parser.add_argument("--slices", type=int, default=5)
    parser.add_argument("--slice-s", type=float, default=60.0, help="the most seconds of load each setup gets per slice")
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=SETUPS)
    parser.add_argument("--prompts", type=int, default=32, help="at concurrency 16")
    parser.add_argument("--prompts-c1", type=int, default=4, help="at concurrency 1: one stream is slow on a CPU")
    parser.add_argument("--no-record", action="store_true", help="print the figures only")
    add_recompute_arguments(parser)
    args = parser.parse_args()
    recompute_if_asked(args, NAME, derive, summary_table)
    setups = tuple(s for s in SETUPS if s in args.setups)
    if not {"spillover", "ray_serve_llm"} <= set(setups):
        parser.error("--setups needs spillover and ray_serve_llm: the headline compares them")
    refuse_dirty_tree(args.allow_dirty)
    busy = refuse_busy_machine(args.allow_busy, args.wait_quiet_s)
    prompts = load_prompts(args.prompts)
    header: dict = {"setups": list(setups), "slices": args.slices, "slice_s": args.slice_s, "prompts": args.prompts,
                    "prompts_c1": args.prompts_c1, "busy": busy, "slice_log": [], "ingress_buckets": []}
    with tempfile.TemporaryDirectory() as tmp:
        processes = bring_up(setups, Path(tmp))
        try:
            rows = measure(setups, args, prompts, header)
        finally:
            for process in processes.values():
                stop(process)
    publish(args, NAME, "Serving: spillover vs Ray Serve LLM vs vLLM direct, interleaved slices", header, rows, derive, summary_table)


if __name__ == "__main__":
    main()
