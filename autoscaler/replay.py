"""``spillover simulate TRACE``: replay a trace through every fleet policy and compare costs.

Any trace in the Azure format; the same presets, policy and spill-over decision as the live
system. Prints a table, writes the figures as JSON and a PNG of load, replicas and spill.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

from autoscaler.baselines import POLICIES, AllApi, KedaQueue, RayDefault, SpilloverFleet, StaticFleet
from autoscaler.policy import PolicyConfig
from autoscaler.presets import ReplicaPreset, load_preset
from autoscaler.simulator import FleetPolicy, HostedModel, SimResult, simulate
from autoscaler.trace import Arrival, read_trace

__all__ = ["add_arguments", "break_even_utilisation", "preset_for", "run", "run_policies", "static_peak"]

#: GPT-4o's list price per million tokens (../shared/data/prices, LiteLLM's table).
GPT4O = HostedModel(input_usd_per_mtok=2.5, output_usd_per_mtok=10.0, ttft_s=1.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", help="CSV in the Azure LLM inference format")
    parser.add_argument("--policy", default=",".join(POLICIES), help=f"comma-separated, from: {', '.join(POLICIES)}")
    parser.add_argument("--preset", default="llama3-70b-a100x4", help="a name under autoscaler/presets or a YAML path")
    parser.add_argument("--ttft-target-s", type=float, default=2.0)
    parser.add_argument("--gpu-usd-per-hour", type=float, default=2.5)
    parser.add_argument("--cold-start-s", type=float, help="override the preset's cold start")
    parser.add_argument("--max-replicas", type=int, default=64)
    parser.add_argument("--target-ongoing", type=float, default=8.0, help="spillover policy: requests per replica")
    parser.add_argument("--min-replicas", type=int, default=1, help="spillover policy: 0 allows scale to zero")
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


def run_policies(arrivals: Sequence[Arrival], preset: ReplicaPreset, names: Sequence[str], args: argparse.Namespace,
                 progress: Callable[[str, float], None]) -> dict[str, SimResult]:
    common = {"hosted": GPT4O, "ttft_target_s": args.ttft_target_s, "gpu_usd_per_hour": args.gpu_usd_per_hour}
    results: dict[str, SimResult] = {}
    for name in names:
        if name == "static_peak":
            results[name] = static_peak(arrivals, preset, args.max_replicas, common, lambda f, n=name: progress(n, f))
            continue
        policy = _policy(name, args, arrivals, preset)
        results[name] = simulate(arrivals, preset, policy, progress=lambda f, n=name: progress(n, f), **common)
        progress(name, 1.0)
    return results


def static_peak(arrivals: Sequence[Arrival], preset: ReplicaPreset, max_replicas: int, common: dict,
                progress: Callable[[float], None]) -> SimResult:
    """The smallest fixed fleet with spill-over off that keeps >= 99% within target (bisection)."""
    lo, hi = 1, max_replicas
    best = simulate(arrivals, preset, StaticFleet(hi), **common)
    while lo < hi:
        mid = (lo + hi) // 2
        result = simulate(arrivals, preset, StaticFleet(mid), **common)
        if result.slo_attainment >= 0.99:
            hi, best = mid, result
        else:
            lo = mid + 1
        progress(1 - (hi - lo) / max_replicas)
    progress(1.0)
    meets = best.slo_attainment >= 0.99
    best.policy = f"static_peak ({hi} replicas)" if meets else f"static_peak ({hi} replicas, the cap: none meets the target)"
    return best


def break_even_utilisation(arrivals: Sequence[Arrival], preset: ReplicaPreset, gpu_usd_per_hour: float, hosted: HostedModel) -> float:
    """The share of a replica's prefill capacity that must be busy for it to cost less than
    sending the same mean request to the hosted API (clipped below 1)."""
    if not arrivals:
        return 0.0
    prompt = statistics.fmean(a.prompt_tokens for a in arrivals)
    output = statistics.fmean(a.output_tokens for a in arrivals)
    full_replica_hour = preset.prefill_tokens_per_s / prompt * 3600 * hosted.cost(round(prompt), round(output))
    return min(preset.gpus_per_replica * gpu_usd_per_hour / full_replica_hour, 0.95)


def _policy(name: str, args: argparse.Namespace, arrivals: Sequence[Arrival], preset: ReplicaPreset) -> FleetPolicy:
    if name == "spillover":
        # Hosted capacity covers what a replica ordered now could not: a burst shorter than a cold
        # start is over before the replica serves, so only demand held for a cold start adds one,
        # and only a slice worth more than the replica costs (the prices' break-even).
        return SpilloverFleet(PolicyConfig(
            min_replicas=args.min_replicas, max_replicas=args.max_replicas, target_ongoing_per_replica=args.target_ongoing,
            ttft_p99_target_s=args.ttft_target_s, up_window_s=preset.cold_start_s, down_window_s=300.0,
            min_marginal_utilisation=break_even_utilisation(arrivals, preset, args.gpu_usd_per_hour, GPT4O)))
    if name == "ray_default":
        return RayDefault(args.max_replicas)
    if name == "keda_queue":
        return KedaQueue(args.max_replicas)
    if name == "all_api":
        return AllApi()
    raise ValueError(f"unknown policy {name!r}; choose from {', '.join(POLICIES)}")


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
