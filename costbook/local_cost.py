"""Local cost: each interval's replica time, priced, and shared out to the requests it served.

A local model's replicas cost their up time x the price of a replica-hour, loading and draining
included (serving.replica_time). Per interval, the part its engines were busy is shared out to
the local requests that finished in it, by their tokens (prompt + completion), in whole
micro-dollars (largest remainder, so the shares sum exactly); the rest is idle cost. So, per
interval, attributed + idle = replica-hours x price, to the micro-dollar.

Until then a local row carries a provisional cost (costbook.ledger.Pricer); allocation replaces
it and returns each row's difference, for the budget counters and the spend metrics. Every
ingress replica runs the allocator; the interval's row (primary key model + start) is inserted
in the same transaction as the row updates, so exactly one of them prices each interval. A row
that reaches the database after its interval was priced (an ingress killed mid-move) is priced
at that interval's rate per token, out of its idle cost.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

import sqlalchemy as sa

from contracts.background import run_every
from contracts.engine_state import ReplicaInterval, interval_start
from contracts.spill import LOCAL
from costbook.ledger import LOCAL_PENDING_VERSION
from stores.sql_schema import ledger_table as ledger
from stores.sql_schema import local_intervals_table as intervals

__all__ = ["Allocation", "AllocationLoop", "LocalCostAllocator", "Priced", "ReplicaTimeSource", "largest_remainder"]

logger = logging.getLogger(__name__)

ReplicaTimeSource = Callable[[float, float], Awaitable[list[ReplicaInterval]]]


@dataclass(frozen=True)
class Allocation:
    """A local row's priced cost and what changed from its provisional one."""

    request_id: str
    key_id: str
    user_name: str
    team: str
    feature: str | None
    model_asked: str
    at: dt.datetime
    cost_micro_usd: int
    delta_micro_usd: int


@dataclass
class Priced:
    """What one allocation round priced: the rows, and the idle cost it added per model."""

    rows: list[Allocation] = field(default_factory=list)
    idle_micro_usd: dict[str, int] = field(default_factory=dict)

    def add(self, other: Priced) -> None:
        self.rows += other.rows
        for model, idle in other.idle_micro_usd.items():
            self.idle_micro_usd[model] = self.idle_micro_usd.get(model, 0) + idle


def largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` into integers that sum to ``total``."""
    whole = sum(weights)
    if whole == 0:
        return [0] * len(weights)
    exact = [total * w for w in weights]
    shares = [e // whole for e in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: exact[i] % whole, reverse=True)
    for i in by_remainder[: total - sum(shares)]:
        shares[i] += 1
    return shares


def _micro(seconds: float, usd_per_hour: Decimal) -> int:
    return int((Decimal(str(seconds)) * usd_per_hour * 1_000_000 / 3600).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


class LocalCostAllocator:
    def __init__(self, engine: sa.Engine, usd_per_replica_hour: Mapping[str, Decimal], price_version: str, *,
                 interval_s: float = 60.0, grace_s: float = 10.0) -> None:
        """``grace_s``: how long after an interval ends its rows may still be on their way to the
        database (the spool's mover runs twice a second)."""
        self._engine = engine
        self._prices = dict(usd_per_replica_hour)
        self._version = price_version
        self.interval_s = interval_s
        self._grace_s = grace_s

    def due_before(self, now: float) -> float:
        """Intervals ending by this time are ready to price."""
        return interval_start(now - self._grace_s, self.interval_s)

    def allocate(self, replica_time: Sequence[ReplicaInterval], now: float) -> Priced:
        """Price every interval of ``replica_time`` that is due; already priced ones only take
        their late rows."""
        grouped: dict[tuple[str, float], list[ReplicaInterval]] = defaultdict(list)
        for piece in replica_time:
            start = interval_start(piece.start, self.interval_s)
            if piece.model in self._prices and start + self.interval_s <= self.due_before(now):
                grouped[(piece.model, start)].append(piece)
        done = Priced()
        for (model, start), pieces in sorted(grouped.items(), key=lambda kv: kv[0][1]):
            done.add(self._allocate_interval(model, start, pieces))
        return done

    def _allocate_interval(self, model: str, start: float, pieces: Sequence[ReplicaInterval]) -> Priced:
        try:
            return self._price_interval(model, start, pieces)
        except sa.exc.IntegrityError:  # another ingress replica priced it first: its transaction won
            return Priced()

    def _price_interval(self, model: str, start: float, pieces: Sequence[ReplicaInterval]) -> Priced:
        begin = dt.datetime.fromtimestamp(start, dt.UTC)
        end = dt.datetime.fromtimestamp(start + self.interval_s, dt.UTC)
        price = self._prices[model]
        with self._engine.begin() as connection:
            # Lock a priced interval before reading its rows: two replicas never price one row twice.
            existing = connection.execute(
                sa.select(intervals).where(intervals.c.model == model, intervals.c.start == begin).with_for_update()
            ).first()
            rows = connection.execute(
                sa.select(ledger.c.request_id, ledger.c.key_id, ledger.c.user_name, ledger.c.team, ledger.c.feature, ledger.c.model_asked, ledger.c.at,
                          ledger.c.cost_micro_usd, (ledger.c.prompt_tokens + ledger.c.completion_tokens).label("tokens"))
                .where(ledger.c.destination == LOCAL, ledger.c.model_served == model, ledger.c.price_version == LOCAL_PENDING_VERSION,
                       ledger.c.finished_at >= begin, ledger.c.finished_at < end)
                .order_by(ledger.c.request_id)
            ).all()
            if existing is not None and not rows:
                return Priced()
            tokens = [int(r.tokens) for r in rows]
            if existing is None:
                up_s, busy_s = sum(p.up_s for p in pieces), sum(p.busy_s for p in pieces)
                cost, busy_cost = _micro(up_s, price), _micro(min(busy_s, up_s), price)
                attributed = busy_cost if sum(tokens) else 0
                shares = largest_remainder(attributed, tokens)
                connection.execute(sa.insert(intervals).values(
                    model=model, start=begin, interval_s=int(self.interval_s), replicas=len({p.replica_id for p in pieces}),
                    up_s=up_s, busy_s=busy_s, tokens=sum(tokens), cost_micro_usd=cost, attributed_micro_usd=attributed,
                    idle_micro_usd=cost - attributed, usd_per_replica_hour=price, price_version=self._version))
                idle_change = cost - attributed
            else:
                shares = self._late_shares(existing, tokens)
                taken = sum(shares)
                idle_change = -taken
                connection.execute(sa.update(intervals).where(intervals.c.model == model, intervals.c.start == begin).values(
                    tokens=existing.tokens + sum(tokens), attributed_micro_usd=existing.attributed_micro_usd + taken,
                    idle_micro_usd=existing.idle_micro_usd - taken))
            for row, share in zip(rows, shares, strict=True):
                connection.execute(sa.update(ledger).where(ledger.c.request_id == row.request_id)
                                   .values(cost_micro_usd=share, price_version=self._version))
        allocations = [Allocation(r.request_id, r.key_id, r.user_name, r.team, r.feature, r.model_asked, r.at, share,
                                  share - int(r.cost_micro_usd)) for r, share in zip(rows, shares, strict=True)]
        return Priced(allocations, {model: idle_change})

    @staticmethod
    def _late_shares(existing: sa.Row, tokens: Sequence[int]) -> list[int]:
        """Late rows: the interval's rate per token when it had rows, else its unclaimed busy
        cost; never more than its idle cost is left."""
        if existing.tokens:
            wanted = (existing.attributed_micro_usd * sum(tokens)) // existing.tokens
        else:
            wanted = _micro(min(existing.busy_s, existing.up_s), Decimal(existing.usd_per_replica_hour))
        return largest_remainder(min(wanted, existing.idle_micro_usd), tokens)


class AllocationLoop:
    """Runs the allocator in an ingress replica: reads replica time, prices what is due, and
    hands what it priced to ``on_priced`` (budget true-up, metrics)."""

    def __init__(self, allocator: LocalCostAllocator, source: ReplicaTimeSource,
                 on_priced: Callable[[Priced], Awaitable[None]], *, clock: Callable[[], float] = time.time) -> None:
        self._allocator = allocator
        self._source = source
        self._on_priced = on_priced
        self._clock = clock
        #: Late rows of intervals up to this long ago are still priced.
        self.look_back_s = 3600.0

    async def run_once(self) -> Priced:
        now = self._clock()
        pieces = await self._source(now - self.look_back_s, self._allocator.due_before(now))
        priced = await asyncio.to_thread(self._allocator.allocate, pieces, now)
        if priced.rows or priced.idle_micro_usd:
            await self._on_priced(priced)
        return priced

    def start(self) -> asyncio.Task[None]:
        """Price every half interval; a database or board hiccup is priced the next round."""
        return run_every(self._allocator.interval_s / 2, self.run_once, logger=logger, what="local cost allocation", first_at_once=True)
