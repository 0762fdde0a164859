"""``spillover simulate TRACE``: replay a trace through every fleet policy and compare costs.

Any trace in the Azure format; the same presets, policy and spill-over decision as the live
system. Prints a table, writes the figures as JSON and a PNG of load, replicas and spill.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from autoscaler.baselines import POLICIES, AllApi, KedaQueue, RayServe, SpilloverFleet, StaticFleet
from autoscaler.hosted import LLMPERF_TTFT, HostedModel
from autoscaler.policy import Payback, PolicyConfig, WorkCapacity
from autoscaler.presets import ReplicaPreset, load_preset
from autoscaler.simulator import FleetPolicy, SimResult, simulate
from autoscaler.trace import Arrival, read_trace

__all__ = ["GPT4O", "NAMES", "add_arguments", "policy_for", "preset_for", "run", "run_policies", "static_search", "cheapest_meeting"]

#: GPT-4o at list price per million tokens, cached input at half (../shared/data/prices, LiteLLM's
#: table); first-token times from the LLMPerf measurement (autoscaler.hosted); 800,000 tokens a
#: minute, OpenAI's published GPT-4o limit at usage tier 3 (5,000 requests a minute, not binding here).
GPT4O = HostedModel(input_usd_per_mtok=2.5, output_usd_per_mtok=10.0, cached_input_usd_per_mtok=1.25,
                    ttft_lognormal=LLMPERF_TTFT, tokens_per_minute=800_000, max_wait_s=30.0)

#: Every policy ``--policy`` takes: the default set, and spillover's variants the bench measures
#: (the payback rule off; the arrival trend projected one cold start ahead; the scale-down band
#: at 1, so a replica goes as soon as the fleet one smaller holds the demand).
NAMES = (*POLICIES, "spillover_no_payback", "spillover_trend", "spillover_tight_band")
SLO = 0.99


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", help="CSV in the Azure LLM inference format")
    parser.add_argument("--policy", default=",".join(POLICIES), help=f"comma-separated, from: {', '.join(NAMES)}")
    parser.add_argument("--preset", default="llama3-70b-a100x4", help="a name under autoscaler/presets or a YAML path")
    parser.add_argument("--ttft-target-s", type=float, default=2.0)
    parser.add_argument("--gpu-usd-per-hour", type=float, default=2.5)
    parser.add_argument("--cold-start-s", type=float, help="override the preset's cold start")
    parser.add_argument("--max-replicas", type=int, default=64)
    parser.add_argument("--target-utilisation", type=float, default=1.0,
                        help="spillover policy: the busy share of a replica's token work it sizes for (1: whole replicas; the overflow spills)")
    parser.add_argument("--min-replicas", type=int, default=1, help="spillover policy: 0 allows scale to zero")
    parser.add_argument("--ray-target", type=float, default=RayServe.DEFAULT_TARGET, help="ray_serve: target_ongoing_requests")
    parser.add_argument("--keda-threshold", type=float, default=KedaQueue.DEFAULT_THRESHOLD, help="keda_queue: waiting requests per replica")
    parser.add_argument("--warmup-s", type=float, default=0.0,
                        help="the trace's first seconds only warm each policy's fleet up: not counted")
    parser.add_argument("--hosted-tpm", type=float, default=GPT4O.tokens_per_minute, help="hosted tokens per minute; 0: no limit")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--plot", type=Path, help="write a PNG of load, replicas and spill here")


def run(args: argparse.Namespace) -> dict[str, SimResult]:
    from rich.progress import Progress

    _, arrivals = read_trace(Path(args.trace))
    preset = preset_for(args)
    names = [n.strip() for n in args.policy.split(",") if n.strip()]
    with Progress() as bar:
        tasks = {n: bar.add_task(n, total=1.0) for n in names}
        results = run_policies(arrivals, preset, names, args, lambda name, f: bar.update(tasks[name], completed=f))
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps({n: r.figures() for n, r in results.items()}, indent=2) + "\n")
    if args.plot:
        plot(results, args.plot)
    return results


def preset_for(args: argparse.Namespace) -> ReplicaPreset:
    """The preset named on the command line, with its cold start overridden when one is given."""
    preset = load_preset(args.preset)
    return preset if args.cold_start_s is None else dataclasses.replace(preset, cold_start_s=args.cold_start_s)


def hosted_for(args: argparse.Namespace) -> HostedModel:
    return dataclasses.replace(GPT4O, tokens_per_minute=args.hosted_tpm or None)


def run_policies(arrivals: Sequence[Arrival], preset: ReplicaPreset, names: Sequence[str], args: argparse.Namespace,
                 progress: Callable[[str, float], None]) -> dict[str, SimResult]:
    common = {"hosted": hosted_for(args), "ttft_target_s": args.ttft_target_s, "gpu_usd_per_hour": args.gpu_usd_per_hour,
              "measure_from_s": args.warmup_s}
    results: dict[str, SimResult] = {}
    for name in names:
        if name in ("static_peak", "static_spill"):
            tried = static_search(arrivals, preset, args.max_replicas, common, spill=name == "static_spill")
            best = cheapest_meeting(tried)
            results[name] = dataclasses.replace(tried[best], policy=f"{name} ({best} replicas)")
        else:
            results[name] = simulate(arrivals, preset, policy_for(name, args, preset),
                                     progress=lambda f, n=name: progress(n, f), **common)
        progress(name, 1.0)
    return results


def static_search(arrivals: Sequence[Arrival], preset: ReplicaPreset, max_replicas: int, common: dict, *, spill: bool) -> dict[int, SimResult]:
    """Fixed fleets tried in the search for the cheapest meeting the target. Spill-over off, more
    replicas never cost less to meet it, so bisect for the smallest that meets it (the fleet a
    peak needs: ``static_peak``). Spill-over on, fewer replicas spill more, so walk up from none
    until the total has risen twice past a fleet meeting it (``static_spill``)."""
    tried: dict[int, SimResult] = {}

    def run_at(n: int) -> SimResult:
        tried[n] = simulate(arrivals, preset, StaticFleet(n, spill=spill), **common)
        return tried[n]

    if not spill:
        lo, hi = 1, max_replicas
        run_at(hi)
        while lo < hi:
            mid = (lo + hi) // 2
            if run_at(mid).slo_attainment >= SLO:
                hi = mid
            else:
                lo = mid + 1
        return tried
    best, rises = None, 0
    for n in range(max_replicas + 1):
        result = run_at(n)
        if best is not None:
            rises = rises + 1 if result.total_usd > best.total_usd else 0
            if rises >= 2:
                break
        if result.slo_attainment >= SLO and (best is None or result.total_usd < best.total_usd):
            best, rises = result, 0
    return tried


def cheapest_meeting(tried: dict[int, SimResult]) -> int:
    """The cheapest fleet meeting the target, else the one closest to it."""
    meeting = [n for n, r in tried.items() if r.slo_attainment >= SLO]
    if meeting:
        return min(meeting, key=lambda n: (tried[n].total_usd, n))
    return max(tried, key=lambda n: (tried[n].slo_attainment, -n))


def policy_for(name: str, args: argparse.Namespace, preset: ReplicaPreset) -> FleetPolicy:
    if name.startswith("spillover") and name in NAMES:
        config = spillover_config(args, preset, payback=name != "spillover_no_payback", trend=name == "spillover_trend")
        return SpilloverFleet(dataclasses.replace(config, scale_down_below=1.0) if name == "spillover_tight_band" else config)
    if name == "ray_serve":
        return RayServe(args.max_replicas, args.ray_target)
    if name == "keda_queue":
        return KedaQueue(args.max_replicas, args.keda_threshold)
    if name == "all_api":
        return AllApi()
    raise ValueError(f"unknown policy {name!r}; choose from {', '.join(NAMES)}")


def spillover_config(args: argparse.Namespace, preset: ReplicaPreset, *, payback: bool, trend: bool) -> PolicyConfig:
    """Spillover's policy from the preset, the prices and the config alone (nothing read from
    the trace it is evaluated on). Hosted capacity covers what a replica ordered now could not:
    a burst shorter than a cold start is over before the replica serves, so only demand held for
    a cold start (the up window) adds one; with ``payback``, only one whose absorbed spill pays
    for its whole paid life. Spill-over takes the overflow, so the fleet is sized for whole
    replicas' work with no headroom above it."""
    hosted = hosted_for(args)
    return PolicyConfig(
        min_replicas=args.min_replicas, max_replicas=args.max_replicas, ttft_p99_target_s=args.ttft_target_s,
        up_window_s=preset.cold_start_s, down_window_s=300.0, project_trend=trend, scale_up_headroom=0.0,
        capacity=WorkCapacity(preset.prefill_tokens_per_s, preset.decode_cost_s, args.target_utilisation),
        payback=Payback(preset.gpus_per_replica * args.gpu_usd_per_hour, hosted.input_usd_per_mtok, hosted.output_usd_per_mtok)
        if payback else None)


