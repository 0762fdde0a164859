"""``spillover costs savings``: what the platform saved, against counterfactuals priced from the
same ledger rows.

Counterfactuals:
- **strongest**: every request sent to its route's strongest hosted model at list price (its
  original prompt tokens, before compression, and its completion tokens): what a team pays
  without the platform.
- **static peak fleet**: the local fleet held at its peak replica count for the whole period
  (a lower bound: the requests that went hosted would have needed capacity too).

Per lever, in pipeline order, so the parts add up to the whole saving against "strongest":
cache (a hit's tokens at the strongest price), compression (removed prompt tokens at the
strongest input price), routing (the tokens sent, at the strongest price minus the list price of
the hosted model that served them, less what abandoned cascade attempts cost), batch (sync list
price minus what a batch line cost) and the rest: self-hosting with spill-over (tokens served
locally instead of at a hosted list price, less idle local capacity).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from costbook.prices import ModelPrice
from stores.sql_schema import ledger_table as t
from stores.sql_schema import local_intervals_table as intervals

__all__ = ["LEVERS", "SavingsRow", "savings", "savings_from_rows"]

LEVERS = ("cache", "compression", "routing", "batch", "self_hosting_and_spillover")
MICRO = Decimal(1_000_000)


@dataclass(frozen=True)
class SavingsRow:
    """The ledger columns the savings need."""

    model_asked: str
    model_served: str | None
    destination: str | None
    cache_result: str
    prompt_tokens: int
    prompt_tokens_original: int | None
    completion_tokens: int
    cost_micro_usd: int
    route_reason: str | None
    attempt_of: str | None
    sync_cost_micro_usd: int | None


def _at(price: ModelPrice, prompt: int, completion: int) -> Decimal:
    return (Decimal(prompt) * price.input + Decimal(completion) * price.output) / MICRO


def savings_from_rows(rows: Iterable[SavingsRow], strongest: Mapping[str, ModelPrice | None], listed: Callable[[str], ModelPrice | None], *,
                      idle_usd: Decimal = Decimal(0), static_peak_usd: Decimal | None = None) -> dict[str, Any]:
    """``strongest``: per route, its strongest hosted price; ``listed``: a served model's list price
    (None: not a hosted model). A route without a strongest price is counted at what it cost
    (no saving claimed) and named."""
    by_lever = dict.fromkeys(LEVERS, Decimal(0))
    actual = counterfactual = Decimal(0)
    uncovered: set[str] = set()
    requests = 0
    for r in rows:
        cost = Decimal(r.cost_micro_usd) / MICRO
        actual += cost
        price = strongest.get(r.model_asked)
        if r.attempt_of is not None:  # an abandoned cascade attempt: paid for by routing
            by_lever["routing"] -= cost
            continue
        requests += 1
        if price is None:
            uncovered.add(r.model_asked)
            counterfactual += cost
            continue
        original = r.prompt_tokens_original if r.prompt_tokens_original is not None else r.prompt_tokens
        whole = _at(price, original, r.completion_tokens)
        counterfactual += whole
        if r.cache_result in ("exact", "semantic"):
            by_lever["cache"] += whole - cost
            continue
        by_lever["compression"] += _at(price, original - r.prompt_tokens, 0)
        sent_at_strongest = _at(price, r.prompt_tokens, r.completion_tokens)
        served_price = listed(r.model_served) if r.model_served else None
        if r.route_reason is not None and served_price is not None:
            by_lever["routing"] += sent_at_strongest - _at(served_price, r.prompt_tokens, r.completion_tokens)
            sent_at_strongest = _at(served_price, r.prompt_tokens, r.completion_tokens)
        if r.sync_cost_micro_usd is not None:
            by_lever["batch"] += Decimal(r.sync_cost_micro_usd) / MICRO - cost
            sent_at_strongest = Decimal(r.sync_cost_micro_usd) / MICRO
        by_lever["self_hosting_and_spillover"] += sent_at_strongest - cost
    actual += idle_usd
    by_lever["self_hosting_and_spillover"] -= idle_usd
    saving = counterfactual - actual
    return {
        "requests": requests,
        "actual_usd": round(float(actual), 6),
        "idle_local_usd": round(float(idle_usd), 6),
        "strongest_usd": round(float(counterfactual), 6),
        "saving_usd": round(float(saving), 6),
        "total_share": round(float(saving / counterfactual), 4) if counterfactual > 0 else None,
        "by_lever": {lever: {"usd": round(float(v), 6), "share": round(float(v / counterfactual), 4) if counterfactual > 0 else None}
                     for lever, v in by_lever.items()},
        "static_peak_fleet_usd": None if static_peak_usd is None else round(float(static_peak_usd), 6),
        "routes_without_hosted_price": sorted(uncovered),
    }


def savings(connection: sa.Connection, since: dt.datetime, strongest: Mapping[str, ModelPrice | None],
            listed: Callable[[str], ModelPrice | None]) -> dict[str, Any]:
    query = sa.select(t.c.model_asked, t.c.model_served, t.c.destination, t.c.cache_result, t.c.prompt_tokens, t.c.prompt_tokens_original,
                      t.c.completion_tokens, t.c.cost_micro_usd, t.c.route_reason, t.c.attempt_of,
                      t.c.sync_cost_micro_usd).where(t.c.at >= since)
    rows = (SavingsRow(*r) for r in connection.execute(query))
    idle, peak_usd = connection.execute(
        sa.select(sa.func.coalesce(sa.func.sum(intervals.c.idle_micro_usd), 0),
                  sa.func.coalesce(sa.func.max(intervals.c.replicas * intervals.c.usd_per_replica_hour), 0),
                  ).where(intervals.c.start >= since)).one()
    first, last = connection.execute(sa.select(sa.func.min(t.c.at), sa.func.max(t.c.at)).where(t.c.at >= since)).one()
    hours = Decimal((last - first).total_seconds()) / 3600 if first is not None and last is not None else Decimal(0)
    static_peak = Decimal(str(peak_usd)) * hours if peak_usd else None
    return {"since": since.isoformat(), **savings_from_rows(rows, strongest, listed, idle_usd=Decimal(int(idle)) / MICRO,
                                                             static_peak_usd=static_peak)}
