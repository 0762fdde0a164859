"""What the dashboard shows, read from the ledger's hourly rollup (and the local cost intervals).

One call answers a whole view (a time range): the spend per bucket split local / hosted / idle,
tokens, requests, cache hits, spills and errors; the top spenders by team, feature, model and
user; spills by reason; and the saving against sending every request to its route's hosted
model at list price. Everything is grouped in SQL over the rollup (one row per hour and
combination), so 30 days of a million-row ledger read a few thousand rows; the hourly series is
folded into days in Python for ranges longer than three days.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from contracts.spill import CACHE, LOCAL
from costbook.prices import ModelPrice, PriceTable
from monitor.rollup import as_utc, floor_hour
from stores.sql_schema import ledger_hourly_table as h
from stores.sql_schema import local_intervals_table as intervals

__all__ = ["TOP_BY", "ViewRange", "ledger_view", "strongest_prices"]

MICRO = 1_000_000
#: The dimensions the top-spender panels group by, and their rollup columns.
TOP_BY = {"team": h.c.team, "feature": h.c.feature, "model": h.c.model_asked, "user": h.c.user_name}
_HOSTED = sa.and_(h.c.destination.not_in((LOCAL, CACHE, "")))


@dataclass(frozen=True)
class ViewRange:
    since: dt.datetime
    until: dt.datetime

    @property
    def bucket(self) -> str:
        return "hour" if self.until - self.since <= dt.timedelta(days=3) else "day"


def ledger_view(engine: sa.Engine, span: ViewRange, *, top_n: int = 10,
                counterfactual: Mapping[str, ModelPrice | None] | None = None) -> dict[str, Any]:
    """Every ledger panel of the dashboard over ``span``. ``counterfactual``: per public model
    name, the list price of its route's hosted model (what "everything to the API" would pay);
    names without one are priced at what they cost (no saving claimed) and listed."""
    in_range = sa.and_(h.c.hour >= floor_hour(span.since), h.c.hour < span.until)
    with engine.connect() as connection:
        series = _series(connection, in_range, span)
        top = {name: _top(connection, in_range, column, top_n) for name, column in TOP_BY.items()}
        reasons = _spill_reasons(connection, in_range)
        saving = _saving(connection, in_range, series, counterfactual or {})
    totals = {key: sum(b[key] for b in series) for key in ("requests", "local_usd", "hosted_usd", "idle_usd", "prompt_tokens",
                                                            "completion_tokens", "cache_hits", "spilled", "errors")}
    totals["spend_usd"] = round(totals["local_usd"] + totals["hosted_usd"] + totals["idle_usd"], 6)
    totals["cache_hit_rate"] = round(totals["cache_hits"] / totals["requests"], 4) if totals["requests"] else None
    totals["spill_share"] = round(totals["spilled"] / totals["requests"], 4) if totals["requests"] else None
    totals["error_rate"] = round(totals["errors"] / totals["requests"], 4) if totals["requests"] else None
    return {"since": span.since.isoformat(), "until": span.until.isoformat(), "bucket": span.bucket, "totals": totals,
            "series": series, "top": top, "spill_reasons": reasons, "saving": saving}


def strongest_prices(hosted_models: Mapping[str, Sequence[str]], table: PriceTable) -> dict[str, ModelPrice | None]:
    """Per route, the list price of the dearest hosted model it may send to (the "strong" model
    a team would otherwise call for everything); ``None`` where it has none priced."""
    out: dict[str, ModelPrice | None] = {}
    for route, models in hosted_models.items():
        prices = [p for p in map(table.price, models) if p is not None]
        out[route] = max(prices, key=lambda p: (p.output, p.input)) if prices else None
    return out


def _series(connection: sa.Connection, in_range: sa.ColumnElement, span: ViewRange) -> list[dict[str, Any]]:
    local = sa.func.sum(sa.case((h.c.destination == LOCAL, h.c.cost_micro_usd), else_=0))
    hosted = sa.func.sum(sa.case((_HOSTED, h.c.cost_micro_usd), else_=0))
    rows = connection.execute(
        sa.select(h.c.hour, sa.func.sum(h.c.requests), local, hosted, sa.func.sum(h.c.prompt_tokens), sa.func.sum(h.c.completion_tokens),
                  sa.func.sum(sa.case((h.c.cache_result.in_(("exact", "semantic")), h.c.requests), else_=0)),
                  sa.func.sum(sa.case((_HOSTED, h.c.requests), else_=0)),
                  sa.func.sum(sa.case((h.c.status == "error", h.c.requests), else_=0)))
        .where(in_range).group_by(h.c.hour).order_by(h.c.hour)
    ).all()
    idle = dict(connection.execute(
        sa.select(intervals.c.start, intervals.c.idle_micro_usd)
        .where(intervals.c.start >= floor_hour(span.since), intervals.c.start < span.until)
    ).all())
    buckets: dict[dt.datetime, dict[str, Any]] = {}
    for hour, requests, local_cost, hosted_cost, prompt, completion, hits, spilled, errors in rows:
        bucket = buckets.setdefault(_bucket_of(as_utc(hour), span.bucket), _empty())
        bucket["requests"] += int(requests)
        bucket["local_usd"] += int(local_cost or 0) / MICRO
        bucket["hosted_usd"] += int(hosted_cost or 0) / MICRO
        bucket["prompt_tokens"] += int(prompt or 0)
        bucket["completion_tokens"] += int(completion or 0)
        bucket["cache_hits"] += int(hits or 0)
        bucket["spilled"] += int(spilled or 0)
        bucket["errors"] += int(errors or 0)
    for start, idle_cost in idle.items():
        buckets.setdefault(_bucket_of(floor_hour(as_utc(start)), span.bucket), _empty())["idle_usd"] += int(idle_cost or 0) / MICRO
    if buckets:  # every bucket of the range, so charts show quiet hours as zeros rather than joining across them
        step = dt.timedelta(days=1) if span.bucket == "day" else dt.timedelta(hours=1)
        at = _bucket_of(floor_hour(span.since), span.bucket)
        while at < span.until:
            buckets.setdefault(at, _empty())
            at += step
    return [{"at": at.isoformat(), **{k: round(v, 6) if isinstance(v, float) else v for k, v in values.items()}}
            for at, values in sorted(buckets.items())]


def _top(connection: sa.Connection, in_range: sa.ColumnElement, column: sa.ColumnElement, n: int) -> list[dict[str, Any]]:
    cost = sa.func.sum(h.c.cost_micro_usd)
    rows = connection.execute(
        sa.select(column, cost, sa.func.sum(h.c.requests), sa.func.sum(h.c.prompt_tokens + h.c.completion_tokens))
        .where(in_range).group_by(column).order_by(sa.desc(cost), column).limit(n)
    ).all()
    return [{"name": name or "(none)", "cost_usd": int(c or 0) / MICRO, "requests": int(r), "tokens": int(t or 0)} for name, c, r, t in rows]


def _spill_reasons(connection: sa.Connection, in_range: sa.ColumnElement) -> list[dict[str, Any]]:
    rows = connection.execute(
        sa.select(h.c.spill_reason, sa.func.sum(h.c.requests)).where(in_range, _HOSTED).group_by(h.c.spill_reason)
        .order_by(sa.desc(sa.func.sum(h.c.requests)))
    ).all()
    return [{"reason": reason or "(none)", "requests": int(n)} for reason, n in rows]


def _saving(connection: sa.Connection, in_range: sa.ColumnElement, series: list[dict[str, Any]],
            counterfactual: Mapping[str, ModelPrice | None]) -> dict[str, Any]:
    """Actual spend (idle local capacity included) against every request at its route's hosted
    list price: uncached input and output tokens, as the API would bill them."""
    rows = connection.execute(
        sa.select(h.c.model_asked, sa.func.sum(h.c.prompt_tokens), sa.func.sum(h.c.completion_tokens), sa.func.sum(h.c.cost_micro_usd))
        .where(in_range).group_by(h.c.model_asked)
    ).all()
    uncovered: list[str] = []
    at_list = Decimal(0)
    for model, prompt, completion, cost in rows:
        price = counterfactual.get(model)
        if price is None:
            uncovered.append(model)
            at_list += Decimal(int(cost or 0)) / MICRO
            continue
        at_list += (Decimal(int(prompt or 0)) * price.input + Decimal(int(completion or 0)) * price.output) / MICRO
    actual = sum(b["local_usd"] + b["hosted_usd"] + b["idle_usd"] for b in series)
    list_usd = float(at_list)
    return {"actual_usd": round(actual, 6), "all_hosted_list_usd": round(list_usd, 6), "saving_usd": round(list_usd - actual, 6),
            "saving_share": round(1 - actual / list_usd, 4) if list_usd > 0 else None, "models_without_hosted_price": sorted(uncovered)}


def _empty() -> dict[str, Any]:
    return {"requests": 0, "local_usd": 0.0, "hosted_usd": 0.0, "idle_usd": 0.0, "prompt_tokens": 0, "completion_tokens": 0,
            "cache_hits": 0, "spilled": 0, "errors": 0}


def _bucket_of(at: dt.datetime, bucket: str) -> dt.datetime:
    return at.replace(hour=0) if bucket == "day" else at

