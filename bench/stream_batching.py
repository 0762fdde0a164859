"""Does Ray Serve LLM's stream batching interval set spillover's TTFT at concurrency 1?

The serving benchmark found spillover's TTFT p50 either equal to Ray Serve LLM's or 50 ms above
it, and 50 ms is Ray Serve LLM's default stream batching interval. This runs spillover alone at
concurrency 1 (the serving benchmark's prompts and settings) with the default interval and with
shorter ones, alternating, and reports TTFT p50/p99 and tokens/s per setting (medians over rounds).

    python bench/stream_batching.py [--rounds 2] [--intervals 50,10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import add_provenance_arguments, median, record, refuse_dirty_tree, table  # noqa: E402
from bench.serving import load_prompts, run_level, start, stop, wait_ready  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    add_provenance_arguments(parser)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--intervals", default="50,10", help="stream_batching_interval_ms values; 50 is Ray's default")
    args = parser.parse_args()
    refuse_dirty_tree(args.allow_dirty)
    intervals = [float(v) for v in args.intervals.split(",")]
    prompts = load_prompts(args.prompts)
    runs: dict[float, list[dict[str, float]]] = {i: [] for i in intervals}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for interval in intervals:
                process = start("spillover", Path(tmp), {"stream_batching_interval_ms": interval})
                try:
                    wait_ready(process)
                    result = asyncio.run(run_level(prompts, 1))
                finally:
                    stop(process)
                runs[interval].append(result)
                print(f"round {round_ + 1} interval {interval} ms: {result}", flush=True)
    med = {i: {k: median([r[k] for r in rs]) for k in rs[0]} for i, rs in runs.items()}
    rows = [(f"{i:g}", len(runs[i]), m["tokens_per_s"], m["ttft_p50_ms"], m["ttft_p99_ms"]) for i, m in med.items()]
    text = table(["stream_batching_interval_ms", "rounds", "tokens/s", "TTFT p50 ms", "TTFT p99 ms"], rows)
    print(text)
    base = med[intervals[0]]["ttft_p50_ms"]
    figures = {f"ttft_p50_ms@{i:g}": round(m["ttft_p50_ms"], 1) for i, m in med.items()}
    note = (
        f"spillover alone, concurrency 1, {args.prompts} Arena-Hard prompts cut to 256 tokens, max_tokens=128, "
        f"ignore_eos; {args.rounds} rounds alternating the settings; medians. The peer here is spillover at Ray's "
        f"default interval ({intervals[0]:g} ms, TTFT p50 {base:.0f} ms)."
    )
    record("stream_batching", "Stream batching interval vs TTFT at concurrency 1 (spillover)", figures, text + "\n\n" + note, allow_dirty=args.allow_dirty)


if __name__ == "__main__":
    main()
