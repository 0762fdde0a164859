"""What the ingress runs of costbook: the admit stage (rate limits, budgets), the ledger sink,
the local cost allocation and the spend series, over the shared database (and Redis when
configured), started and stopped with the app.

Built from the ``costs`` section, the shared stores, the key cache (access) and two facts the
composition root resolves from the rest of the config: each local model's replica shape and
each route's hosted models (their prices bound what a budget reserves).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from prometheus_client import CollectorRegistry

from access.keys import KeyCache
from contracts.background import stop_tasks
from contracts.context import RequestContext
from contracts.routing import RouteChoice
from contracts.spill import LOCAL
from contracts.stores import CounterStore
from costbook.admit import MICRO, Admit, BudgetLimit
from costbook.config import CostsConfig
from costbook.counters import MemoryCounters, RedisCounters
from costbook.ledger import LOCAL_PENDING_VERSION, Pricer
from costbook.ledger_store import SqlLedgerStore
from costbook.local_cost import AllocationLoop, LocalCostAllocator, Priced, ReplicaTimeSource
from costbook.metrics import CostMetrics
from costbook.prices import DEFAULT_PRICES, PriceTable
from costbook.recorder import LedgerRecorder
from stores.shared import SharedStores

__all__ = ["Costbook", "ReplicaShape", "worst_prices"]

#: The share of a budget spent at which the soft-limit signal turns on.
SOFT_LIMIT = 0.8


@dataclass(frozen=True)
class ReplicaShape:
    """What one replica of a local model holds, or what it costs an hour when configured."""

    gpus: int
    cpus: float
    usd_per_hour: float | None = None


class Costbook:
    def __init__(self, store: SqlLedgerStore, pricer: Pricer, counters: CounterStore, admit: Admit, *, ledger: bool,
                 spool_dir: Path, local_cost: LocalCostAllocator | None = None, hosted_models: Mapping[str, Sequence[str]] | None = None) -> None:
        self.store = store
        self._hosted_models = dict(hosted_models or {})
        self.pricer = pricer
        self.counters = counters
        self.admit = admit
        self.ledger = LedgerRecorder(store, spool_dir) if ledger else None
        self.local_cost = local_cost if ledger else None
        self._metrics: CostMetrics | None = None
        self._allocation: asyncio.Task[None] | None = None
        admit.watch_team_budget = self._watch_team_budget

    @classmethod
    def from_config(cls, costs: CostsConfig, stores: SharedStores, keys: KeyCache | None, *,
                    replica_shapes: Mapping[str, ReplicaShape], hosted_models: Mapping[str, Sequence[str]]) -> Costbook:
        """``hosted_models``: per route, the provider model names it may spill to (none: local only)."""
        database = stores.database()
        store = SqlLedgerStore(database)
        prices = PriceTable.load(Path(costs.price_table).expanduser() if costs.price_table else DEFAULT_PRICES)
        redis = stores.redis
        counters: CounterStore = RedisCounters(redis, stores.config.redis_prefix) if redis is not None else MemoryCounters()
        ceiling = Decimal(str(costs.local_usd_per_mtok_ceiling))
        replica_hour = {
            model: Decimal(str(shape.usd_per_hour)) if shape.usd_per_hour is not None else prices.local.replica_hour(shape.gpus, shape.cpus)
            for model, shape in replica_shapes.items()
        }
        local_cost = LocalCostAllocator(database.engine, replica_hour, prices.version, interval_s=costs.local_interval_s)
        pricer = Pricer(prices, local_usd_per_mtok=ceiling, sync_models=hosted_models)
        budgets = [
            BudgetLimit(b.scope, b.name, period, round(usd * MICRO))
            for b in costs.budgets
            for period, usd in (("day", b.daily_usd), ("month", b.monthly_usd))
            if usd is not None
        ]
        admit = Admit(counters, keys, budgets, pricer, worst_prices=worst_prices(hosted_models, prices), local_ceiling_usd_per_mtok=ceiling)
        return cls(store, pricer, counters, admit, ledger=costs.ledger, spool_dir=Path(stores.config.spool_dir).expanduser(),
                   local_cost=local_cost, hosted_models=hosted_models)

    def attach(self, registry: CollectorRegistry) -> None:
        """Export spend and team budgets on the app's registry."""
        self._metrics = CostMetrics(registry)

    async def record(self, ctx: RequestContext) -> None:
        """The sink: a finished request's ledger row (on disk before its last byte) and its
        cost and tokens by team, feature, model and destination."""
        row = self.pricer.priced(ctx)
        if self._metrics is not None:
            labels = (row.team, row.feature or "none", row.model_asked, row.destination or "none")
            if row.price_version != LOCAL_PENDING_VERSION:  # local cost counts once priced (_on_priced)
                self._metrics.cost.labels(*labels).inc(row.cost_micro_usd / MICRO)
            self._metrics.tokens.labels(*labels, "prompt").inc(row.prompt_tokens)
            self._metrics.tokens.labels(*labels, "completion").inc(row.completion_tokens)
            self._count_routing(ctx, row.cost_micro_usd)
        if self.ledger is not None:
            await self.ledger.append(row)

    def _count_routing(self, ctx: RequestContext, cost_micro_usd: int) -> None:
        """A routed request's cost, its abandoned attempts included, beside what its usage would
        have cost on the route's strongest candidate: at that candidate's first hosted model's
        list price where it has one, else at the local ceiling (the same usage: a stronger model
        would have written a different number of tokens, which no one can know)."""
        choice = ctx.slot(RouteChoice)
        if choice is None or self._metrics is None:
            return
        spent = cost_micro_usd + sum(self.pricer.priced(attempt).cost_micro_usd for attempt in choice.attempts)
        self._metrics.route_cost.labels(choice.route).inc(spent / MICRO)
        strongest = self.pricer.usage_cost(ctx.usage, self._hosted_models.get(choice.strongest, ()))
        self._metrics.route_strongest_cost.labels(choice.route).inc(strongest / MICRO)

    async def _on_priced(self, priced: Priced) -> None:
        """Local rows got their share of replica time: budgets and spend metrics follow."""
        await self.admit.true_up(priced.rows)
        if self._metrics is not None:
            for a in priced.rows:
                self._metrics.cost.labels(a.team, a.feature or "none", a.model_asked, LOCAL).inc(a.cost_micro_usd / MICRO)
            for model, idle in priced.idle_micro_usd.items():
                self._metrics.local_idle_cost.labels(model).inc(max(idle, 0) / MICRO)

    def _watch_team_budget(self, budget: BudgetLimit, spent: int) -> None:
        if self._metrics is None:
            return
        self._metrics.budget_remaining.labels(budget.name, budget.period).set(max(0, budget.limit_micro_usd - spent) / MICRO)
        self._metrics.budget_soft_limit.labels(budget.name, budget.period).set(float(spent >= SOFT_LIMIT * budget.limit_micro_usd))

    def start(self, replica_time: ReplicaTimeSource | None = None) -> None:
        """Start moving ledger rows; with ``replica_time`` (the engines' replica time), price
        local work too."""
        if self.ledger is not None:
            self.ledger.start()
        if self.local_cost is not None and replica_time is not None:
            self._allocation = AllocationLoop(self.local_cost, replica_time, self._on_priced).start()

    async def aclose(self) -> None:
        await stop_tasks(self._allocation)
        if self.ledger is not None:
            await self.ledger.aclose()


def worst_prices(hosted_models: Mapping[str, Sequence[str]], table: PriceTable) -> dict[str, tuple[Decimal, Decimal]]:
    """Per route, the dearest input and output prices among its hosted models; a model with no
    price in the table counts at the table's dearest (a budget must not under-reserve)."""
    dearest = (max((p.input for p in table.models.values()), default=Decimal(0)),
               max((p.output for p in table.models.values()), default=Decimal(0)))
    out = {}
    for route, models in hosted_models.items():
        prices = [(p.input, p.output) if (p := table.price(model)) is not None else dearest for model in models]
        out[route] = (max((p[0] for p in prices), default=Decimal(0)), max((p[1] for p in prices), default=Decimal(0)))
    return out
