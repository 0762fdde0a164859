"""What the ingress runs of costbook: the key cache, the admit stage (rate limits, budgets), the
ledger sink, the local cost allocation and the admin API, over one database (and Redis when
configured), started and stopped with the app."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import ChainMap
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

from costbook.admit import MICRO, Admit, BudgetLimit
from costbook.counters import Counters, MemoryCounters, RedisCounters
from costbook.keys import KeyCache, KeyStore, load_key_secret
from costbook.ledger import LOCAL_PENDING_VERSION, Pricer
from costbook.local_cost import AllocationLoop, LocalCostAllocator, Priced, ReplicaTimeSource
from costbook.prices import DEFAULT_PRICES, PriceTable
from costbook.recorder import LedgerRecorder
from costbook.store import LedgerStore, database_url
from fallback.decision import LOCAL
from serving.config import SpilloverConfig
from serving.context import Principal, RequestContext
from serving.metrics import Metrics
from serving.redis_pool import redis_client
from serving.stages.authenticate import static_keys_from_env

__all__ = ["Costbook"]

#: The share of a budget spent at which the soft-limit signal turns on.
SOFT_LIMIT = 0.8


class Costbook:
    def __init__(self, store: LedgerStore, keys: KeyCache, pricer: Pricer, counters: Counters, *, ledger: bool, spool_dir: Path,
                 static_keys_env: str, admin_key: str | None, local_cost: LocalCostAllocator | None = None) -> None:
        self.store = store
        self.keys = keys
        self.pricer = pricer
        self.counters = counters
        self.ledger = LedgerRecorder(store, spool_dir) if ledger else None
        self.admin_key = admin_key
        self.local_cost = local_cost if ledger else None
        self._static = static_keys_from_env(static_keys_env, digest_of=keys.store.digest)
        self._metrics: Metrics | None = None
        self._admit: Admit | None = None
        self._allocation: asyncio.Task[None] | None = None

    def attach(self, metrics: Metrics) -> None:
        """Export spend and team budgets through the app's metrics."""
        self._metrics = metrics

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
        if self.ledger is not None:
            await self.ledger.append(row)

    async def _on_priced(self, priced: Priced) -> None:
        """Local rows got their share of replica time: budgets and spend metrics follow."""
        if self._admit is not None:
            await self._admit.true_up(priced.rows)
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

    @classmethod
    def from_config(cls, config: SpilloverConfig) -> Costbook:
        store = LedgerStore(database_url(config.stores.postgres_dsn, config.stores.sqlite_path))
        store.migrate()
        auth = config.auth
        keys = KeyCache(KeyStore(store.engine, load_key_secret(auth.secret_env, auth.secret_file)), refresh_s=auth.refresh_s)
        prices = PriceTable.load(Path(config.costs.price_table).expanduser() if config.costs.price_table else DEFAULT_PRICES)
        if config.stores.redis_url:
            counters: Counters = RedisCounters(redis_client(config.stores.redis_url), config.stores.redis_prefix)
        else:
            counters = MemoryCounters()
        ceiling = Decimal(str(config.costs.local_usd_per_mtok_ceiling))
        replica_hour = {
            m.name: Decimal(str(m.usd_per_replica_hour)) if m.usd_per_replica_hour is not None
            else prices.local.replica_hour(m.gpus_per_replica, m.cpus_per_replica)
            for m in config.models
        }
        local_cost = LocalCostAllocator(store.engine, replica_hour, prices.version, interval_s=config.costs.local_interval_s)
        return cls(store, keys, Pricer(prices, local_usd_per_mtok=ceiling), counters, ledger=config.costs.ledger,
                   spool_dir=Path(config.stores.spool_dir).expanduser(), static_keys_env=auth.keys_env,
                   admin_key=os.environ.get(auth.admin_key_env) or None, local_cost=local_cost)

    def admit_stage(self, config: SpilloverConfig, default_max_tokens: int) -> Admit:
        budgets = [
            BudgetLimit(b.scope, b.name, period, round(usd * MICRO))
            for b in config.costs.budgets
            for period, usd in (("day", b.daily_usd), ("month", b.monthly_usd))
            if usd is not None
        ]
        if self._admit is None:
            self._admit = Admit(self.counters, self.keys, budgets, self.pricer, worst_prices=worst_prices(config, self.pricer.table),
                                local_ceiling_usd_per_mtok=Decimal(str(config.costs.local_usd_per_mtok_ceiling)),
                                default_max_tokens=default_max_tokens, watch_team_budget=self._watch_team_budget)
        return self._admit

    def principals(self) -> Mapping[str, Principal]:
        """Digest -> principal: keys from the store first, then static keys from the environment."""
        return ChainMap(self.keys, self._static)  # type: ignore[arg-type]  # a Mapping is enough for lookups

    def digest(self, key: str) -> str:
        return self.keys.store.digest(key)

    def start(self, replica_time: ReplicaTimeSource | None = None) -> None:
        """Start refreshing keys and moving ledger rows; with ``replica_time`` (the engines'
        replica time), price local work too."""
        self.keys.start()
        if self.ledger is not None:
            self.ledger.start()
        if self.local_cost is not None and replica_time is not None:
            self._allocation = asyncio.create_task(AllocationLoop(self.local_cost, replica_time, self._on_priced).run())

    async def aclose(self) -> None:
        if self._allocation is not None:
            self._allocation.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._allocation
        await self.keys.aclose()
        if self.ledger is not None:
            await self.ledger.aclose()
        if isinstance(self.counters, RedisCounters):
            await self.counters.aclose()
        self.store.dispose()


def worst_prices(config: SpilloverConfig, table: PriceTable) -> dict[str, tuple[Decimal, Decimal]]:
    """Per route, the dearest input and output prices among its hosted targets; a target with
    no price in the table counts at the table's dearest (a budget must not under-reserve)."""
    dearest = (max((p.input for p in table.models.values()), default=Decimal(0)),
               max((p.output for p in table.models.values()), default=Decimal(0)))
    providers = {p.name: p for p in config.providers}
    out = {}
    for name, route in config.routes.items():
        prices = []
        for target in route.hosted if route.allow_hosted else []:
            provider = providers.get(target.provider)
            model = target.model or (provider.models.get(name) if provider is not None else None) or name
            price = table.price(model)
            prices.append((price.input, price.output) if price is not None else dearest)
        out[name] = (max((p[0] for p in prices), default=Decimal(0)), max((p[1] for p in prices), default=Decimal(0)))
    return out
