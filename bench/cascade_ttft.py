"""What a buffered stream costs on a cascade route: time to first token, streamed straight from the
local model against streamed through a cascade that checks the local answer first.

spillover serves the embedded SmolLM2 (vLLM on CPU behind Ray Serve) as route ``smollm2`` and a
routed name ``cascade`` whose candidates are the same local model (cheap) and a hosted one, the
latency-model stand-in of :mod:`bench.hosted_standin` (strong; asked only when a check fails).
The cascade checks ``not_truncated`` and ``not_refusal``: a stream on it waits for the whole local
answer and its checks before its first byte. Requests go one at a time (concurrency 1), in
slices that alternate which setup goes first; each request gets a prompt of its own (no prefix
cache hit from its twin). Cache and ledger are off.

Figures per setup: TTFT p50/p90, whole-response time p50, output tokens p50; per slice the ratio
of the two setups' TTFT medians (median and range over slices); the share of cascade requests
that escalated (their TTFT is the stand-in's after the whole local answer). Every request is a
raw row in ``bench/results/cascade_ttft.raw.jsonl.gz``; ``--recompute`` rebuilds every figure.

    python bench/cascade_ttft.py [--slices 6] [--per-slice 4]
    python bench/cascade_ttft.py --recompute [RAW]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import (  # noqa: E402
    REPO,
    add_provenance_arguments,
    add_recompute_arguments,
    publish,
    median,
    recompute_if_asked,
    refuse_dirty_tree,
    table,
    terminate,
)
from bench.serving import MODEL, PORT, StreamTally, load_prompts, wait_ready  # noqa: E402

NAME = "cascade_ttft"
TITLE = "Cascade routing: the time-to-first-token cost of a buffered stream"
HOSTED_PORT = 8101
MAX_TOKENS = 256
SETUPS = {"direct": MODEL, "cascade": "cascade"}


def config(workdir: Path) -> Path:
    path = workdir / "spillover.yaml"
    path.write_text(json.dumps({
        "models": [{"name": MODEL, "source": f"builtin:{MODEL}"}],
        "embeddings": [],
        "cache": {"enabled": False},
        "costs": {"ledger": False},
        "providers": [{"name": "standin", "kind": "openai", "base_url": f"http://127.0.0.1:{HOSTED_PORT}/v1",
                       "models": {"strong": "hosted-strong"}}],
        "routes": {
            MODEL: {"ttft_target_s": 600, "allow_hosted": False},
            "strong": {"hosted": [{"provider": "standin"}]},
            "cascade": {"routing": {"candidates": [MODEL, "strong"], "cascade": {"checks": ["not_truncated", "not_refusal"]}}},
        },
    }))
    return path


def one(client: httpx.Client, model: str, prompt: str) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": MAX_TOKENS, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    tally = StreamTally()
    with client.stream("POST", f"http://127.0.0.1:{PORT}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        served = response.headers.get("x-spillover-model", model)
        for line in response.iter_lines():
            tally.see(line)
    return {**tally.row(), "total_s": round(time.perf_counter() - tally.started, 6), "served": served}


def _p(values: list[float], q: float) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000, 1) if len(values) > 1 else round(values[0] * 1000, 1)


def derive(header: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    figures: dict[str, Any] = {"slices": header["slices"], "per_slice": header["per_slice"], "max_tokens": header["max_tokens"]}
    for setup in SETUPS:
        mine = [r for r in rows if r["setup"] == setup and r["ttft_s"] is not None]
        figures[setup] = {"requests": len(mine), "ttft_p50_ms": _p([r["ttft_s"] for r in mine], 50),
                          "ttft_p90_ms": _p([r["ttft_s"] for r in mine], 90), "total_p50_ms": _p([r["total_s"] for r in mine], 50),
                          "tokens_p50": median([r["tokens"] for r in mine])}
    ratios = []
    for k in range(header["slices"]):
        by = {s: [r["ttft_s"] for r in rows if r["slice"] == k and r["setup"] == s and r["ttft_s"] is not None] for s in SETUPS}
        if all(by.values()):
            ratios.append(statistics.median(by["cascade"]) / statistics.median(by["direct"]))
    cascade = [r for r in rows if r["setup"] == "cascade"]
    figures["ttft_ratio_per_slice"] = {"median": round(median(ratios), 2), "min": round(min(ratios), 2), "max": round(max(ratios), 2)}
    figures["ttft_added_p50_ms"] = round(figures["cascade"]["ttft_p50_ms"] - figures["direct"]["ttft_p50_ms"], 1)
    figures["escalated_share"] = round(sum(r["served"] != MODEL for r in cascade) / len(cascade), 3)
    return figures


def report(figures: dict[str, Any]) -> str:
    text = table(["setup", "requests", "TTFT p50 ms", "TTFT p90 ms", "whole response p50 ms", "output tokens p50"],
                 [(s, f["requests"], f["ttft_p50_ms"], f["ttft_p90_ms"], f["total_p50_ms"], f["tokens_p50"])
                  for s, f in ((s, figures[s]) for s in SETUPS)])
    r = figures["ttft_ratio_per_slice"]
    return text + (f"\n\nCascade TTFT over direct TTFT, per slice: median {r['median']}x (range {r['min']}-{r['max']}x over "
                   f"{figures['slices']} slices of {figures['per_slice']} requests each); added p50 {figures['ttft_added_p50_ms']} ms; "
                   f"{figures['escalated_share']:.1%} of cascade requests escalated to the hosted stand-in. Concurrency 1, "
                   f"max_tokens {figures['max_tokens']}, temperature 0, SmolLM2-135M on 2 CPU cores.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_provenance_arguments(parser)
    parser.add_argument("--slices", type=int, default=6)
    parser.add_argument("--per-slice", type=int, default=4, help="requests per setup in each slice")
    add_recompute_arguments(parser)
    args = parser.parse_args()
    recompute_if_asked(args, NAME, derive, report)
    refuse_dirty_tree(args.allow_dirty)
    prompts = load_prompts(2 * args.slices * args.per_slice)
    rows: list[dict[str, Any]] = []
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        hosted = subprocess.Popen([sys.executable, str(REPO / "bench" / "hosted_standin.py"), "--port", str(HOSTED_PORT), "--model", "hosted-strong"],
                                  stdout=(workdir / "standin.log").open("w"), stderr=subprocess.STDOUT)
        server = subprocess.Popen([sys.executable, "-m", "spillover.cli", "serve", "--config", str(config(workdir))], env=env,
                                  stdout=(workdir / "spillover.log").open("w"), stderr=subprocess.STDOUT)
        try:
            wait_ready(server)
            with httpx.Client(timeout=600) as client:
                one(client, "cascade", "Say hi.")  # warm the routed path
                for k in range(args.slices):
                    order = list(SETUPS) if k % 2 == 0 else list(reversed(SETUPS))
                    for setup in order:
                        for j in range(args.per_slice):
                            index = (2 * k + order.index(setup)) * args.per_slice + j
                            rows.append({"slice": k, "setup": setup, "prompt": index, **one(client, SETUPS[setup], prompts[index])})
        finally:
            terminate(server, 120)
            terminate(hosted, 10)
    header = {"slices": args.slices, "per_slice": args.per_slice, "max_tokens": MAX_TOKENS, "model": MODEL}
    publish(args, NAME, TITLE, header, rows, derive, report)


if __name__ == "__main__":
    main()
