"""``spillover experiments report NAME``: an experiment's variants side by side, from the ledger.

Per variant: requests, cost per request (a cascade's abandoned attempts added to the request
they were for), tokens, latency, feedback and the automatic quality signals (error or cut,
client cancel, truncated answer, escalation by a cascade check, the same prompt from the same
user within a minute), each mean with a 95% interval. Then the sample-ratio-mismatch check and,
per variant against control, the sequential cost verdict and the quality non-inferiority verdict
(experiments.analysis), read at the end of each completed UTC day since the first request.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from experiments.analysis import ArmLook, arm_look, compare, plan_size
from experiments.config import ExperimentConfig
from experiments.stats import mean_ci, srm_p_value
from stores.sql_schema import feedback_table as f
from stores.sql_schema import ledger_table as t

__all__ = ["Outcome", "all_reports", "experiment_report", "outcomes", "render"]

RETRY_WINDOW = dt.timedelta(minutes=1)
#: Looks a day for this many days: the spacing the power analysis assumes.
PLANNED_LOOKS = 14


@dataclass(frozen=True)
class Outcome:
    """One request of the experiment, as the analysis sees it."""

    variant: str
    at: dt.datetime
    cost_usd: float
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float | None
    total_ms: float | None
    feedback: float | None
    error: bool
    cancelled: bool
    truncated: bool
    escalated: bool
    retried: bool

    @property
    def good(self) -> float:
        """1 when no automatic signal says the answer failed the user."""
        return 0.0 if (self.error or self.cancelled or self.truncated or self.escalated or self.retried) else 1.0


def outcomes(connection: sa.Connection, name: str) -> list[Outcome]:
    query = (sa.select(t.c.request_id, t.c.at, t.c.variant, t.c.user_name, t.c.prompt_hash, t.c.cost_micro_usd, t.c.prompt_tokens,
                       t.c.completion_tokens, t.c.ttft_ms, t.c.total_ms, t.c.status, t.c.finish_reason, t.c.escalations,
                       t.c.attempt_of, f.c.score)
             .select_from(t.outerjoin(f, f.c.request_id == t.c.request_id))
             .where(t.c.experiment == name).order_by(t.c.at))
    rows = list(connection.execute(query))
    attempts: dict[str, int] = defaultdict(int)
    for r in rows:
        if r.attempt_of is not None:
            attempts[r.attempt_of] += r.cost_micro_usd
    requests = [r for r in rows if r.attempt_of is None]
    retried = _retried(requests)
    return [Outcome(variant=r.variant, at=_utc(r.at), cost_usd=(r.cost_micro_usd + attempts.get(r.request_id, 0)) / 1e6,
                    prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens, ttft_ms=r.ttft_ms, total_ms=r.total_ms,
                    feedback=r.score, error=r.status in ("error", "cut"), cancelled=r.status == "cancelled",
                    truncated=r.finish_reason == "length", escalated=bool(r.escalations), retried=r.request_id in retried)
            for r in requests]


def _utc(at: dt.datetime) -> dt.datetime:
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def _retried(rows: Sequence[Any]) -> set[str]:
    """Requests the same user asked again (same prompt hash) within a minute."""
    last: dict[tuple[str, str], tuple[str, dt.datetime]] = {}
    out: set[str] = set()
    for r in rows:  # in time order
        if r.prompt_hash is None:
            continue
        key = (r.user_name, r.prompt_hash)
        at = _utc(r.at)
        if key in last and at - last[key][1] <= RETRY_WINDOW:
            out.add(last[key][0])
        last[key] = (r.request_id, at)
    return out


def _ci(values: Sequence[float]) -> dict[str, float | None]:
    ci = mean_ci(values)
    return {"mean": _clean(ci.mean), "low": _clean(ci.low), "high": _clean(ci.high), "n": ci.n}


def _clean(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 8)


def _variant_figures(rows: Sequence[Outcome]) -> dict[str, Any]:
    ttft = [r.ttft_ms for r in rows if r.ttft_ms is not None]
    total = [r.total_ms for r in rows if r.total_ms is not None]
    feedback = [r.feedback for r in rows if r.feedback is not None]
    return {
        "requests": len(rows),
        "cost_usd": _ci([r.cost_usd for r in rows]),
        "prompt_tokens": _ci([r.prompt_tokens for r in rows]),
        "completion_tokens": _ci([r.completion_tokens for r in rows]),
        "ttft_ms_p50": float(np.median(ttft)) if ttft else None,
        "total_ms": _ci(total),
        "feedback": _ci(feedback),
        "good": _ci([r.good for r in rows]),
        **{f"{signal}_share": _ci([float(getattr(r, signal)) for r in rows])
           for signal in ("error", "cancelled", "truncated", "escalated", "retried")},
    }


def _quality(row: Outcome, metric: str) -> float | None:
    return row.feedback if metric == "feedback" else row.good


def experiment_report(name: str, config: ExperimentConfig, rows: Sequence[Outcome]) -> dict[str, Any]:
    variants = list(config.variants)
    by_variant = {v: [r for r in rows if r.variant == v] for v in variants}
    counts = [len(by_variant[v]) for v in variants]
    report: dict[str, Any] = {
        "experiment": name, "route": config.route, "control": config.control_variant, "quality_metric": config.quality,
        "variants": {v: {"weight": config.variants[v].weight, **_variant_figures(by_variant[v])} for v in variants},
        "sample_ratio": {"counts": dict(zip(variants, counts, strict=True)), "p_value": srm_p_value(counts, [config.variants[v].weight
                                                                                                            for v in variants])},
        "comparisons": {},
    }
    report["sample_ratio"]["mismatch"] = report["sample_ratio"]["p_value"] < 0.001
    if not rows:
        return report
    first_day = min(r.at for r in rows).replace(hour=0, minute=0, second=0, microsecond=0)
    last_complete = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    look_ends = [first_day + dt.timedelta(days=d + 1) for d in range(max(0, (last_complete - first_day).days))]
    control = config.control_variant
    alpha = config.alpha / max(1, len(variants) - 1)
    for variant in variants:
        if variant == control:
            continue
        shares = (config.variants[variant].weight, config.variants[control].weight)
        shares = (shares[0] / sum(shares), shares[1] / sum(shares))
        planned = config.planned_requests or _plan_from_first_day(by_variant[control], first_day, config, shares, alpha)
        cost_looks, quality_looks = [], []
        for end in look_ends:
            arms = [[r for r in by_variant[v] if r.at < end] for v in (variant, control)]
            cost_looks.append(tuple(arm_look(np.array([r.cost_usd for r in arm])) for arm in arms))
            quality_looks.append(tuple(_quality_look(arm, config.quality) for arm in arms))
        comparison = compare(cost_looks, quality_looks, planned=planned, alpha=alpha, margin=config.quality_margin)
        report["comparisons"][variant] = {**_finite(asdict(comparison)), "cost_verdict": comparison.cost_verdict,
                                          "quality_verdict": comparison.quality_verdict, "completed_days": len(look_ends)}
    return report


def all_reports(engine: sa.Engine, experiments: Mapping[str, ExperimentConfig]) -> dict[str, dict[str, Any]]:
    """Every configured experiment's report (the dashboard's panel)."""
    with engine.connect() as connection:
        return {name: experiment_report(name, config, outcomes(connection, name)) for name, config in experiments.items()}


def _quality_look(arm: Sequence[Outcome], metric: str) -> ArmLook:
    values = [q for q in (_quality(r, metric) for r in arm) if q is not None]
    return arm_look(np.array(values, dtype=float))


def _plan_from_first_day(control: Sequence[Outcome], first_day: dt.datetime, config: ExperimentConfig, shares: tuple[float, float],
                         alpha: float) -> int:
    """The power analysis on control's first day (the plan must not move with later data)."""
    day = np.array([r.cost_usd for r in control if r.at < first_day + dt.timedelta(days=1)])
    return plan_size(arm_look(day), config.cost_effect, shares, alpha, config.power, PLANNED_LOOKS)


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2)
    from rich.console import Console
    from rich.table import Table

    def ci(x: dict[str, Any], scale: float = 1.0, digits: int = 6) -> str:
        if x["mean"] is None:
            return "-"
        low = "?" if x["low"] is None else f"{x['low'] * scale:.{digits}f}"
        high = "?" if x["high"] is None else f"{x['high'] * scale:.{digits}f}"
        return f"{x['mean'] * scale:.{digits}f} [{low}, {high}]"

    variants = Table("variant", "weight", "requests", "cost/request USD [95%]", "completion tokens", "TTFT p50 ms", "feedback",
                     "good share", title=f"experiment {report['experiment']} on {report['route']} (control {report['control']})")
    for name, v in report["variants"].items():
        variants.add_row(name, f"{v['weight']:g}", str(v["requests"]), ci(v["cost_usd"]), ci(v["completion_tokens"], digits=1),
                         "-" if v["ttft_ms_p50"] is None else f"{v['ttft_ms_p50']:.0f}", ci(v["feedback"], digits=3), ci(v["good"], digits=3))
    comparisons = Table("variant", "cost change", "cost verdict", "quality diff [repeated CI]", "quality verdict", "planned requests",
                        "days", title=f"against control; sample ratio p = {report['sample_ratio']['p_value']:.3g}"
                        + (" MISMATCH" if report["sample_ratio"]["mismatch"] else ""))
    for name, c in report["comparisons"].items():
        rel = "-" if c["cost_relative"] is None else f"{c['cost_relative']:+.1%}"
        quality = "-" if c["quality_difference"] is None else (
            f"{c['quality_difference']:+.3f} [{'-inf' if c['quality_lower'] is None else format(c['quality_lower'], '+.3f')}, "
            f"{'inf' if c['quality_upper'] is None else format(c['quality_upper'], '+.3f')}]")
        comparisons.add_row(name, rel, c["cost_verdict"], quality, f"{c['quality_verdict']} (margin {c['margin']:g})", str(c["planned"]),
                            str(c["completed_days"]))
    console = Console(record=True, width=180)
    with console.capture() as captured:
        console.print(variants)
        console.print(comparisons)
    return captured.get()
