"""Does Ray Serve LLM's stream batching interval set spillover's TTFT at concurrency 1?

The serving benchmark found spillover's TTFT p50 either equal to Ray Serve LLM's or 50 ms above
it, and 50 ms is Ray Serve LLM's default stream batching interval. This runs spillover alone at
concurrency 1 (the serving benchmark's prompts and settings) with the default interval and with
shorter ones, alternating, and reports TTFT p50/p99 and tokens/s per setting (medians over rounds).

Every request is a raw row in ``bench/results/stream_batching.raw.jsonl.gz``; ``--recompute``
rebuilds every figure from it.

    python bench/stream_batching.py [--rounds 2] [--intervals 50,10] [--allow-dirty]
    python bench/stream_batching.py --recompute [RAW]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._common import add_provenance_arguments, median, add_recompute_arguments, recompute_if_asked, record, refuse_dirty_tree, table  # noqa: E402
from bench.serving import level_summary, load_prompts, run_level, start, stop, wait_ready  # noqa: E402


NAME = "stream_batching"


def derive(header: dict, rows: list[dict]) -> dict[str, object]:
    """Every figure from the raw file: per interval and round the level's summary, medians over rounds."""
    med = {}
    for interval in header["intervals"]:
        results = [level_summary([r for r in rows if r["interval_ms"] == interval and r["round"] == k]) for k in range(header["rounds"])]
        med[f"{interval:g}"] = {k: median([r[k] for r in results]) for k in results[0]}
    return {"rounds": header["rounds"], "by_interval": med, **{f"ttft_p50_ms@{i}": round(m["ttft_p50_ms"], 1) for i, m in med.items()}}


def summary_table(figures: dict) -> str:
    rows = [(i, figures["rounds"], m["tokens_per_s"], m["ttft_p50_ms"], m["ttft_p99_ms"]) for i, m in figures["by_interval"].items()]
    return table(["stream_batching_interval_ms", "rounds", "tokens/s", "TTFT p50 ms", "TTFT p99 ms"], rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    add_provenance_arguments(parser)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--intervals", default="50,10", help="stream_batching_interval_ms values; 50 is Ray's default")
    add_recompute_arguments(parser)
    args = parser.parse_args()
    recompute_if_asked(args, NAME, derive, summary_table)
    refuse_dirty_tree(args.allow_dirty)
    intervals = [float(v) for v in args.intervals.split(",")]
    prompts = load_prompts(args.prompts)
    header = {"rounds": args.rounds, "prompts": args.prompts, "intervals": intervals}
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for interval in intervals:
                process = start("spillover", Path(tmp), {"stream_batching_interval_ms": interval})
                try:
                    wait_ready(process)
                    outcomes = asyncio.run(run_level(prompts, 1))
                finally:
                    stop(process)
                rows += [{"interval_ms": interval, "round": round_, **o} for o in outcomes]
                print(f"round {round_ + 1} interval {interval} ms: {level_summary(outcomes)}", flush=True)
    figures = derive(header, rows)
    text = summary_table(figures)
    print(text)
    note = (
        f"spillover alone, concurrency 1, {args.prompts} Arena-Hard prompts cut to 256 tokens, max_tokens=128, "
        f"ignore_eos; {args.rounds} rounds alternating the settings; medians. The peer here is spillover at Ray's "
        f"default interval ({intervals[0]:g} ms, TTFT p50 {figures['by_interval'][f'{intervals[0]:g}']['ttft_p50_ms']:.0f} ms)."
    )
    record(NAME, "Stream batching interval vs TTFT at concurrency 1 (spillover)", figures, text + "\n\n" + note, merge=False,
           allow_dirty=args.allow_dirty, raw=(header, rows))


if __name__ == "__main__":
    main()
