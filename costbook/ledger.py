"""The ledger row: one per request, however it ended, and the table that holds them.

Every figure on a dashboard or in a report is a query over these rows (../shared/DESIGN.md).
Cancelled streams, cut streams and failed requests are rows too: that is the waste a report
shows. Money is integer micro-dollars; ``price_version`` says which price table priced the row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from contracts.batch import BatchLine
from contracts.compression import Compression
from contracts.context import RequestContext, Usage
from contracts.experiments import Assignment, Finish
from contracts.ledger_row import LedgerRow
from contracts.routing import AttemptOf, RouteChoice
from contracts.spill import LOCAL
from costbook.prices import ModelPrice, PriceTable, cost_micro_usd

__all__ = ["LOCAL_PENDING_VERSION", "Pricer"]

#: Local rows carry a provisional cost (tokens at the configured ceiling) until the replica time
#: of the interval they finished in is shared out (costbook.local_cost).
LOCAL_PENDING_VERSION = "gpu:pending"
UNPRICED_VERSION = "unpriced"


class Pricer:
    """Prices a finished request: hosted usage at the table's list price for the model served;
    local work provisionally at ``local_usd_per_mtok`` until its replica time is shared out; a
    cache hit costs nothing."""

    def __init__(self, table: PriceTable, clock: Callable[[], float] = time.time, *, local_usd_per_mtok: Decimal = Decimal(0),
                 sync_models: Mapping[str, Sequence[str]] | None = None) -> None:
        """``sync_models``: per route, the hosted models it spills to (a local batch line's sync
        counterfactual is the first one priced)."""
        self._sync_models = sync_models or {}
        self.table = table
        self._clock = clock
        self._local_usd_per_mtok = local_usd_per_mtok

    def price_of(self, model: str | None) -> ModelPrice | None:
        return None if model is None else self.table.price(model)

    def usage_cost(self, usage: Usage, models: Sequence[str]) -> int:
        """``usage`` at the first of ``models`` the table prices, else at the local ceiling."""
        price = next((p for p in map(self.table.price, models) if p is not None), None)
        return cost_micro_usd(usage, price) if price is not None else self._local_cost(usage)

    def _local_cost(self, usage: Usage) -> int:
        """Local work's provisional cost: its tokens at the configured ceiling."""
        return math.ceil(usage.total_tokens * self._local_usd_per_mtok)

    def priced(self, ctx: RequestContext) -> LedgerRow:
        """The request's row, priced once (settle and the ledger sink both need it)."""
        row = ctx.slot(LedgerRow)
        if row is None:
            row = self.row(ctx)
            ctx.put(row)
        return row

    def row(self, ctx: RequestContext) -> LedgerRow:
        usage, principal, timings = ctx.usage, ctx.principal, ctx.timings
        total_s = timings.total_s()
        ttft_s = timings.ttft_s()
        cost, version, price, charged = 0, self.table.version, None, None
        batch = ctx.slot(BatchLine)
        if ctx.cache_result in ("exact", "semantic"):
            pass
        elif ctx.destination == LOCAL:
            version = LOCAL_PENDING_VERSION
            cost = self._local_cost(usage)
        elif ctx.destination is not None:
            price = self.price_of(ctx.model_served)
            if price is None:
                version = UNPRICED_VERSION
            else:
                charged = price.for_batch() if batch is not None and batch.via_hosted_batch else price
                cost = cost_micro_usd(usage, charged)
        now = self._clock()
        choice = ctx.slot(RouteChoice)
        return LedgerRow(
            request_id=ctx.request_id,
            at=dt.datetime.fromtimestamp(now - (total_s or 0.0), dt.UTC),
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
            finished_at=dt.datetime.fromtimestamp(now, dt.UTC),
            **_routing_fields(ctx, choice),
            batch_id=batch.batch_id if batch is not None else None,
            sync_cost_micro_usd=self._sync_cost(ctx, price) if batch is not None else None,
            **self._compression_fields(ctx, charged),
            **_experiment_fields(ctx),
        )

    def _sync_cost(self, ctx: RequestContext, price: ModelPrice | None) -> int | None:
        """A batch line's usage at sync list price: a hosted line's model's regular price, a local
        line's route's first priced hosted model (none: no counterfactual)."""
        if ctx.cache_result in ("exact", "semantic"):
            return 0
        if ctx.destination != LOCAL:
            return cost_micro_usd(ctx.usage, price) if price is not None else None
        hosted = next((p for p in map(self.table.price, self._sync_models.get(ctx.route, ())) if p is not None), None)
        return cost_micro_usd(ctx.usage, hosted) if hosted is not None else None

    def _compression_fields(self, ctx: RequestContext, price: ModelPrice | None) -> dict[str, Any]:
        """The compression columns: the removed prompt tokens priced as the row's own were."""
        compression = ctx.slot(Compression)
        if compression is None:
            return {}
        removed = Usage(prompt_tokens=compression.removed_tokens)
        if ctx.destination == LOCAL:
            saved: int | None = self._local_cost(removed)
        else:
            saved = cost_micro_usd(removed, price) if price is not None else None
        return {"compression": compression.outcome.value, "prompt_tokens_original": compression.original_tokens,
                "compression_saved_micro_usd": saved}


def _experiment_fields(ctx: RequestContext) -> dict[str, Any]:
    """The variant, the finish reason and the prompt's hash: what an experiment report reads."""
    assignment, finish = ctx.slot(Assignment), ctx.slot(Finish)
    fields: dict[str, Any] = {"prompt_hash": prompt_hash(ctx.body)}
    if assignment is not None:
        fields |= {"experiment": assignment.experiment, "variant": assignment.variant}
    if finish is not None:
        fields["finish_reason"] = finish.reason[:32]
    return fields


def prompt_hash(body: Mapping[str, Any]) -> str | None:
    """A hash of what was asked (messages or prompt), not of sampling settings: a user asking the
    same thing again is a retry whatever they changed around it."""
    asked = body.get("messages", body.get("prompt", body.get("input")))
    if asked is None:
        return None
    return hashlib.blake2b(json.dumps(asked, sort_keys=True, default=str).encode(), digest_size=12).hexdigest()


def _routing_fields(ctx: RequestContext, choice: RouteChoice | None) -> dict[str, Any]:
    """The routing columns: the request's own choice, or on an abandoned attempt the request it was for."""
    attempt = ctx.slot(AttemptOf)
    if attempt is not None:
        return {"attempt_of": attempt.request_id}
    if choice is None:
        return {}
    return {"router": choice.router, "route_score": None if choice.score is None else round(choice.score, 6),
            "route_reason": choice.reason.value,
            "escalations": choice.escalations_text()[:512] or None}
