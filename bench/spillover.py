"""Spill-over on a real trace: spillover vs queue-only vs falling back after a timeout.

Window: minutes 0-10 of the Azure LLM inference 2023 code trace (2023-11-16 18:17:03 to
18:27:03, 1,482 requests), token counts scaled by 1/16 (at least 16), arrivals compressed so
the offered load is 1.5x the local replica's capacity at the TTFT target (closed-loop probes
measure it first: see :mod:`bench.spill_probe`).
The local engine's compute threads are pinned to core 0 (Ray's proxy and the ingress float: pinned
beside a spinning CPU engine they starve, and every request, spilled or not, passes them), the
hosted stand-in (vLLM's own server with the same model) to core 1. TTFT target: 2x the unloaded
local TTFT p50 for the window's median scaled prompt. All three setups replay the same arrivals:

* ``queue_only``: no hosted target: everything waits for the local replica.
* ``spillover``: the decision before dispatch (predicted local wait vs the target).
* ``error_fallback``: local first, then hosted when no first token came within the target (what
  LiteLLM's timeout fallback does), run as spillover's failover with ``local_start_timeout_s``.

``oracle_spilled_share`` is the fewest spills, in hindsight on the same arrivals, that keep every
kept request in target, on a first-come-first-served work model of the local engine calibrated
by the probe (see :func:`hindsight_spilled_share`).

    python bench/spillover.py [--load 1.5] [--window-start-s 0] [--window-s 600]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from autoscaler.baselines import SpilloverFleet, StaticFleet  # noqa: E402
from autoscaler.policy import PolicyConfig  # noqa: E402
from autoscaler.presets import PRESETS_DIR, ReplicaPreset  # noqa: E402
from autoscaler.simulator import HostedModel, simulate  # noqa: E402
from autoscaler.trace import Arrival, compress_time, read_trace, scale_tokens, window  # noqa: E402
from bench._common import REPO, machine, record, table  # noqa: E402
from bench.serving import MODEL, stop, vllm_args, wait_ready  # noqa: E402
from bench.spill_probe import DECODE_BATCH, PROBE_CONCURRENCY, SERVE_PORT, Outcome, calibrate, prompt_texts, send  # noqa: E402

TRACE = REPO.parent / "shared" / "data" / "traces" / "azure_llm_2023_code.csv"
HOSTED_PORT = 8100
HOSTED, HOSTED_MODEL = "hosted", "hosted-smollm2"
SETUPS = ("queue_only", "spillover", "error_fallback")
PRESET_FILE = PRESETS_DIR / "smollm2-135m-cpu-1core.yaml"


def serve_config(setup: str, target_s: float) -> dict:
    model = {"name": MODEL, "source": f"builtin:{MODEL}", "engine_env": {"VLLM_CPU_OMP_THREADS_BIND": "0"}}
    provider = {"name": HOSTED, "kind": "openai", "base_url": f"http://127.0.0.1:{HOSTED_PORT}/v1", "models": {MODEL: HOSTED_MODEL}}
    hosted = [] if setup == "queue_only" else [{"provider": HOSTED}]
    # error_fallback never spills by prediction; it only times out local work after the target.
    route_target = 1e6 if setup == "error_fallback" else target_s
    return {
        "server": {"port": SERVE_PORT},
        # queue_only's backlog waits at the ingress rather than failing at Serve's proxy.
        "ingress": {"max_ongoing_requests": 2048},
        "models": [model],
        "embeddings": [],
        "providers": [provider],
        "routes": {MODEL: {"ttft_target_s": route_target, "hosted": hosted}},
        "failover": {"local_start_timeout_s": target_s} if setup == "error_fallback" else {},
        # The trace's prompts repeat (cut from one text): only the spill-over decision is measured.
        "cache": {"enabled": False},
    }


def start_pinned(core: int | None, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """``args`` as a process; with ``core``, it and its vLLM compute threads stay on that core."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    env.pop("RAY_ADDRESS", None)
    if core is None:
        return subprocess.Popen(args, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    env["VLLM_CPU_OMP_THREADS_BIND"] = str(core)
    return subprocess.Popen(["taskset", "-c", str(core), *args], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


async def replay(arrivals: list[Arrival], prompts: list[str]) -> list[Outcome]:
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=httpx.Timeout(900, connect=30), limits=limits) as client:
        zero = time.perf_counter() + 0.5

        async def at(arrival: Arrival, prompt: str) -> Outcome:
            await asyncio.sleep(max(0.0, zero + arrival.at_s - time.perf_counter()))
            return await send(client, arrival, prompt)

        return list(await asyncio.gather(*(at(a, p) for a, p in zip(arrivals, prompts))))


def hindsight_spilled_share(arrivals: list[Arrival], target_s: float, prefill_tps: float, decode_tps: float, overhead_s: float) -> float:
    """Fewest spills that keep every kept request within target, greedily in hindsight.

    The local engine is modelled as one first-come-first-served server of work: a request's
    prefill takes ``prompt / prefill_tps``, its decoding ``output / decode_tps`` (the batched
    decode throughput), its first token comes ``overhead_s`` after its prefill. A later request
    never delays an earlier one, so keeping each request whose first token still fits, in
    arrival order, gives the fewest spills on this model. It is a model, not the engine: the
    figure is a yardstick, not a bound.
    """
    free_at, spilled = 0.0, 0
    for a in arrivals:
        start = max(free_at, a.at_s)
        prefill = a.prompt_tokens / prefill_tps
        if start - a.at_s + prefill + overhead_s > target_s:
            spilled += 1
            continue
        free_at = start + prefill + a.output_tokens / decode_tps
    return spilled / len(arrivals)


def summarise(outcomes: list[Outcome], target_s: float) -> dict[str, float]:
    ok = sorted(o.ttft_s for o in outcomes if o.ok and o.ttft_s is not None)
    local = [o for o in outcomes if o.destination == "local"]
    return {
        "slo_attainment": round(sum(1 for o in outcomes if o.ok and o.ttft_s <= target_s) / len(outcomes), 4),
        "ttft_p50_s": round(statistics.median(ok), 3) if ok else float("nan"),
        "ttft_p99_s": round(ok[min(len(ok) - 1, int(0.99 * len(ok)))], 3) if ok else float("nan"),
        "spilled_share": round(sum(1 for o in outcomes if o.destination not in ("local", "")) / len(outcomes), 4),
        "failed": sum(1 for o in outcomes if not o.ok),
        "local_missed_share": round(sum(1 for o in local if not o.ok or o.ttft_s > target_s) / max(1, len(local)), 4),
    }


def predictor_error(outcomes: list[Outcome]) -> dict[str, float]:
    """How the predicted local TTFT compared with the measured one, for requests kept local."""
    pairs = [(o.predicted_s, o.ttft_s) for o in outcomes if o.destination == "local" and o.predicted_s is not None and o.ttft_s]
    if not pairs:
        return {}
    errors = sorted(actual - predicted for predicted, actual in pairs)
    return {"median_error_s": round(statistics.median(errors), 3), "p90_abs_error_s": round(sorted(abs(e) for e in errors)[int(0.9 * len(errors))], 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--load", type=float, default=1.5, help="offered load as a multiple of the local capacity")
    parser.add_argument("--window-start-s", type=float, default=0.0)
    parser.add_argument("--window-s", type=float, default=600.0)
    parser.add_argument("--setups", default=",".join(SETUPS), help="comma-separated; queue_only (it probes capacity) and spillover are required")
    parser.add_argument("--results-name", default="spillover", help="write bench/results/NAME.json (another load is another result)")
    args = parser.parse_args()
    setups = [s for s in SETUPS if s in args.setups.split(",")]
    if not {"queue_only", "spillover"} <= set(setups):
        parser.error("--setups must include queue_only and spillover")
    trace_start, everything = read_trace(TRACE)
    raw = scale_tokens(window(everything, args.window_start_s, args.window_s), 1 / 16, 16)
    prompts = prompt_texts(raw)
    median_index = sorted(range(len(raw)), key=lambda i: raw[i].prompt_tokens)[len(raw) // 2]
    print(f"window: {trace_start} + {args.window_start_s:.0f}s for {args.window_s:.0f}s: {len(raw)} requests", flush=True)

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        hosted = start_pinned(1, vllm_args(HOSTED_PORT, HOSTED_MODEL), Path(tmp) / "hosted.log")
        try:
            wait_ready(hosted, HOSTED_PORT, HOSTED_MODEL)
            target_s, arrivals = 0.0, raw
            for setup in setups:
                config = Path(tmp) / f"{setup}.yaml"
                config.write_text(json.dumps(serve_config(setup, target_s or 1.0)))
                # Only the engine is pinned (its compute threads, by VLLM_CPU_OMP_THREADS_BIND in the
                # model's engine_env): Ray's proxy and the ingress must not queue behind it.
                process = start_pinned(None, [sys.executable, "-m", "spillover.cli", "serve", "--config", str(config)], Path(tmp) / f"{setup}.log")
                try:
                    wait_ready(process, SERVE_PORT)
                    if setup == "queue_only":  # its behaviour does not depend on the target: probe here
                        probe = asyncio.run(calibrate(raw, median_index))
                        target_s = probe["target_s"]
                        arrivals = compress_time(raw, args.load * probe["capacity_rps"] * args.window_s / len(raw))
                        print(f"probe: {probe}; replaying at {len(arrivals) / arrivals[-1].at_s:.2f} requests/s", flush=True)
                    outcomes = asyncio.run(replay(arrivals, prompts))
                    results[setup] = summarise(outcomes, target_s)
                    if setup == "spillover":
                        results[setup]["predictor"] = predictor_error(outcomes)
                        hosted_ttfts = [o.ttft_s for o in outcomes if o.ok and o.destination == HOSTED]
                        probe["hosted_ttft_p50_s"] = round(statistics.median(hosted_ttfts), 3) if hosted_ttfts else probe["target_s"] / 2
                    print(f"{setup}: {results[setup]}", flush=True)
                finally:
                    stop(process)
        finally:
            stop(hosted)
    report(args, trace_start, raw, arrivals, probe, results)


def cpu_preset(probe: dict) -> ReplicaPreset:
    """This machine's replica (one core) in the simulator's terms, from the probe's numbers."""
    return ReplicaPreset(
        name="smollm2-135m-cpu-1core", gpus_per_replica=0, step_overhead_s=probe["step_overhead_s"],
        prefill_tokens_per_s=probe["prefill_tokens_per_s"], decode_token_s=probe["decode_token_s"],
        request_overhead_s=probe["request_overhead_s"], max_num_seqs=256, max_batched_tokens=2048,
        # VLLM_CPU_KVCACHE_SPACE=1 GiB; SmolLM2-135M keeps 30 layers x 3 KV heads x 64 dims x 2 x 2 bytes per token.
        kv_capacity_tokens=2**30 // (30 * 3 * 64 * 2 * 2), cold_start_s=50.0,
        sources=(f"Calibrated by bench/spillover.py on {machine()}, {time.strftime('%Y-%m-%d')}: inter-token time "
                 f"{probe['inter_token_s']} s alone and {probe[f'inter_token_s_at_{DECODE_BATCH}']} s at {DECODE_BATCH} streams, "
                 f"prefill {probe['prefill_tokens_per_s']} tokens/s (unloaded TTFT, longest vs shortest prompt), "
                 f"{probe['request_overhead_s']} s per request (the rest of the saturated loop's time per request).",),
    )


def simulated(arrivals: list[Arrival], probe: dict) -> dict[str, dict[str, float]]:
    """The queue_only and spillover setups replayed in the simulator with this machine's preset."""
    preset = cpu_preset(probe)
    PRESET_FILE.write_text(yaml.safe_dump({**asdict(preset), "sources": list(preset.sources)}, sort_keys=False))
    hosted = HostedModel(0.0, 0.0, ttft_s=probe["hosted_ttft_p50_s"])
    one = PolicyConfig(min_replicas=1, max_replicas=1)
    out = {}
    for setup, policy in (("queue_only", StaticFleet(1)), ("spillover", SpilloverFleet(one))):
        r = simulate(arrivals, preset, policy, hosted=hosted, ttft_target_s=probe["target_s"], gpu_usd_per_hour=0.0)
        out[setup] = {"slo_attainment": round(r.slo_attainment, 4), "ttft_p50_s": round(r.ttft_p50_s, 3), "spilled_share": round(r.spilled_share, 4)}
    return out


def report(args: argparse.Namespace, trace_start: object, raw: list[Arrival], arrivals: list[Arrival], probe: dict, results: dict) -> None:
    sim = simulated(arrivals, probe)
    oracle = hindsight_spilled_share(arrivals, probe["target_s"], probe["prefill_tokens_per_s"], probe["decode_tokens_per_s"], probe["overhead_s"])
    spill = results["spillover"]
    figures = {
        "window": f"{TRACE.name}: {trace_start} + {args.window_start_s:.0f}s, {args.window_s:.0f}s, {len(raw)} requests",
        "token_scale": "1/16, at least 16",
        "offered_load_x_capacity": args.load,
        "probe": probe,
        "oracle_spilled_share": round(oracle, 4),
        "false_keep_rate": spill["local_missed_share"],
        "spilled_vs_oracle": round(spill["spilled_share"] / oracle, 3) if oracle else None,
        "setups": results,
        "simulator_check": {s: {"live": {k: results[s][k] for k in ("slo_attainment", "ttft_p50_s", "spilled_share")}, "simulated": v}
                            for s, v in sim.items()},
    }
    rows = [(s, r["slo_attainment"], r["ttft_p50_s"], r["ttft_p99_s"], r["spilled_share"], r["failed"], r["local_missed_share"]) for s, r in results.items()]
    text = table(["setup", "slo_attainment", "ttft_p50_s", "ttft_p99_s", "spilled_share", "failed", "local_missed_share"], rows)
    print(text)
    print(json.dumps(figures, indent=2))
    note = (
        f"Window: {figures['window']}; tokens scaled 1/16 (at least 16); arrivals compressed to {args.load}x the local "
        f"capacity at the target, {probe['capacity_rps']} requests/s (closed loop at {probe['capacity_concurrency']} in flight, "
        f"the most whose TTFT p90 stayed in target; saturated at {PROBE_CONCURRENCY}: {probe['raw_capacity_rps']}). Local engine "
        f"threads on core 0 (Ray and the ingress unpinned), hosted stand-in (vLLM's own server, same model) on core 1. TTFT target {probe['target_s']} s = 2x the "
        f"unloaded p50 {probe['unloaded_ttft_p50_s']} s for the median scaled prompt. Oracle (fewest spills in hindsight, "
        f"FCFS work model, prefill {probe['prefill_tokens_per_s']} and decode {probe['decode_tokens_per_s']} tokens/s): "
        f"{figures['oracle_spilled_share']}; spillover spilled {spill['spilled_share']} ({figures['spilled_vs_oracle']}x the "
        f"oracle); false-keep rate {figures['false_keep_rate']}; predictor (measured minus predicted TTFT, kept requests): "
        f"{spill.get('predictor')}. Simulator with this machine's preset (autoscaler/presets/{PRESET_FILE.name}) on the "
        f"same arrivals: {json.dumps(figures['simulator_check'])}."
    )
    record(args.results_name, "Spill-over on the Azure code trace: spillover vs queue-only vs timeout fallback", figures, text + "\n\n" + note)


if __name__ == "__main__":
    main()
