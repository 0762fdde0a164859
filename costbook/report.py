"""``spillover costs report``: the ledger grouped by who or what spent it.

Per group: requests, cost, tokens, cache hits, the share spilled to hosted APIs, and the waste:
failed requests and cancelled or cut streams, with what they cost. Batch lines also carry their
cost at sync list price (``sync_usd``) and the saving against it (``--by batch``). One query over the ledger
rows, the same on SQLite and PostgreSQL. Local replica time nobody used (costbook.local_cost)
belongs to no user or team: it is a row of its own, "(idle local capacity)", per model when
grouping by model, and all of it is waste.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from contracts.spill import LOCAL
from stores.sql_schema import ledger_table as t
from stores.sql_schema import local_intervals_table as idle_t

__all__ = ["GROUPS", "add_arguments", "parse_since", "report_rows", "render"]

GROUPS = {"user": t.c.user_name, "team": t.c.team, "feature": t.c.feature, "model": t.c.model_asked, "destination": t.c.destination,
          "batch": t.c.batch_id}
COLUMNS = ("requests", "cost_usd", "prompt_tokens", "completion_tokens", "cache_hits", "spilled_share", "failed", "cancelled", "waste_usd",
           "sync_usd", "saving_vs_sync")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="the YAML `spillover serve` runs (for its stores)")
    parser.add_argument("--since", default="30d", help="ISO date or time (UTC), or an age such as 24h, 7d (default 30d)")
    parser.add_argument("--by", choices=sorted(GROUPS), default="team")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    now = now or dt.datetime.now(dt.UTC)
    age = re.fullmatch(r"(\d+)([hd])", text.strip())
    if age:
        amount, unit = int(age[1]), age[2]
        return now - (dt.timedelta(hours=amount) if unit == "h" else dt.timedelta(days=amount))
    since = dt.datetime.fromisoformat(text)
    return since if since.tzinfo else since.replace(tzinfo=dt.UTC)


def report_rows(connection: sa.Connection, by: str, since: dt.datetime) -> list[dict[str, Any]]:
    group = GROUPS[by]
    # Paid for and not delivered: failures, cut or cancelled streams, and cascade attempts a check rejected.
    wasted = t.c.status.in_(("error", "cancelled", "cut", "escalated"))
    spilled = sa.and_(t.c.destination.is_not(None), t.c.destination != LOCAL, t.c.cache_result.in_(("miss", "bypass")))
    query = (
        sa.select(
            group.label("group"),
            sa.func.count().label("requests"),
            sa.func.coalesce(sa.func.sum(t.c.cost_micro_usd), 0).label("cost"),
            sa.func.coalesce(sa.func.sum(t.c.prompt_tokens), 0).label("prompt_tokens"),
            sa.func.coalesce(sa.func.sum(t.c.completion_tokens), 0).label("completion_tokens"),
            sa.func.count().filter(t.c.cache_result.in_(("exact", "semantic"))).label("cache_hits"),
            sa.func.count().filter(spilled).label("spilled"),
            sa.func.count().filter(t.c.status == "error").label("failed"),
            sa.func.count().filter(t.c.status.in_(("cancelled", "cut"))).label("cancelled"),
            sa.func.coalesce(sa.func.sum(t.c.cost_micro_usd).filter(wasted), 0).label("waste"),
            # Batch lines: the same usage at sync list price, and what those rows cost.
            sa.func.coalesce(sa.func.sum(t.c.sync_cost_micro_usd), 0).label("sync"),
            sa.func.coalesce(sa.func.sum(t.c.cost_micro_usd).filter(t.c.sync_cost_micro_usd.is_not(None)), 0).label("synced_cost"),
        )
        .where(t.c.at >= since)
        .group_by(group)
        .order_by(sa.desc("cost"), group)
    )
    return [
        {
            by: r.group if r.group is not None else "(none)",
            "requests": r.requests,
            "cost_usd": int(r.cost) / 1e6,
            "prompt_tokens": int(r.prompt_tokens),
            "completion_tokens": int(r.completion_tokens),
            "cache_hits": r.cache_hits,
            "spilled_share": round(r.spilled / r.requests, 4) if r.requests else 0.0,
            "failed": r.failed,
            "cancelled": r.cancelled,
            "waste_usd": int(r.waste) / 1e6,
            "sync_usd": int(r.sync) / 1e6,
            "saving_vs_sync": round(1 - int(r.synced_cost) / int(r.sync), 4) if r.sync else None,
        }
        for r in connection.execute(query)
    ] + idle_rows(connection, by, since)


IDLE = "(idle local capacity)"


def idle_rows(connection: sa.Connection, by: str, since: dt.datetime) -> list[dict[str, Any]]:
    """Idle cost of local replicas since ``since``: one row, or one per model."""
    query = (sa.select(idle_t.c.model, sa.func.sum(idle_t.c.idle_micro_usd).label("idle"))
             .where(idle_t.c.start >= since).group_by(idle_t.c.model).order_by(idle_t.c.model))
    per_model = {r.model: int(r.idle) for r in connection.execute(query) if r.idle}
    groups = {f"{model} {IDLE}": idle for model, idle in per_model.items()} if by == "model" else (
        {IDLE: sum(per_model.values())} if per_model else {})
    return [{by: name, "requests": 0, "cost_usd": idle / 1e6, "prompt_tokens": 0, "completion_tokens": 0, "cache_hits": 0,
             "spilled_share": 0.0, "failed": 0, "cancelled": 0, "waste_usd": idle / 1e6, "sync_usd": 0.0, "saving_vs_sync": None}
            for name, idle in groups.items()]


def render(rows: Sequence[dict[str, Any]], by: str, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(list(rows), indent=2)
    header = [by, *COLUMNS]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    from rich.console import Console
    from rich.table import Table

    table = Table(*header)
    for r in rows:
        table.add_row(str(r[by]), str(r["requests"]), f"{r['cost_usd']:.6f}", str(r["prompt_tokens"]), str(r["completion_tokens"]),
                      str(r["cache_hits"]), f"{r['spilled_share']:.1%}", str(r["failed"]), str(r["cancelled"]), f"{r['waste_usd']:.6f}",
                      f"{r['sync_usd']:.6f}" if r["sync_usd"] else "-",
                      "-" if r["saving_vs_sync"] is None else f"{r['saving_vs_sync']:.1%}")
    console = Console(record=True, width=160)
    with console.capture() as captured:
        console.print(table)
    return captured.get()
