"""Fleet policies on the Azure code trace, simulated: what each costs to keep TTFT within 2 s.

``spillover simulate`` on the whole Azure LLM inference 2023 code trace (one hour, 8,819
requests) with the Llama 3 70B on 4x A100 preset, every policy in one run, fixed prices: the
hosted target at GPT-4o's list price, GPUs at $2.50/hour, a 4-minute cold start, a 2 s TTFT
target. Writes ``bench/results/autoscaler.json`` and ``bench/results/autoscaler.png``.

Then, in the same run, routing inside a fleet: fixed fleets of 2 and 3 replicas with spill-over
on, each request sent to the replica with the fewest prompt tokens not yet started (the live
router), with the fewest prompt tokens in flight (its predecessor), or with the fewest requests.

    python bench/autoscaler.py [--preset llama3-70b-a100x4] [--target-ongoing 8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from autoscaler.baselines import StaticFleet  # noqa: E402
from autoscaler.replay import GPT4O, add_arguments, preset_for, run  # noqa: E402
from autoscaler.simulator import ROUTERS, simulate  # noqa: E402
from autoscaler.trace import read_trace  # noqa: E402
from bench._common import RESULTS, add_provenance_arguments, record, refuse_dirty_tree, table  # noqa: E402

TRACE = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces" / "azure_llm_2023_code.csv"


def main() -> None:
    parser = argparse.ArgumentParser()
    add_provenance_arguments(parser)
    add_arguments(parser)
    args = parser.parse_args([str(TRACE), "--cold-start-s", "240", "--ttft-target-s", "2", "--gpu-usd-per-hour", "2.5", *sys.argv[1:]])
    refuse_dirty_tree(args.allow_dirty)
    RESULTS.mkdir(parents=True, exist_ok=True)
    args.plot = RESULTS / "autoscaler.png"
    results = run(args)
    figures = {name: r.figures() | {"label": r.policy} for name, r in results.items()}
    meeting = {n: f for n, f in figures.items() if f["slo_attainment"] >= 0.99}
    spill = figures["spillover"]
    cheapest_other = min((f["total_usd"] for n, f in meeting.items() if n != "spillover"), default=None)
    summary = {
        "preset": args.preset,
        "policies": figures,
        "spillover_vs_static_peak_cost": round(spill["total_usd"] / figures["static_peak"]["total_usd"], 3),
        "spillover_cheapest_meeting_target": cheapest_other is None or spill["total_usd"] < cheapest_other,
    }
    rows = [(f["label"], f["slo_attainment"], f["ttft_p50_s"], f["ttft_p99_s"], f["gpu_hours"], f["api_usd"], f["total_usd"], f["spilled_share"])
            for f in figures.values()]
    text = table(["policy", "slo_attainment", "ttft_p50_s", "ttft_p99_s", "gpu_hours", "api_usd", "total_usd", "spilled_share"], rows)
    note = (
        f"Trace: {TRACE.name} (all 8,819 requests, unscaled). Preset {args.preset}; hosted target at GPT-4o list "
        f"($2.50/$10 per M tokens, TTFT 1 s); GPUs $2.50/hour each; cold start 240 s; TTFT target 2 s; spillover "
        f"policy target {args.target_ongoing} ongoing requests per replica. spillover's total ÷ static peak's: "
        f"{summary['spillover_vs_static_peak_cost']}; cheapest of the policies meeting 99%: "
        f"{summary['spillover_cheapest_meeting_target']}. Plot: bench/results/autoscaler.png."
    )
    routing = routing_inside_a_fleet(args)
    summary["routing"] = routing
    routing_rows = [(key.split("/")[0], key.split("/")[1], f["slo_attainment"], f["ttft_p99_s"], f["spilled_share"], f["total_usd"])
                    for key, f in routing.items()]
    text += "\n\nRouting inside a fixed fleet, spill-over on:\n\n" + table(
        ["replicas", "router", "slo_attainment", "ttft_p99_s", "spilled_share", "total_usd"], routing_rows)
    print(text)
    record("autoscaler", "Autoscaler policies on the Azure code trace (simulated)", summary, text + "\n\n" + note, merge=False, allow_dirty=args.allow_dirty)


def routing_inside_a_fleet(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Fixed fleets with spill-over on, one run per router: what replica choice costs in target."""
    _, arrivals = read_trace(TRACE)
    preset = preset_for(args)
    out = {}
    for replicas in (2, 3):
        for router in ROUTERS:
            result = simulate(arrivals, preset, StaticFleet(replicas, spill=True), hosted=GPT4O, ttft_target_s=args.ttft_target_s,
                              gpu_usd_per_hour=args.gpu_usd_per_hour, router=router)
            out[f"{replicas}/{router}"] = result.figures()
    return out


if __name__ == "__main__":
    main()
