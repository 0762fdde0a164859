"""Fleet policies on the Azure code and conversation traces, simulated: what each costs to keep TTFT within 2 s.

The whole hour of each Azure LLM inference 2023 trace (code: 8,819 requests; conversation:
19,366), unscaled, through ``autoscaler.simulator`` with the Llama 3 70B on 4x A100 preset (its
8k context limit), at cold starts of 60, 120, 240 and 600 s, fixed prices: GPUs at $2.50/hour,
the hosted target at GPT-4o's list price (cached input at half; the Azure traces do not say which
prompts share prefixes, so nothing is billed cached), its first-token time lognormal from the
LLMPerf measurement and its rate limit 800,000 tokens a minute (``autoscaler.replay.GPT4O``).

Every autoscaling policy starts with one ready replica and is warmed to its own steady state on
the trace's first 20 minutes, which are not counted (twice the longest cold start: a replica asked
for after an up window of one cold start serves one cold start later); every figure is of the
remaining ~38 minutes. A static fleet has all its replicas ready from the start; all-API has none. The baselines are tuned on the trace they are scored on (a
hindsight advantage, theirs alone): Ray Serve's policy over a grid of ``target_ongoing_requests``
and KEDA's over a grid of waiting-request thresholds, each reported at its cheapest setting meeting
99% within target and at its default; ``static_peak``, the smallest fixed fleet meeting it with
spill-over off; ``static_spill``, the cheapest fixed fleet meeting it with spill-over on. The
spillover policy's knobs come from the preset, the prices and the config alone; it runs with its
payback rule on (``spillover``), off (``spillover_no_payback``), with the arrival trend
projected one cold start ahead (``spillover_trend``), and, as a diagnostic added after a
no-record run of this bench showed a third replica held on the conversation trace, with the
scale-down band at 1 (``spillover_tight_band``: not the policy, and not chosen on any window;
the 20-minute preceding window could not tell it from the policy).

Raw outcomes: one line per simulation (trace, cold start, policy, setting), each request's TTFT
in ms (null: no first token), whether it went hosted and what that cost, and each replica's paid
span; ``derive`` rebuilds every figure from them.

    python bench/autoscaler.py [--no-record] [--recompute [RAW]]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from autoscaler.baselines import KedaQueue, RayServe  # noqa: E402
from autoscaler.replay import GPT4O, SLO, policy_for, preset_for, static_search  # noqa: E402
from autoscaler.simulator import SimResult, simulate  # noqa: E402
from autoscaler.trace import read_trace  # noqa: E402
from bench._common import (  # noqa: E402
    add_provenance_arguments,
    add_recompute_arguments,
    publish,
    recompute_if_asked,
    refuse_dirty_tree,
    table,
)

NAME = "autoscaler"
TITLE = "Autoscaler policies on the Azure code and conversation traces, every cold start (simulated)"
TRACES = {name: Path(__file__).resolve().parents[2] / "shared" / "data" / "traces" / f"azure_llm_2023_{name}.csv" for name in ("code", "conv")}
COLD_STARTS = (60, 120, 240, 600)
RAY_TARGETS = (2.0, 8.0, 32.0, 64.0, 128.0, 256.0)
KEDA_THRESHOLDS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)
SPILLOVER = ("spillover", "spillover_no_payback", "spillover_trend", "spillover_tight_band")
SETTINGS = {"preset": "llama3-70b-a100x4", "ttft_target_s": 2.0, "gpu_usd_per_hour": 2.5, "max_replicas": 64, "target_utilisation": 1.0,
            "min_replicas": 1, "warmup_s": 1200.0}
GOAL_VS_STATIC_PEAK = 0.6


def simulations(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every simulation the figures need, as raw rows."""
    rows = []
    for trace, path in TRACES.items():
        _, arrivals = read_trace(path)
        base = preset_for(args)
        common = {"hosted": GPT4O, "ttft_target_s": args.ttft_target_s, "gpu_usd_per_hour": args.gpu_usd_per_hour,
                  "measure_from_s": args.warmup_s}
        # Fixed fleets and all-API never start a replica: the cold start does not touch them.
        for family in ("static_peak", "static_spill"):
            for n, result in sorted(static_search(arrivals, base, args.max_replicas, common, spill=family == "static_spill").items()):
                rows.append(_row(trace, None, family, n, result, base.gpus_per_replica))
        rows.append(_row(trace, None, "all_api", None, simulate(arrivals, base, policy_for("all_api", args, base), **common), 0))
        for cold_start in COLD_STARTS:
            preset = dataclasses.replace(base, cold_start_s=float(cold_start))
            print(f"{trace}, cold start {cold_start} s ...", flush=True)
            for family in SPILLOVER:
                rows.append(_row(trace, cold_start, family, None, simulate(arrivals, preset, policy_for(family, args, preset), **common),
                                 preset.gpus_per_replica))
            for target in RAY_TARGETS:
                result = simulate(arrivals, preset, RayServe(args.max_replicas, target), **common)
                rows.append(_row(trace, cold_start, "ray_serve", target, result, preset.gpus_per_replica))
            for threshold in KEDA_THRESHOLDS:
                result = simulate(arrivals, preset, KedaQueue(args.max_replicas, threshold), **common)
                rows.append(_row(trace, cold_start, "keda_queue", threshold, result, preset.gpus_per_replica))
    return rows


