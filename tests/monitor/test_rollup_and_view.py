"""The hourly rollup and the dashboard's ledger view over real ledger rows, on both stores."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from contracts.engine_state import ReplicaInterval
from costbook.local_cost import LocalCostAllocator
from costbook.prices import ModelPrice
from monitor.rollup import refresh_rollup
from monitor.view import ViewRange, ledger_view
from stores.sql_schema import ledger_hourly_table
from tests.costbook.rows import open_ledger, row

NOW = dt.datetime(2026, 11, 28, 12, 30, tzinfo=dt.UTC)


def at(hours_ago: float, request_id: str, **fields: object):  # noqa: ANN201
    return dataclasses.replace(row(request_id), at=NOW - dt.timedelta(hours=hours_ago), **fields)


def seed() -> list:
    return [
        at(0.2, "h1", cost_micro_usd=2_000_000, team="a", user_name="ann", feature="chat"),
        at(0.3, "h2", cost_micro_usd=1_000_000, team="b", user_name="bob", spill_reason="cold_start"),
        at(1.2, "l1", cost_micro_usd=500_000, team="a", destination="local", spill_reason="local_ok", model_served="m"),
        at(1.4, "c1", cost_micro_usd=0, team="a", destination="cache", cache_result="semantic"),
        at(2.5, "e1", cost_micro_usd=0, team="b", destination=None, status="error"),
        at(40, "old", cost_micro_usd=9_000_000, team="a"),  # outside a 24 h view, inside the backfill
    ]


def test_rollup_and_view_group_every_panel(ledger_url: str) -> None:
    store = open_ledger(ledger_url)
    try:
        store.insert(seed())
        allocator = LocalCostAllocator(store.engine, {"m": Decimal("3.6")}, "v-test", interval_s=60)
        start = (NOW - dt.timedelta(hours=1)).timestamp()
        allocator.allocate([ReplicaInterval("m", "r1", start, 60.0, 0.0)], start + 120)  # $0.06 idle
        written = refresh_rollup(store.engine, NOW, recompute_h=3)
        assert written >= 5
        price = ModelPrice(input=Decimal("10"), output=Decimal("30"))  # per million tokens
        view = ledger_view(store.engine, ViewRange(NOW - dt.timedelta(days=1), NOW), top_n=5, counterfactual={"m": price})
    finally:
        store.engine.dispose()
    totals = view["totals"]
    assert (totals["requests"], totals["errors"], totals["cache_hits"], totals["spilled"]) == (5, 1, 1, 2)
    assert (totals["local_usd"], totals["hosted_usd"], totals["idle_usd"]) == (0.5, 3.0, 0.06)
    assert totals["spend_usd"] == 3.56 and totals["spill_share"] == 0.4
    assert view["bucket"] == "hour" and [b["requests"] for b in view["series"]][-3:] == [1, 2, 2]
    assert [(t["name"], t["cost_usd"]) for t in view["top"]["team"]] == [("a", 2.5), ("b", 1.0)]
    assert view["top"]["feature"][0] == {"name": "chat", "cost_usd": 2.0, "requests": 1, "tokens": 15}
    assert {r["reason"]: r["requests"] for r in view["spill_reasons"]} == {"predicted_wait": 1, "cold_start": 1}
    # Every one of the five requests at list price: 10 prompt and 5 completion tokens each.
    assert view["saving"]["all_hosted_list_usd"] == round(5 * (10 * 10 + 5 * 30) / 1e6, 6)
    assert view["saving"]["actual_usd"] == 3.56 and view["saving"]["models_without_hosted_price"] == []


def test_a_late_row_lands_in_its_hour_and_a_view_of_30_days_folds_into_days(ledger_url: str) -> None:
    store = open_ledger(ledger_url)
    try:
        store.insert(seed())
        refresh_rollup(store.engine, NOW, recompute_h=3)
        store.insert([at(1.5, "late", cost_micro_usd=4_000_000, team="c")])  # written after its hour was rolled up
        refresh_rollup(store.engine, NOW, recompute_h=3)
        month = ledger_view(store.engine, ViewRange(NOW - dt.timedelta(days=30), NOW))
        with store.engine.connect() as connection:
            hours = connection.execute(sa.select(sa.func.count(sa.distinct(ledger_hourly_table.c.hour)))).scalar()
    finally:
        store.engine.dispose()
    assert month["bucket"] == "day" and len(month["series"]) == 31, "every day of the range, quiet ones as zeros"
    assert [b["at"][:10] for b in month["series"] if b["requests"]] == ["2026-11-26", "2026-11-28"]
    assert month["totals"]["requests"] == 7 and month["totals"]["hosted_usd"] == 16.0
    assert hours == 4


def test_an_empty_ledger_views_as_zeros(ledger_url: str) -> None:
    store = open_ledger(ledger_url)
    try:
        assert refresh_rollup(store.engine, NOW, recompute_h=3) == 0
        view = ledger_view(store.engine, ViewRange(NOW - dt.timedelta(hours=6), NOW))
    finally:
        store.engine.dispose()
    assert view["series"] == [] and view["totals"]["requests"] == 0 and view["totals"]["cache_hit_rate"] is None
    assert view["saving"]["saving_share"] is None
