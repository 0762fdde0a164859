"""``POST /v1/feedback``: a quality score on one request, from the key that made it.

The score lands on the request's ledger row (joined by request id in reports). Why the owner
check reads the ledger: the row says which key made the request, so another key, even of the same
team, gets 404 (not 403: it must not learn that the request exists). A row reaches the database
from its replica's spool within a second or so (costbook.spool); feedback sent right after the
response waits that long for it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.context import Principal
from contracts.errors import NotFoundError
from stores.sql_schema import feedback_table as f
from stores.sql_schema import ledger_table as ledger
from webio.bodies import parse_body, read_json_body

__all__ = ["FeedbackStore", "feedback_router"]

MAX_FEEDBACK_BODY_BYTES = 4 * 1024
Identify = Callable[[dict[str, str]], Awaitable[Principal]]


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: Annotated[str, Field(min_length=1, max_length=80)]
    score: Annotated[float, Field(ge=0, le=1)] | None = None
    thumbs: Literal["up", "down"] | None = None
    label: Annotated[str, Field(max_length=128)] | None = None

    @model_validator(mode="after")
    def _one_score(self) -> Feedback:
        if (self.score is None) == (self.thumbs is None):
            raise ValueError("give exactly one of `score` (0 to 1) or `thumbs` (up or down)")
        return self

    @property
    def value(self) -> float:
        return self.score if self.score is not None else (1.0 if self.thumbs == "up" else 0.0)


class FeedbackStore:
    def __init__(self, engine: sa.Engine, *, wait_for_row_s: float = 3.0) -> None:
        self._engine = engine
        self._wait_s = wait_for_row_s

    def owner(self, request_id: str) -> str | None:
        """The key that made ``request_id`` (its own row, not a cascade attempt's), or None."""
        with self._engine.connect() as connection:
            return connection.execute(sa.select(ledger.c.key_id).where(ledger.c.request_id == request_id)).scalar()

    def write(self, request_id: str, key_id: str, score: float, label: str | None) -> bool:
        """Store the score if ``key_id`` made the request; False if it did not (or no such row)."""
        deadline = time.monotonic() + self._wait_s
        owner = self.owner(request_id)
        while owner is None and time.monotonic() < deadline:
            time.sleep(0.2)
            owner = self.owner(request_id)
        if owner != key_id:
            return False
        now = dt.datetime.now(dt.UTC)
        with self._engine.begin() as connection:
            values = {"key_id": key_id, "score": score, "label": label, "at": now}
            if not connection.execute(sa.update(f).where(f.c.request_id == request_id).values(**values)).rowcount:
                connection.execute(sa.insert(f).values(request_id=request_id, **values))
        return True


def feedback_router(store: FeedbackStore, identify: Identify) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/feedback")
    async def post_feedback(request: Request) -> dict[str, Any]:
        principal = await identify({k.lower(): v for k, v in request.headers.items()})
        body: Feedback = parse_body(Feedback, await read_json_body(request, MAX_FEEDBACK_BODY_BYTES))
        if not await asyncio.to_thread(store.write, body.request_id, principal.key_id, body.value, body.label):
            raise NotFoundError(f"No request '{body.request_id}' made with this key.", param="request_id", code="request_not_found")
        return {"object": "feedback", "request_id": body.request_id, "score": body.value, "label": body.label}

    return router
