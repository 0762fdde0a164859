"""The ledger row: one per request, however it ended, and the table that holds them.

Every figure on a dashboard or in a report is a query over these rows (../shared/DESIGN.md).
Cancelled streams, cut streams and failed requests are rows too: that is the waste a report
shows. Money is integer micro-dollars; ``price_version`` says which price table priced the row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from costbook.prices import ModelPrice, PriceTable, cost_micro_usd
from fallback.decision import LOCAL
from serving.context import RequestContext

__all__ = ["LOCAL_PENDING_VERSION", "LedgerRow", "Pricer"]

#: Local rows wait for the GPU-seconds allocation to price them.
LOCAL_PENDING_VERSION = "gpu:pending"
UNPRICED_VERSION = "unpriced"

@dataclass(frozen=True)
class LedgerRow:
    request_id: str
    at: dt.datetime
    key_id: str
    user_name: str
    team: str
    feature: str | None
    api: str
    model_asked: str
    model_served: str | None
    destination: str | None
    prompt_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cost_micro_usd: int
    price_version: str
    cache_result: str
    ttft_ms: float | None
    total_ms: float | None
    status: str
    spill_reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "at": self.at.isoformat()}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LedgerRow:
        return cls(**{**raw, "at": dt.datetime.fromisoformat(raw["at"])})


class Pricer:
    """Prices a finished request: hosted usage at the table's list price for the model served;
    local work waits for the GPU-seconds allocation; a cache hit costs nothing."""

    def __init__(self, table: PriceTable, clock: Callable[[], float] = time.time) -> None:
        self.table = table
        self._clock = clock

    def price_of(self, model: str | None) -> ModelPrice | None:
        return None if model is None else self.table.price(model)

    def row(self, ctx: RequestContext) -> LedgerRow:
        usage, principal, timings = ctx.usage, ctx.principal, ctx.timings
        total_s = timings.total_s()
        ttft_s = timings.ttft_s()
        cost, version = 0, self.table.version
        if ctx.cache_result in ("exact", "semantic"):
            pass
        elif ctx.destination == LOCAL:
            version = LOCAL_PENDING_VERSION
        elif ctx.destination is not None:
            price = self.price_of(ctx.model_served)
            if price is None:
                version = UNPRICED_VERSION
            else:
                cost = cost_micro_usd(usage, price)
        return LedgerRow(
            request_id=ctx.request_id,
            at=dt.datetime.fromtimestamp(self._clock() - (total_s or 0.0), dt.UTC),
            key_id=principal.key_id,
            user_name=principal.user,
            team=principal.team,
            feature=principal.feature,
            api=ctx.api.value,
            model_asked=ctx.model,
            model_served=ctx.model_served,
            destination=ctx.destination,
            prompt_tokens=usage.prompt_tokens,
            cached_tokens=usage.cached_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            completion_tokens=usage.completion_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost_micro_usd=cost,
            price_version=version,
            cache_result=ctx.cache_result.value,
            ttft_ms=None if ttft_s is None else round(ttft_s * 1000, 3),
            total_ms=None if total_s is None else round(total_s * 1000, 3),
            status=ctx.status.value,
            spill_reason=None if ctx.spill_reason is None else ctx.spill_reason.value,
        )
