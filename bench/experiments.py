"""Experiments: does the report's sequential test keep its promises, and what does each lever save?

Replayed outcomes, no servers. The per-prompt outcomes are the routing benchmark's recorded raw
rows (bench/results/routing.raw.jsonl.gz: RouteLLM's MMLU and GSM8K prompts, whether Mixtral-8x7B
and GPT-4 answered each correctly, their token counts, and the linear router's out-of-fold
decision at its fitted threshold), priced as that benchmark priced them. Every other row is the
planning half (the power analysis reads its cost spread); the rest is the replay half (the two
halves mix MMLU and GSM8K alike: a split by fold would not, GSM8K having 5 folds to MMLU's 4).

1. A/A: 1,000 experiments with both variants the router's setting; users assigned by the
   product's own hash (experiments.assign), a look at the end of each of 14 days at the planned
   sample size the power analysis states for a 10% cost change; the report's verdict
   (experiments.analysis.compare) at every look. The share that declares a difference is the
   false-positive rate (goal 5% +- 1%).
2. Power: 1,000 more with the variant's cost 10% lower (each request's cost x 0.9, quality
   unchanged): the share detected at the planned size (goal >= 80%).
3. A real lever: 300 experiments of the router against always-the-cheap-model (routing off):
   the share of runs the report calls cheaper, and non-inferior or inferior at a 2-point margin.
4. Savings replay: the Azure LLM inference 2023 code trace's requests (token counts), each paired
   with a replay-half prompt's router decision, every lever on, through the savings report
   (costbook.savings) against every request at the strongest model's list price.

    python bench/experiments.py [--runs 1000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from autoscaler.trace import read_trace  # noqa: E402
from bench._common import (  # noqa: E402
    RESULTS,
    add_provenance_arguments,
    add_recompute_arguments,
    publish,
    recompute_if_asked,
    refuse_dirty_tree,
    table,
)
from costbook.prices import ModelPrice  # noqa: E402
from costbook.savings import LEVERS, SavingsRow, savings_from_rows  # noqa: E402
from experiments.analysis import arm_look, compare, plan_size  # noqa: E402
from experiments.assign import assign  # noqa: E402

NAME = "experiments"
TITLE = "Experiments: A/A false positives, power at the planned size, a real lever's verdicts, savings per lever"
ROUTING_RAW = RESULTS / "routing.raw.jsonl.gz"
TRACE = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces" / "azure_llm_2023_code.csv"
DAYS = 14
ALPHA, POWER, EFFECT, MARGIN = 0.05, 0.80, 0.10, 0.02
WEIGHTS = {"control": 1.0, "variant": 1.0}


def load_outcomes() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with gzip.open(ROUTING_RAW, "rt") as handle:
        header = json.loads(handle.readline())
        rows = [json.loads(line) for line in handle if line.strip()]
    return header, rows


def priced(rows: list[dict[str, Any]], prices: dict[str, dict[str, float]]) -> dict[str, np.ndarray]:
    """Per prompt: cost and correctness with the router, and with the cheap model only."""
    def cost(r: dict[str, Any], side: str) -> float:
        return r["prompt_tokens"] * prices[side]["input"] + r[f"{side}_completion_tokens"] * prices[side]["output"]

    routed_strong = np.array([r["strong"]["linear"] for r in rows])
    return {
        "router_cost": np.array([cost(r, "strong") if s else cost(r, "cheap") for r, s in zip(rows, routed_strong, strict=True)]),
        "router_ok": np.array([float(r["strong_ok"] if s else r["weak_ok"]) for r, s in zip(rows, routed_strong, strict=True)]),
        "cheap_cost": np.array([cost(r, "cheap") for r in rows]),
        "cheap_ok": np.array([float(r["weak_ok"]) for r in rows]),
        "routed_strong": routed_strong,
    }


def one_experiment(rng: np.random.Generator, run: str, pool: dict[str, np.ndarray], planned: int, variant_cost: str, variant_ok: str,
                   cost_scale: float) -> dict[str, Any]:
    """A two-week experiment of ``planned`` requests (one per user), a look at each day's end."""
    per_day = math.ceil(planned / DAYS)
    picks = rng.integers(0, pool["router_cost"].size, size=per_day * DAYS)
    arms = np.array([assign(run, f"{run}-user-{i}", WEIGHTS) == "variant" for i in range(picks.size)])
    cost = np.where(arms, pool[variant_cost][picks] * cost_scale, pool["router_cost"][picks])
    ok = np.where(arms, pool[variant_ok][picks], pool["router_ok"][picks])
    cost_looks, quality_looks = [], []
    for day in range(1, DAYS + 1):
        upto = slice(0, day * per_day)
        v, c = arms[upto], ~arms[upto]
        cost_looks.append((arm_look(cost[upto][v]), arm_look(cost[upto][c])))
        quality_looks.append((arm_look(ok[upto][v]), arm_look(ok[upto][c])))
    result = compare(cost_looks, quality_looks, planned=planned, alpha=ALPHA, margin=MARGIN)
    return {"crossed_at": result.crossed_at, "cost_verdict": result.cost_verdict, "quality_verdict": result.quality_verdict,
            "cost_relative": round(result.cost_relative, 6), "z": round(result.z, 4), "variant_share": round(float(arms.mean()), 4),
            "requests": int(picks.size)}