def _row(trace: str, cold_start: int | None, family: str, setting: float | None, result: SimResult, gpus: int) -> dict[str, Any]:
    hosted = [usd for _, went, usd in result.outcomes if went]
    return {
        "trace": trace, "cold_start_s": cold_start, "family": family, "setting": setting, "gpus_per_replica": gpus,
        "ttft_ms": [None if t is None else round(t * 1000) for t, _, _ in result.outcomes],
        "hosted": "".join("1" if went else "0" for _, went, _ in result.outcomes),
        "hosted_micro_usd": [round(usd * 1e6) for usd in hosted],
        "paid_spans": [[round(a, 3), round(b, 3)] for a, b in result.paid_spans],
    }


def figures_of(row: dict[str, Any], header: dict[str, Any]) -> dict[str, Any]:
    """A simulation's figures from its raw row."""
    target_ms = header["ttft_target_s"] * 1000
    ttfts = sorted(math.inf if t is None else t for t in row["ttft_ms"])
    n = max(len(ttfts), 1)
    gpu_hours = sum(b - a for a, b in row["paid_spans"]) * row["gpus_per_replica"] / 3600
    api_usd = sum(row["hosted_micro_usd"]) / 1e6
    return {
        "slo_attainment": round(sum(1 for t in ttfts if t <= target_ms) / n, 4),
        "ttft_p50_s": round(ttfts[len(ttfts) // 2] / 1000, 3), "ttft_p99_s": round(ttfts[int(0.99 * (len(ttfts) - 1))] / 1000, 3),
        "gpu_hours": round(gpu_hours, 2), "api_usd": round(api_usd, 2), "total_usd": round(api_usd + gpu_hours * header["gpu_usd_per_hour"], 2),
        "spilled_share": round(row["hosted"].count("1") / n, 4), "peak_replicas": _peak(row["paid_spans"]),
    }


def _peak(spans: list[list[float]]) -> int:
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans], key=lambda e: (e[0], e[1]))
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def _cheapest(options: dict[str, dict[str, Any]]) -> str:
    """The cheapest setting meeting the target, else the one closest to it."""
    meeting = [k for k, f in options.items() if f["slo_attainment"] >= SLO]
    if meeting:
        return min(meeting, key=lambda k: options[k]["total_usd"])
    return max(options, key=lambda k: options[k]["slo_attainment"])


def _key(setting: float | None) -> str:
    return "none" if setting is None else f"{setting:g}"


