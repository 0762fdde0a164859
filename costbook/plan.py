"""``spillover plan``: self-hosting vs a hosted API, from measured throughput.

For a prompt/output mix, a replica's measured output tokens/s at that mix, whole GPUs per
replica at an hourly price, and the share of the day the fleet is usefully busy: what a month
costs self-hosted (whole replicas, paid whether busy or not) and through the API (list price per
token), across daily volumes, and where they cross. The seed's rule of thumb (70B on one A100 at
~$2.50/hour, ~$0.50 per million tokens, break-even near 5 million output tokens a day against
GPT-4o) is one case of it (tests/costbook/test_plan.py).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

from costbook.prices import DEFAULT_PRICES, ModelPrice, PriceTable

__all__ = ["Plan", "add_arguments", "run"]

HOURS_PER_MONTH = 730.0
DAYS_PER_MONTH = HOURS_PER_MONTH / 24


@dataclass(frozen=True)
class Plan:
    prompt_tokens: int
    output_tokens: int
    #: Output tokens a second one replica serves at this mix (measured, e.g. bench/serving.py).
    output_tokens_per_s: float
    gpus_per_replica: int
    gpu_usd_per_hour: float
    #: The share of the day replicas do useful work (traffic is not flat).
    utilisation: float
    api: ModelPrice

    def __post_init__(self) -> None:
        if self.output_tokens <= 0 or self.output_tokens_per_s <= 0 or not 0 < self.utilisation <= 1:
            raise ValueError("need output tokens > 0, throughput > 0 and 0 < utilisation <= 1")

    def replicas(self, output_tokens_per_day: float) -> int:
        per_replica_day = self.output_tokens_per_s * 86_400 * self.utilisation
        return max(1, math.ceil(output_tokens_per_day / per_replica_day - 1e-9))

    def self_hosted_usd_per_month(self, output_tokens_per_day: float) -> float:
        return self.replicas(output_tokens_per_day) * self.gpus_per_replica * self.gpu_usd_per_hour * HOURS_PER_MONTH

    def api_usd_per_month(self, output_tokens_per_day: float) -> float:
        per_output_token = (float(self.api.output) + float(self.api.input) * self.prompt_tokens / self.output_tokens) / 1e6
        return output_tokens_per_day * DAYS_PER_MONTH * per_output_token

    def break_even_output_tokens_per_day(self) -> float:
        """The smallest daily volume at which self-hosting costs no more than the API (the API
        is linear, self-hosting a staircase of whole replicas: the first step that the line
        meets)."""
        per_day_per_usd = self.api_usd_per_month(1.0)
        per_replica_day = self.output_tokens_per_s * 86_400 * self.utilisation
        for replicas in range(1, 10_000):
            volume = replicas * self.gpus_per_replica * self.gpu_usd_per_hour * HOURS_PER_MONTH / per_day_per_usd
            if volume <= replicas * per_replica_day:
                return max(volume, (replicas - 1) * per_replica_day)
        return math.inf

    def self_hosted_usd_per_mtok(self) -> float:
        """Cost per million output tokens on a fully used replica (the seed's ~$0.50)."""
        return self.gpus_per_replica * self.gpu_usd_per_hour / (self.output_tokens_per_s * 3600) * 1e6


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prompt-tokens", type=int, required=True, help="prompt tokens per request")
    parser.add_argument("--output-tokens", type=int, required=True, help="output tokens per request")
    parser.add_argument("--throughput", type=float, required=True, help="measured output tokens/s of one replica at this mix")
    parser.add_argument("--gpus", type=int, default=1, help="whole GPUs per replica")
    parser.add_argument("--gpu-usd-per-hour", type=float, required=True)
    parser.add_argument("--utilisation", type=float, default=0.5, help="share of the day replicas do useful work")
    parser.add_argument("--api", default="gpt-4o", help="a model in the price table")
    parser.add_argument("--price-table", type=Path, default=DEFAULT_PRICES)
    parser.add_argument("--plot", type=Path, help="write a PNG of monthly cost against daily volume here")


def run(args: argparse.Namespace) -> Plan:
    table = PriceTable.load(args.price_table)
    price = table.price(args.api)
    if price is None:
        raise SystemExit(f"spillover: no price for {args.api!r} in {args.price_table} (known: {', '.join(sorted(table.models))})")
    plan = Plan(args.prompt_tokens, args.output_tokens, args.throughput, args.gpus, args.gpu_usd_per_hour, args.utilisation, price)
    even = plan.break_even_output_tokens_per_day()
    print(f"self-hosted at full use: ${plan.self_hosted_usd_per_mtok():.2f} per million output tokens "
          f"({args.gpus} GPU(s) at ${args.gpu_usd_per_hour}/hour, {args.throughput:g} output tokens/s)")
    print(f"break-even against {args.api} (table {table.version}): {even / 1e6:.2f} million output tokens a day")
    print(f"{'output Mtok/day':>16} {'replicas':>9} {'self-hosted $/month':>20} {'API $/month':>12}")
    for volume in sorted({even, *(x * even for x in (0.25, 0.5, 2, 4, 8))}):
        print(f"{volume / 1e6:>16.2f} {plan.replicas(volume):>9} {plan.self_hosted_usd_per_month(volume):>20,.0f} "
              f"{plan.api_usd_per_month(volume):>12,.0f}")
    if args.plot:
        plot(plan, even, args.api, args.plot)
    return plan


def plot(plan: Plan, even: float, api: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    volumes = [even * 8 * i / 400 for i in range(1, 401)]
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.step([v / 1e6 for v in volumes], [plan.self_hosted_usd_per_month(v) for v in volumes], where="post", label="self-hosted")
    ax.plot([v / 1e6 for v in volumes], [plan.api_usd_per_month(v) for v in volumes], label=api)
    ax.axvline(even / 1e6, linestyle=":", color="grey")
    ax.set_xlabel("output tokens a day (millions)")
    ax.set_ylabel("US dollars a month")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
