"""Local cost: each interval's replica time, priced and shared out by tokens, on SQLite and
PostgreSQL; attributed + idle = replica-hours x price to the micro-dollar."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import sqlalchemy as sa

from contracts.engine_state import ReplicaInterval
from costbook.ledger_store import SqlLedgerStore
from costbook.local_cost import LocalCostAllocator, largest_remainder
from stores.sql_schema import ledger_table, local_intervals_table
from tests.costbook.rows import open_ledger
from tests.costbook.rows import local_row

T0 = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
START = T0.timestamp()
#: $3.60 a replica-hour: 1,000 micro-dollars a replica-second.
PRICE = Decimal("3.6")
DUE = START + 75.0  # the 60 s interval ended, and its 10 s grace too


@pytest.fixture
def store(ledger_url: str) -> Iterator[SqlLedgerStore]:
    store = open_ledger(ledger_url)
    yield store
    store.engine.dispose()


def allocator(store: SqlLedgerStore) -> LocalCostAllocator:
    return LocalCostAllocator(store.engine, {"m": PRICE}, "v-test", interval_s=60, grace_s=10)


#: Two replicas: one up all minute, busy 20 s; one up from 30 s, busy 10 s.
REPLICA_TIME = [ReplicaInterval("m", "r1", START, 60.0, 20.0), ReplicaInterval("m", "r2", START + 30, 30.0, 10.0)]


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def ledger(store: SqlLedgerStore) -> dict[str, tuple[int, str]]:
    with store.engine.connect() as c:
        return {r.request_id: (r.cost_micro_usd, r.price_version) for r in c.execute(sa.select(ledger_table))}


def interval(store: SqlLedgerStore) -> sa.Row:
    with store.engine.connect() as c:
        (row,) = c.execute(sa.select(local_intervals_table)).all()
    return row


def test_busy_time_is_shared_by_tokens_and_the_rest_is_idle(store: SqlLedgerStore) -> None:
    store.insert([local_row("a", 100, at(10), provisional=100), local_row("b", 200, at(50), provisional=200),
                  local_row("next", 300, at(61))])
    assert allocator(store).allocate(REPLICA_TIME, START + 65).rows == [], "not due during the grace"
    priced = allocator(store).allocate(REPLICA_TIME, DUE)
    # 90 replica-seconds = $0.09; 30 busy seconds = $0.03 shared 1:2; $0.06 idle.
    assert {a.request_id: (a.cost_micro_usd, a.delta_micro_usd) for a in priced.rows} == {"a": (10_000, 9_900), "b": (20_000, 19_800)}
    assert priced.idle_micro_usd == {"m": 60_000}
    assert ledger(store) == {"a": (10_000, "v-test"), "b": (20_000, "v-test"), "next": (0, "gpu:pending")}
    row = interval(store)
    assert (row.replicas, row.up_s, row.busy_s, row.tokens) == (2, 90.0, 30.0, 300)
    assert (row.cost_micro_usd, row.attributed_micro_usd, row.idle_micro_usd) == (90_000, 30_000, 60_000)
    assert allocator(store).allocate(REPLICA_TIME, DUE + 30).rows == [], "priced once"


def test_an_interval_with_no_requests_is_all_idle(store: SqlLedgerStore) -> None:
    priced = allocator(store).allocate(REPLICA_TIME, DUE)
    assert priced.rows == [] and priced.idle_micro_usd == {"m": 90_000}
    assert interval(store).attributed_micro_usd == 0


def test_shares_are_whole_micro_dollars_that_sum_exactly() -> None:
    assert largest_remainder(10_000, [1, 1, 1]) == [3_334, 3_333, 3_333]
    assert largest_remainder(7, [0, 5, 0, 2]) == [0, 5, 0, 2]
    assert largest_remainder(5, [0, 0]) == [0, 0]
    shares = largest_remainder(999_999, [3, 7, 11, 13, 17])
    assert sum(shares) == 999_999 and shares == sorted(shares)


def test_replicas_pricing_together_price_each_interval_once(store: SqlLedgerStore, ledger_url: str) -> None:
    store.insert([local_row(f"r{i}", 10 + i, at(i)) for i in range(40)])
    stores = [open_ledger(ledger_url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda s: allocator(s).allocate(REPLICA_TIME, DUE), stores))
    finally:
        for s in stores:
            s.engine.dispose()
    assert sorted(len(r.rows) for r in results) == [0, 0, 0, 40]
    assert sum(cost for cost, _ in ledger(store).values()) == interval(store).attributed_micro_usd == 30_000


def test_a_late_row_is_priced_at_its_interval_s_rate_out_of_the_idle_cost(store: SqlLedgerStore) -> None:
    store.insert([local_row("a", 300, at(10))])
    allocator(store).allocate(REPLICA_TIME, DUE)
    store.insert([local_row("late", 150, at(20))])  # an ingress killed mid-move: its spool was adopted later
    priced = allocator(store).allocate(REPLICA_TIME, DUE + 600)
    assert [(a.request_id, a.cost_micro_usd) for a in priced.rows] == [("late", 15_000)]
    assert priced.idle_micro_usd == {"m": -15_000}
    row = interval(store)
    assert (row.attributed_micro_usd, row.idle_micro_usd, row.tokens) == (45_000, 45_000, 450)
    assert row.attributed_micro_usd + row.idle_micro_usd == row.cost_micro_usd
