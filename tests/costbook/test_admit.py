"""Budgets and rate limits under concurrency, on real Redis and in process."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import sqlalchemy as sa

from contracts.context import Api, Principal, RequestContext, Status, Usage
from contracts.engine_state import ReplicaInterval, interval_start
from contracts.errors import RateLimitError
from contracts.spill import LOCAL
from contracts.stores import CounterStore
from costbook.admit import Admit, BudgetLimit, InsufficientQuotaError
from costbook.counters import MemoryCounters, RedisCounters
from costbook.ledger import Pricer
from costbook.ledger_store import SqlLedgerStore
from costbook.local_cost import LocalCostAllocator
from costbook.prices import DEFAULT_PRICES, PriceTable
from serving.wire import ChatCompletionBody, request_facts
from stores.redis import RedisPools
from stores.sql import Database
from stores.sql_schema import ledger_table

PRICER = Pricer(PriceTable.load(DEFAULT_PRICES))
GPT4O = PRICER.table.models["gpt-4o"]
NOW = dt.datetime(2026, 11, 28, 12, 30, 15, tzinfo=dt.UTC).timestamp()


@pytest.fixture(params=["memory", "redis"])
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[CounterStore]:
    if request.param == "memory":
        yield MemoryCounters()
        return
    import redis.asyncio as redis

    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    prefix = f"spillover-test-{uuid.uuid4().hex[:8]}:"
    try:
        yield RedisCounters(client, prefix)
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def admit(counters: CounterStore, budgets: list[BudgetLimit]) -> Admit:
    return Admit(counters, None, budgets, PRICER, worst_prices={"m": (GPT4O.input, GPT4O.output)},
                 local_ceiling_usd_per_mtok=Decimal(1), clock=lambda: NOW)


def request(max_tokens: int = 100) -> RequestContext:
    body = {"model": "m", "messages": [{"role": "user", "content": "x" * 400}], "max_tokens": max_tokens}
    ctx = RequestContext("r-" + uuid.uuid4().hex, Api.CHAT, "m", body, False, {},
                         facts=request_facts(ChatCompletionBody.model_validate(body), body, 256), principal=Principal("k1", "ana", "search"))
    return ctx


async def test_a_hundred_concurrent_requests_never_overspend_and_counters_equal_the_ledger(counters: CounterStore) -> None:
    probe = request()
    worst = admit(counters, []).worst_cost(probe, probe.facts.prompt_tokens, 100)
    assert worst == pytest.approx(1_250, abs=50)  # ~100 prompt tokens x $2.50 + 100 x $10 per million
    budget = BudgetLimit("team", "search", "day", 10 * worst + worst // 2)  # ten fit at once, not eleven
    stage = admit(counters, [budget])
    spent: list[int] = []
    refused = 0

    async def one() -> None:
        nonlocal refused
        ctx = request()
        try:
            await stage.process(ctx)
        except InsufficientQuotaError:
            refused += 1
            return
        await asyncio.sleep(random.random() / 100)
        ctx.destination, ctx.model_served, ctx.status = "openai", "gpt-4o", Status.OK
        ctx.usage = Usage(prompt_tokens=100, completion_tokens=random.randint(1, 100))
        spent.append(PRICER.row(ctx).cost_micro_usd)
        await stage.settle(ctx)

    await asyncio.gather(*(one() for _ in range(100)))
    assert sum(spent) <= budget.limit_micro_usd
    assert len(spent) == 10 and refused == 90, "all hundred arrive before any settles: ten reservations fit"
    (counter,) = await counters.values(["spend:team:search:2026-11-28"])
    assert counter == sum(spent), "settled counters equal the ledger to the micro-dollar"


async def test_a_failed_request_gives_its_reservation_back(counters: CounterStore) -> None:
    stage = admit(counters, [BudgetLimit("user", "ana", "month", 2_000)])
    ctx = request()
    await stage.process(ctx)
    assert await counters.values(["spend:user:ana:2026-11"]) == [stage.worst_cost(ctx, ctx.facts.prompt_tokens, 100)]
    ctx.status = Status.ERROR
    await stage.settle(ctx)
    assert await counters.values(["spend:user:ana:2026-11"]) == [0]
    with pytest.raises(InsufficientQuotaError) as refused:
        await stage.process(request(max_tokens=200))  # ~2,260 > 2,000
    assert refused.value.status_code == 429 and refused.value.code == "insufficient_quota" and "user 'ana'" in refused.value.message


async def test_rpm_and_tpm_refuse_with_retry_after_until_the_minute_turns(counters: CounterStore) -> None:
    from access.keys import KeyRecord

    class Keys:
        def by_id(self, key_id: str) -> KeyRecord:
            return KeyRecord("k1", "ana", "search", None, 2, 1000, dt.datetime.now(dt.UTC), None)

    stage = Admit(counters, Keys(), [], PRICER, worst_prices={}, local_ceiling_usd_per_mtok=Decimal(0),  # type: ignore[arg-type]
                  clock=lambda: NOW)
    await stage.process(request())
    with pytest.raises(RateLimitError) as too_many_tokens:
        await stage.process(request(max_tokens=900))  # 200 + 1,000 tokens this minute > 1,000
    assert "tokens per minute" in too_many_tokens.value.message
    await stage.process(request())
    with pytest.raises(RateLimitError) as too_many:
        await stage.process(request())
    assert too_many.value.retry_after_s == pytest.approx(45, abs=1) and too_many.value.headers() == {"Retry-After": "45"}


async def test_local_work_holds_the_budget_until_priced_then_counters_follow_the_ledger(
        counters: CounterStore, ledger_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """A hundred local requests at once against a team budget that fits ten at the ceiling: the
    provisional charges never exceed it; when the interval's replica time is shared out (dearer
    than the ceiling here) the counters move to the ledger's figures exactly, the one overshoot
    is logged, and the next request is refused."""
    database = Database(ledger_url)
    database.migrate()
    store = SqlLedgerStore(database)
    pricer = Pricer(PRICER.table, clock=lambda: NOW, local_usd_per_mtok=Decimal(1))
    probe = request()
    budget = BudgetLimit("team", "search", "day", 10 * (probe.facts.prompt_tokens + 100) + 50)
    stage = Admit(counters, None, [budget], pricer, worst_prices={}, local_ceiling_usd_per_mtok=Decimal(1),
                  clock=lambda: NOW)
    rows = []
    refused = 0
    tried = 0
    all_tried = asyncio.Event()

    async def one() -> None:
        nonlocal refused, tried
        ctx = request()
        try:
            await stage.process(ctx)
        except InsufficientQuotaError:
            refused += 1
            return
        finally:
            tried += 1
            if tried == 100:
                all_tried.set()
        await all_tried.wait()  # every admission sees only reservations, none settled yet
        await asyncio.sleep(random.random() / 100)
        ctx.destination, ctx.model_served, ctx.status = LOCAL, "m", Status.OK
        ctx.usage = Usage(prompt_tokens=100, completion_tokens=random.randint(1, 100))
        rows.append(pricer.row(ctx))
        await stage.settle(ctx)

    try:
        await asyncio.gather(*(one() for _ in range(100)))
        assert (len(rows), refused) == (10, 90)
        key = "spend:team:search:2026-11-28"
        (provisional,) = await counters.values([key])
        assert provisional == sum(r.cost_micro_usd for r in rows) <= budget.limit_micro_usd
        store.insert(rows)
        start = interval_start(NOW, 60)
        allocator = LocalCostAllocator(store.engine, {"m": Decimal("3.6")}, "v-test", interval_s=60)
        priced = allocator.allocate([ReplicaInterval("m", "r1", start, 60.0, 3.0)], start + 120)
        await stage.true_up(priced.rows)
        with store.engine.connect() as c:
            ledger_sum = c.execute(sa.select(sa.func.sum(ledger_table.c.cost_micro_usd))).scalar_one()
        assert ledger_sum == 3_000 and await counters.values([key]) == [3_000], "counters equal the ledger to the micro-dollar"
        assert [r.message for r in caplog.records if "overshoot" in r.message] == [
            "budget overshoot by local work priced after admission: team 'search' day spent $0.003000 of $" + f"{budget.limit_micro_usd / 1e6:.6f}"]
        with pytest.raises(InsufficientQuotaError):
            await stage.process(request())
    finally:
        database.dispose()


async def test_an_unreachable_redis_refuses_with_503_and_retry_after_rather_than_admitting_unmetered() -> None:
    from contracts.errors import StoreUnavailableError
    pools = RedisPools()
    client = pools.client("redis://127.0.0.1:1/0")  # nothing listens there
    stage = admit(RedisCounters(client), [BudgetLimit("team", "search", "day", 10**9)])
    try:
        with pytest.raises(StoreUnavailableError) as refused:
            await stage.process(request())
    finally:
        await pools.aclose()
    assert refused.value.status_code == 503 and refused.value.headers() == {"Retry-After": "1"}