def derive(header: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    by: dict[tuple[str, Any, str], dict[str, dict[str, Any]]] = {}
    for row in rows:
        by.setdefault((row["trace"], row["cold_start_s"], row["family"]), {})[_key(row["setting"])] = figures_of(row, header)
    traces: dict[str, Any] = {}
    for trace in header["traces"]:
        statics = {family: by[(trace, None, family)] for family in ("static_peak", "static_spill")}
        fixed: dict[str, dict[str, Any]] = {}
        for family, tried in statics.items():
            n = _cheapest(tried)
            fixed[family] = tried[n] | {"label": f"{family} ({n} replicas)", "setting": int(n)}
        fixed["all_api"] = by[(trace, None, "all_api")]["none"] | {"label": "all_api"}
        cold_starts = {}
        for cold_start in header["cold_starts"]:
            policies = {family: by[(trace, cold_start, family)]["none"] | {"label": family} for family in header["spillover_policies"]}
            grids = {}
            for family, knob, default in (("ray_serve", "target_ongoing_requests", header["ray_default"]),
                                          ("keda_queue", "waiting_threshold", header["keda_default"])):
                grid = by[(trace, cold_start, family)]
                grids[family] = grid
                best = _cheapest(grid)
                policies[f"{family}_tuned"] = grid[best] | {"label": f"{family} ({knob} {best})", "setting": float(best)}
                policies[f"{family}_default"] = grid[_key(default)] | {"label": f"{family} ({knob} {_key(default)}, default)",
                                                                         "setting": default}
            policies.update(fixed)
            spill = policies["spillover"]
            others = {k: f for k, f in policies.items() if k not in header["spillover_policies"] and f["slo_attainment"] >= SLO}
            cheapest_other = min(others, key=lambda k: others[k]["total_usd"]) if others else None
            cold_starts[str(cold_start)] = {
                "policies": policies, "grids": grids,
                "spillover_meets_target": spill["slo_attainment"] >= SLO,
                "cheapest_other_meeting_target": cheapest_other,
                "spillover_cheapest_meeting_target": spill["slo_attainment"] >= SLO and (
                    cheapest_other is None or spill["total_usd"] < others[cheapest_other]["total_usd"]),
                "spillover_vs_static_peak_cost": round(spill["total_usd"] / policies["static_peak"]["total_usd"], 3),
            }
        traces[trace] = {"cold_starts": cold_starts, "static_fleets_tried": statics}
    code = traces["code"]["cold_starts"]
    goals = {
        "spillover_cheapest_meeting_target_every_cold_start": all(
            traces[t]["cold_starts"][str(c)]["spillover_cheapest_meeting_target"] for t in traces for c in header["cold_starts"]),
        "code_spillover_at_most_0.6x_static_peak_every_cold_start": all(
            code[str(c)]["spillover_vs_static_peak_cost"] <= GOAL_VS_STATIC_PEAK for c in header["cold_starts"]),
    }
    return {"settings": {k: header[k] for k in ("preset", "ttft_target_s", "gpu_usd_per_hour", "hosted", "starting_fleet", "warmup_s")},
            "traces": traces, "cold_starts": code, "policies": code["240"]["policies"], "goals": goals}


def report_table(figures: dict[str, Any]) -> str:
    parts = []
    for trace, data in figures["traces"].items():
        rows = []
        for cold_start, at in data["cold_starts"].items():
            for f in at["policies"].values():
                rows.append((trace, cold_start, f["label"], f["slo_attainment"], f["ttft_p99_s"], f["gpu_hours"], f["api_usd"], f["total_usd"],
                             f["spilled_share"], f["peak_replicas"]))
        parts.append(table(["trace", "cold_start_s", "policy", "slo_attainment", "ttft_p99_s", "gpu_hours", "api_usd", "total_usd",
                            "spilled_share", "peak_replicas"], rows))
        summary = [(trace, c, at["spillover_meets_target"], at["cheapest_other_meeting_target"], at["spillover_cheapest_meeting_target"],
                    at["spillover_vs_static_peak_cost"]) for c, at in data["cold_starts"].items()]
        parts.append(table(["trace", "cold_start_s", "spillover_meets_99", "cheapest_other_meeting", "spillover_cheapest",
                            "spillover_vs_static_peak"], summary))
    parts.append(f"Goals: {figures['goals']}")
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_provenance_arguments(parser)
    parser.add_argument("--no-record", action="store_true", help="print the table; write nothing")
    add_recompute_arguments(parser)
    args = parser.parse_args()
    recompute_if_asked(args, NAME, derive, report_table)
    if not args.no_record:
        refuse_dirty_tree(args.allow_dirty)
    sim_args = argparse.Namespace(**SETTINGS, cold_start_s=None, ray_target=RayServe.DEFAULT_TARGET,
                                  keda_threshold=KedaQueue.DEFAULT_THRESHOLD, hosted_tpm=GPT4O.tokens_per_minute)
    header = {
        **SETTINGS, "traces": list(TRACES), "cold_starts": list(COLD_STARTS), "spillover_policies": list(SPILLOVER),
        "ray_default": RayServe.DEFAULT_TARGET, "keda_default": KedaQueue.DEFAULT_THRESHOLD,
        "ray_grid": list(RAY_TARGETS), "keda_grid": list(KEDA_THRESHOLDS),
        "hosted": {"input_usd_per_mtok": GPT4O.input_usd_per_mtok, "output_usd_per_mtok": GPT4O.output_usd_per_mtok,
                   "cached_input_usd_per_mtok": GPT4O.cached_input_usd_per_mtok, "ttft_lognormal_mu_sigma": list(GPT4O.ttft_lognormal or ()),
                   "tokens_per_minute": GPT4O.tokens_per_minute, "max_wait_s": GPT4O.max_wait_s},
        "starting_fleet": "every autoscaling policy starts with 1 ready replica at the trace's start and is warmed to its own steady "
                          "state on the first warmup_s, which is not counted; static fleets: all ready from the start; all_api: none",
    }
    publish(args, NAME, TITLE, header, simulations(sim_args), derive, report_table)


if __name__ == "__main__":
    main()
