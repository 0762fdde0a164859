"""The admit stage: per-key rate limits and budgets, reserved before dispatch, settled after.

Admission reserves the worst case: the request counts once against its key's requests per
minute, ``prompt + max_tokens`` against its tokens per minute, and the most it could cost
(prompt x the dearest input price among the route's targets + ``max_tokens`` x the dearest
output price; local work at a configured ceiling per million tokens) against every budget it
falls under: its key's month, and its user's and team's UTC day and month. All of it in one
atomic step (:mod:`costbook.counters`), so concurrent requests never overspend. Settle replaces
the reservation with what the ledger records (tokens used, cost at list price), so budget
counters and ledger sums agree to the micro-dollar; a failed request settles to what it cost,
usually nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from access.keys import KeyCache
from contracts.batch import BatchLine
from contracts.context import Api, Principal, RequestContext
from contracts.errors import RateLimitError, StoreUnavailableError
from contracts.pipeline import Stage
from contracts.routing import RouteChoice
from contracts.stores import Charge, CounterStore
from costbook.ledger import Pricer
from costbook.local_cost import Allocation

__all__ = ["Admit", "BudgetLimit", "BudgetWatcher", "Reservation", "period_keys"]

MICRO = 1_000_000

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BudgetLimit:
    """A budget rule: ``scope`` (key, user or team) ``name`` may spend ``limit`` micro-dollars a ``period``."""

    scope: str
    name: str
    period: str  # "day" or "month"
    limit_micro_usd: int


@dataclass
class Reservation:
    budgets: list[BudgetLimit]
    budget_keys: list[str]
    tokens_key: str | None
    cost_micro_usd: int
    tokens: int


#: Told what a team's budget has spent this period after each settle (the budget gauges).
BudgetWatcher = Callable[[BudgetLimit, int], None]


class InsufficientQuotaError(RateLimitError):
    default_code = "insufficient_quota"
    type = "insufficient_quota"


def period_keys(now: dt.datetime) -> dict[str, tuple[str, int]]:
    """Each period's label and seconds to keep its counter (the period's rest plus a day)."""
    tomorrow = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    next_month = (now.replace(day=1) + dt.timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return {
        "day": (now.strftime("%Y-%m-%d"), int((tomorrow - now).total_seconds()) + 86_400),
        "month": (now.strftime("%Y-%m"), int((next_month - now).total_seconds()) + 86_400),
    }


class Admit(Stage):
    name = "admit"

    def __init__(self, counters: CounterStore, keys: KeyCache | None, budgets: Sequence[BudgetLimit], pricer: Pricer, *,
                 worst_prices: Mapping[str, tuple[Decimal, Decimal]], local_ceiling_usd_per_mtok: Decimal,
                 watch_team_budget: BudgetWatcher | None = None, clock: Callable[[], float] = time.time) -> None:
        self._counters = counters
        self._keys = keys
        self._budgets = {(b.scope, b.name, b.period): b for b in budgets}
        self._pricer = pricer
        self._worst = worst_prices
        self._local_ceiling = local_ceiling_usd_per_mtok
        self.watch_team_budget = watch_team_budget
        self._clock = clock

    def limits_for(self, principal: Principal) -> list[BudgetLimit]:
        record = self._keys.by_id(principal.key_id) if self._keys is not None else None
        found = []
        if record is not None and record.budget_micro_usd is not None:
            found.append(BudgetLimit("key", principal.key_id, "month", record.budget_micro_usd))
        for scope, name in (("user", principal.user), ("team", principal.team)):
            found += [b for period in ("day", "month") if (b := self._budgets.get((scope, name, period))) is not None]
        return found

    def budget_keys(self, principal: Principal, at: dt.datetime) -> list[tuple[BudgetLimit, str]]:
        """Each budget ``principal`` falls under, with its counter for the period holding ``at``."""
        periods = period_keys(at)
        return [(b, f"spend:{b.scope}:{b.name}:{periods[b.period][0]}") for b in self.limits_for(principal)]

    def worst_cost(self, ctx: RequestContext, prompt_tokens: int, max_tokens: int) -> int:
        input_price, output_price = self._worst.get(ctx.route, (Decimal(0), Decimal(0)))
        hosted = prompt_tokens * input_price + max_tokens * output_price
        local = (prompt_tokens + max_tokens) * self._local_ceiling
        return math.ceil(max(hosted, local))

    async def process(self, ctx: RequestContext) -> None:
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
        minute = now.strftime("%Y-%m-%dT%H:%M")
        periods = period_keys(now)
        prompt, max_tokens = ctx.facts.prompt_tokens, ctx.facts.max_tokens
        cost = 0 if ctx.api is Api.EMBEDDINGS else self.worst_cost(ctx, prompt, max_tokens)
        # A batch line is charged to budgets, never to rate limits (it waits for idle capacity anyway).
        record = self._keys.by_id(ctx.principal.key_id) if self._keys is not None and ctx.slot(BatchLine) is None else None
        charges: list[Charge] = []
        tokens_key = None
        if record is not None and record.rpm is not None:
            charges.append(Charge(f"rpm:{record.key_id}:{minute}", 1, record.rpm, 120))
        if record is not None and record.tpm is not None:
            tokens_key = f"tpm:{record.key_id}:{minute}"
            charges.append(Charge(tokens_key, prompt + max_tokens, record.tpm, 120))
        budgets = self.budget_keys(ctx.principal, now)
        limits = [b for b, _ in budgets]
        budget_charges = [Charge(key, cost, b.limit_micro_usd, periods[b.period][1]) for b, key in budgets]
        try:
            failed = await self._counters.admit([*charges, *budget_charges])
        except StoreUnavailableError as exc:
            logger.warning("rate-limit store unavailable: %s", type(exc.__cause__).__name__, extra={"request_id": ctx.request_id})
            raise
        if failed is not None:
            raise self._refusal(failed, charges, limits, now)
        ctx.put(Reservation(limits, [c.key for c in budget_charges], tokens_key, cost, prompt + max_tokens))

    def _refusal(self, failed: int, rate_charges: list[Charge], limits: list[BudgetLimit], now: dt.datetime) -> RateLimitError:
        if failed < len(rate_charges):
            kind = "requests" if rate_charges[failed].key.startswith("rpm:") else "tokens"
            retry = 60 - now.second - now.microsecond / 1e6
            return RateLimitError(f"Rate limit reached for this key: {rate_charges[failed].limit} {kind} per minute.", retry_after_s=max(1.0, retry))
        b = limits[failed - len(rate_charges)]
        return InsufficientQuotaError(
            f"Budget exceeded: {b.scope} '{b.name}' may spend ${b.limit_micro_usd / MICRO:.2f} a {b.period} (UTC); "
            "this request's worst case does not fit in what is left.", param=f"budget.{b.scope}.{b.period}")

    async def settle(self, ctx: RequestContext) -> None:
        reservation = ctx.pop(Reservation)
        if reservation is None:
            return
        actual = self._pricer.priced(ctx).cost_micro_usd
        choice = ctx.slot(RouteChoice)
        if choice is not None:  # a cascade's abandoned cheap attempts were paid for too
            actual += sum(self._pricer.priced(attempt).cost_micro_usd for attempt in choice.attempts)
        deltas = dict.fromkeys(reservation.budget_keys, actual - reservation.cost_micro_usd)
        if reservation.tokens_key is not None:
            deltas[reservation.tokens_key] = ctx.usage.total_tokens - reservation.tokens
        spent = await self._counters.add(deltas)
        self._watch_teams(zip(reservation.budgets, reservation.budget_keys, strict=True), spent)

    async def hold(self, principal: Principal, amount_micro_usd: int, at: float) -> None:
        """Reserve ``amount`` (a batch's worst case) in every budget ``principal`` falls under, for
        the period holding ``at``; refused whole (429 ``insufficient_quota``) when it does not fit."""
        now = dt.datetime.fromtimestamp(at, dt.UTC)
        budgets = self.budget_keys(principal, now)
        if not budgets or amount_micro_usd <= 0:
            return
        periods = period_keys(now)
        failed = await self._counters.admit([Charge(key, amount_micro_usd, b.limit_micro_usd, periods[b.period][1]) for b, key in budgets])
        if failed is not None:
            b = budgets[failed][0]
            raise InsufficientQuotaError(
                f"Budget exceeded: {b.scope} '{b.name}' may spend ${b.limit_micro_usd / MICRO:.2f} a {b.period} (UTC); "
                "this batch's worst case does not fit in what is left.", param=f"budget.{b.scope}.{b.period}")

    async def release(self, principal: Principal, amount_micro_usd: int, at: float) -> None:
        """Give back part of a :meth:`hold` (made for the period holding ``at``)."""
        budgets = self.budget_keys(principal, dt.datetime.fromtimestamp(at, dt.UTC))
        if budgets and amount_micro_usd:
            spent = await self._counters.add({key: -amount_micro_usd for _, key in budgets})
            self._watch_teams(budgets, spent)

    async def charge(self, ctx: RequestContext) -> None:
        """Add a request answered outside the pipeline (a hosted batch's line) to its budgets at its
        ledger price."""
        budgets = self.budget_keys(ctx.principal, dt.datetime.fromtimestamp(self._clock(), dt.UTC))
        cost = self._pricer.priced(ctx).cost_micro_usd
        if budgets and cost:
            spent = await self._counters.add({key: cost for _, key in budgets})
            self._watch_teams(budgets, spent)

    async def true_up(self, allocations: Sequence[Allocation]) -> None:
        """Local rows priced after their settle: move each budget by what changed, so counters
        keep matching the ledger. A local request may so end over budget (its cost was not
        known at admission): the next request is refused, and the overshoot is logged."""
        deltas: dict[str, int] = defaultdict(int)
        budgets: dict[str, BudgetLimit] = {}
        for a in allocations:
            for budget, key in self.budget_keys(Principal(a.key_id, a.user_name, a.team, a.feature), a.at):
                deltas[key] += a.delta_micro_usd
                budgets[key] = budget
        spent = await self._counters.add(deltas)
        for key, used in spent.items():
            if used > budgets[key].limit_micro_usd:
                logger.warning("budget overshoot by local work priced after admission: %s '%s' %s spent $%.6f of $%.6f",
                               budgets[key].scope, budgets[key].name, budgets[key].period, used / MICRO, budgets[key].limit_micro_usd / MICRO)
        self._watch_teams(((budgets[key], key) for key in deltas), spent)

    def _watch_teams(self, budgets: Iterable[tuple[BudgetLimit, str]], spent: Mapping[str, int]) -> None:
        if self.watch_team_budget is not None:
            for budget, key in budgets:
                if budget.scope == "team":
                    self.watch_team_budget(budget, spent[key])