def print_table(results: dict[str, SimResult]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("policy", "SLO attainment", "TTFT p50 s", "TTFT p99 s", "GPU-hours", "API $", "total $", "spilled")
    for r in results.values():
        f = r.figures()
        table.add_row(r.policy, f"{f['slo_attainment']:.2%}", f"{f['ttft_p50_s']:.2f}", f"{f['ttft_p99_s']:.2f}",
                      f"{f['gpu_hours']:.1f}", f"{f['api_usd']:.2f}", f"{f['total_usd']:.2f}", f"{f['spilled_share']:.1%}")
    Console().print(table)


def plot(results: dict[str, SimResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (load_ax, replica_ax, spill_ax) = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    first = next(iter(results.values()))
    load_ax.plot([m for m, *_ in first.timeline], [a for _, a, _, _ in first.timeline], color="black")
    load_ax.set_ylabel("requests / min")
    for r in results.values():
        minutes = [m for m, *_ in r.timeline]
        replica_ax.step(minutes, [p for _, _, p, _ in r.timeline], where="post", label=r.policy)
        spill_ax.plot(minutes, [s for *_, s in r.timeline], label=r.policy)
    replica_ax.set_ylabel("replicas paid for")
    spill_ax.set_ylabel("spilled / min")
    spill_ax.set_xlabel("minute of trace")
    replica_ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
