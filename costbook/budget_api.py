"""``GET /v1/budget``: any caller sees what its budgets have left this period."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request

from access.authenticate import Authenticate
from contracts.context import Api, RequestContext, new_request_id
from contracts.stores import CounterStore
from costbook.admit import MICRO, Admit, period_keys

__all__ = ["budget_router"]


def budget_router(authenticate: Authenticate, admit: Admit, counters: CounterStore) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/budget")
    async def budget(request: Request) -> dict[str, Any]:
        ctx = RequestContext(new_request_id(), Api.CHAT, "", {}, False, {k.lower(): v for k, v in request.headers.items()})
        await authenticate.process(ctx)
        periods = period_keys(dt.datetime.now(dt.UTC))
        budgets = admit.budget_keys(ctx.principal, dt.datetime.now(dt.UTC))
        limits = [b for b, _ in budgets]
        spent = await counters.values([key for _, key in budgets])
        return {
            "object": "budget", "key_id": ctx.principal.key_id, "user": ctx.principal.user, "team": ctx.principal.team,
            "budgets": [
                {"scope": b.scope, "name": b.name, "period": b.period, "period_label": periods[b.period][0],
                 "limit_usd": b.limit_micro_usd / MICRO, "spent_usd": used / MICRO,
                 "remaining_usd": max(0, b.limit_micro_usd - used) / MICRO}
                for b, used in zip(limits, spent, strict=True)
            ],
        }

    return router
