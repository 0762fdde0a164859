"""The spill-over bench's per-request figures, each derived from the raw rows alone: the hindsight
oracle's spilled share, the predictor's error (split at the ingress), the hosted side's path, the
kept requests by why and the misses by where served, chars/4's error (:mod:`bench.spillover`'s
``derive`` puts them together)."""

from __future__ import annotations

import statistics
from typing import Any

from autoscaler.trace import Arrival
from bench._common import percentile

__all__ = ["hindsight_spilled_share", "hosted_path", "keeps", "misses", "predictor_error", "prompt_estimate_error"]


def hindsight_spilled_share(arrivals: list[Arrival], target_s: float, prefill_tps: float, decode_tps: float, overhead_s: float) -> float:
    """Fewest spills that keep every kept request within target, greedily in hindsight.

    The local engine is modelled as one first-come-first-served server of work: a request's
    prefill takes ``prompt / prefill_tps``, its decoding ``output / decode_tps`` (the batched
    decode throughput), its first token comes ``overhead_s`` after its prefill. A later request
    never delays an earlier one, so keeping each request whose first token still fits, in
    arrival order, gives the fewest spills on this model. It is a model, not the engine: the
    figure is a yardstick, not a bound.
    """
    free_at, spilled = 0.0, 0
    for a in arrivals:
        begin = max(free_at, a.at_s)
        prefill = a.prompt_tokens / prefill_tps
        if begin - a.at_s + prefill + overhead_s > target_s:
            spilled += 1
            continue
        free_at = begin + prefill + a.output_tokens / decode_tps
    return spilled / len(arrivals)


def predictor_error(rows: list[dict[str, Any]], target_s: float) -> dict[str, float]:
    """Measured minus predicted local TTFT, per request kept local by the decision; and the same
    split at the ingress (its own time to the engine's first item, what the prediction models)
    and the path in front of it (the client's TTFT less the ingress's: proxy, client)."""
    kept = [r for r in rows if r["destination"] == "local" and r["predicted_s"] is not None and r["ok"]]
    if not kept:
        return {}
    errors = [r["ttft_s"] - r["predicted_s"] for r in kept]
    p90 = percentile([abs(e) for e in errors], 0.9)
    figures = {"requests": len(errors), "median_error_s": round(statistics.median(errors), 3), "p90_abs_error_s": round(p90, 3),
               "p90_abs_error_over_target": round(p90 / target_s, 3)}
    split = [r for r in kept if r.get("ingress_start_s") is not None]
    if split:
        at_ingress = [r["ingress_start_s"] - r["predicted_s"] for r in split]
        path = [r["ttft_s"] - r["ingress_start_s"] for r in split]
        figures |= {"ingress_median_error_s": round(statistics.median(at_ingress), 3),
                    "ingress_p90_abs_error_s": round(percentile([abs(e) for e in at_ingress], 0.9), 3),
                    "path_in_front_median_s": round(statistics.median(path), 3), "path_in_front_p90_s": round(percentile(path, 0.9), 3)}
    return figures


def hosted_path(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Spilled requests' client TTFT split: at and behind the ingress (the providers, failover),
    and the path in front of it."""
    split = [r for r in rows if r["destination"] != "local" and r["ok"] and r.get("ingress_start_s") is not None]
    if not split:
        return {}
    path = [r["ttft_s"] - r["ingress_start_s"] for r in split]
    behind = [r["ingress_start_s"] for r in split]
    return {"requests": len(split), "ingress_start_p50_s": round(statistics.median(behind), 3),
            "ingress_start_p99_s": round(percentile(behind, 0.99), 3),
            "path_in_front_median_s": round(statistics.median(path), 3), "path_in_front_p90_s": round(percentile(path, 0.9), 3)}


def keeps(rows: list[dict[str, Any]], target_s: float, timeline: dict[str, list[list[float]]]) -> dict[str, Any]:
    """Requests the spillover setup kept local, split by why (predicted within the target, or a
    predicted miss kept because every hosted breaker was open) and, for the first kind, the shared
    core's busy share while each waited for its first token, in target against missed."""
    by_reason = {reason: [r for r in rows if r["destination"] == "local" and r["reason"] == reason] for reason in ("local_ok", "breaker_open")}

    def shared_core_busy(r: dict[str, Any]) -> float | None:
        samples = [s[2] for s in timeline.get(f"spillover/{r['round']}", []) if r["at_s"] <= s[0] - 0.25 <= r["at_s"] + (r["ttft_s"] or 0)]
        return statistics.fmean(samples) if samples else None

    predicted_ok = by_reason["local_ok"]
    missed = [r for r in predicted_ok if not r["ok"] or r["ttft_s"] > target_s]
    hit = [r for r in predicted_ok if r not in missed]

    def median_busy(group: list[dict[str, Any]]) -> float | None:
        values = [v for v in map(shared_core_busy, group) if v is not None]
        return round(statistics.median(values), 3) if values else None

    return {"kept_predicted_within": len(predicted_ok), "missed_predicted_within": len(missed),
            "kept_breaker_open": len(by_reason["breaker_open"]),
            "missed_breaker_open": sum(1 for r in by_reason["breaker_open"] if not r["ok"] or r["ttft_s"] > target_s),
            "shared_core_busy_median": {"in_target": median_busy(hit), "missed": median_busy(missed)}}


def misses(rows: list[dict[str, Any]], target_s: float) -> dict[str, int]:
    """The spillover setup's misses over all rounds, by where each request was served and why
    (``local/failover_error``: spilled, every hosted provider refused, served locally late)."""
    missed: dict[str, int] = {}
    for r in rows:
        if not r["ok"] or r["ttft_s"] > target_s:
            key = "hosted" if r["destination"] != "local" else f"local/{r['reason']}"
            missed[key] = missed.get(key, 0) + 1
    return dict(sorted(missed.items()))


def prompt_estimate_error(rows: list[dict[str, Any]]) -> dict[str, float]:
    """chars/4 against the text's own token count (the content's, without the chat template)."""
    errors = [(r["chars4_tokens"] - r["prompt_tokens"]) / r["prompt_tokens"] for r in rows]
    return {"median_relative_error": round(statistics.median(errors), 3), "p90_abs_relative_error": round(percentile([abs(e) for e in errors], 0.9), 3)}