def savings_rows(header: dict[str, Any], pool: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The code trace's requests, each with a replay-half prompt's router decision (seeded)."""
    _, arrivals = read_trace(TRACE)
    rng = np.random.default_rng(2023)
    picks = rng.integers(0, pool["routed_strong"].size, size=len(arrivals))
    prices = header["prices"]
    out = []
    for arrival, pick in zip(arrivals, picks, strict=True):
        side = "strong" if pool["routed_strong"][pick] else "cheap"
        cost = arrival.prompt_tokens * prices[side]["input"] + arrival.output_tokens * prices[side]["output"]
        out.append({"kind": "savings", "prompt_tokens": arrival.prompt_tokens, "completion_tokens": arrival.output_tokens,
                    "served": side, "cost_micro_usd": round(cost * 1e6)})
    return out


def derive(header: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    def share(kind: str, test: Any) -> float:
        runs = [r for r in rows if r["kind"] == kind]
        return round(sum(map(test, runs)) / len(runs), 4) if runs else math.nan

    aa = [r for r in rows if r["kind"] == "aa"]
    fp = share("aa", lambda r: r["crossed_at"] is not None)
    fp_se = math.sqrt(fp * (1 - fp) / len(aa)) if aa else math.nan
    prices = {side: ModelPrice(input=Decimal(str(p["input"] * 1e6)), output=Decimal(str(p["output"] * 1e6)))
              for side, p in header["prices"].items()}
    served = [r for r in rows if r["kind"] == "savings"]
    saving = savings_from_rows(
        (SavingsRow(model_asked="auto", model_served=r["served"], destination=r["served"], cache_result="bypass",
                    prompt_tokens=r["prompt_tokens"], prompt_tokens_original=None, completion_tokens=r["completion_tokens"],
                    cost_micro_usd=r["cost_micro_usd"], route_reason="router", attempt_of=None, sync_cost_micro_usd=None) for r in served),
        {"auto": prices["strong"]}, prices.get)
    return {
        "planned_requests": header["planned_requests"],
        "days": DAYS,
        "runs": {kind: sum(r["kind"] == kind for r in rows) for kind in ("aa", "power", "cheap_only")},
        "aa_false_positive_rate": fp,
        "aa_false_positive_rate_se": round(fp_se, 4),
        "aa_sample_ratio_variant_share_mean": round(float(np.mean([r["variant_share"] for r in aa])), 4) if aa else None,
        "power_at_10pct_cost_change": share("power", lambda r: r["cost_verdict"] == "cheaper"),
        "power_mean_requests_at_stop": round(float(np.mean([r["requests"] for r in rows if r["kind"] == "power"])), 1),
        "cheap_only": {"called_cheaper": share("cheap_only", lambda r: r["cost_verdict"] == "cheaper"),
                       "non_inferior": share("cheap_only", lambda r: r["quality_verdict"] == "non-inferior"),
                       "inferior": share("cheap_only", lambda r: r["quality_verdict"] == "inferior"),
                       "true_quality_difference": header["cheap_only_true_quality_difference"],
                       "true_cost_relative": header["cheap_only_true_cost_relative"]},
        "savings": {"requests": saving["requests"], "strongest_usd": saving["strongest_usd"], "actual_usd": saving["actual_usd"],
                    "total_share": saving["total_share"],
                    "by_lever": {lever: saving["by_lever"][lever]["share"] for lever in LEVERS},
                    "routed_to_strong_share": round(sum(r["served"] == "strong" for r in served) / len(served), 4) if served else None},
    }


def report_table(figures: dict[str, Any]) -> str:
    checks = table(["figure", "value", "goal"], [
        ("planned requests (both arms, 10% cost change, 80% power, 14 daily looks)", figures["planned_requests"], ""),
        ("A/A false-positive rate (daily looks)", f"{figures['aa_false_positive_rate']:.3f} +- {figures['aa_false_positive_rate_se']:.3f}",
         "0.05 +- 0.01"),
        ("power at a 10% cost change", figures["power_at_10pct_cost_change"], ">= 0.80"),
        ("router vs cheap-only: called cheaper", figures["cheap_only"]["called_cheaper"], ""),
        ("router vs cheap-only: quality non-inferior / inferior (2-point margin)",
         f"{figures['cheap_only']['non_inferior']} / {figures['cheap_only']['inferior']}",
         f"true difference {figures['cheap_only']['true_quality_difference']:+.3f}"),
    ])
    savings = figures["savings"]
    levers = table(["lever", "share of the strongest-model spend saved"],
                   [*((lever, share) for lever, share in savings["by_lever"].items()), ("total", savings["total_share"])])
    return (f"{checks}\n\nSavings replay: {savings['requests']} requests of the Azure code trace, {savings['routed_to_strong_share']:.1%} "
            f"routed to the strong model; spent {savings['actual_usd']:.2f} USD against {savings['strongest_usd']:.2f} USD at the "
            f"strongest model's list price.\n\n{levers}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_provenance_arguments(parser)
    parser.add_argument("--no-record", action="store_true", help="print the table; write nothing")
    parser.add_argument("--runs", type=int, default=1000)
    add_recompute_arguments(parser)
    args = parser.parse_args()
    recompute_if_asked(args, NAME, derive, report_table)
    if not args.no_record:
        refuse_dirty_tree(args.allow_dirty)
    routing_header, outcomes = load_outcomes()
    prices = routing_header["prices"]
    planning = priced(outcomes[0::2], prices)
    replay = priced(outcomes[1::2], prices)
    control = arm_look(planning["router_cost"])
    planned = plan_size(control, EFFECT, (0.5, 0.5), ALPHA, POWER, DAYS)
    print(f"planned {planned} requests from the planning half ({planning['router_cost'].size} prompts)", flush=True)
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(20261207)
    for kind, runs, variant_cost, variant_ok, scale in (("aa", args.runs, "router_cost", "router_ok", 1.0),
                                                        ("power", args.runs, "router_cost", "router_ok", 1 - EFFECT),
                                                        ("cheap_only", max(1, args.runs * 3 // 10), "cheap_cost", "cheap_ok", 1.0)):
        for i in range(runs):
            rows.append({"kind": kind, "run": i, **one_experiment(rng, f"{kind}-{i}", replay, planned, variant_cost, variant_ok, scale)})
        print(f"{kind}: {runs} runs", flush=True)
    rows += savings_rows(routing_header, replay)
    header = {"source": str(ROUTING_RAW.relative_to(RESULTS.parent.parent)), "source_commit": routing_header.get("commit"),
              "prices": prices, "planning_rows": "even rows of the source", "planned_requests": planned, "alpha": ALPHA, "power": POWER,
              "effect": EFFECT, "margin": MARGIN, "days": DAYS, "trace": TRACE.name,
              "cheap_only_true_quality_difference": round(float(replay["cheap_ok"].mean() - replay["router_ok"].mean()), 4),
              "cheap_only_true_cost_relative": round(float(replay["cheap_cost"].mean() / replay["router_cost"].mean() - 1), 4)}
    publish(args, NAME, TITLE, header, rows, derive, report_table)


if __name__ == "__main__":
    main()
