"""The ledger row: one per request, however it ended (ok, error, cancelled, cut).

Every figure on a dashboard or in a report is a query over these rows. Money is integer
micro-dollars; ``price_version`` says which price table priced the row; ``destination`` is
``local``, ``cache`` or a provider's name. A routed request's abandoned cheap attempts are
rows of their own (status ``escalated``, ``attempt_of`` naming the request): they were paid for.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

__all__ = ["LedgerRow"]


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
    finished_at: dt.datetime | None = None
    #: Routing (a routed name such as ``auto``): the router and its score, why this candidate
    #: served (``contracts.routing.RouteReason``), and the candidates escalated from with the
    #: check that failed each (``model:check,...``).
    router: str | None = None
    route_score: float | None = None
    route_reason: str | None = None
    escalations: str | None = None
    #: On a cascade's abandoned attempt's own row: the request it was made for.
    attempt_of: str | None = None
    #: On a batch line's row: its batch.
    batch_id: str | None = None
    #: Compression (a compressing route): what it did (``contracts.compression.CompressOutcome``),
    #: the prompt tokens before it (``prompt_tokens`` is what was sent), and what the removed
    #: tokens would have cost at the served model's input price (local: the local ceiling price).
    compression: str | None = None
    prompt_tokens_original: int | None = None
    compression_saved_micro_usd: int | None = None
    #: On a batch line's row: what its usage would have cost at sync list price (a hosted batch's
    #: line: its model's regular price; a local line: the route's first priced hosted model), the
    #: saving a batch report shows.
    sync_cost_micro_usd: int | None = None
    #: The experiment and variant that served the request (contracts.experiments.Assignment).
    experiment: str | None = None
    variant: str | None = None
    #: The first choice's finish reason (``length``: truncated), where the response said one.
    finish_reason: str | None = None
    #: A short hash of the prompt: the same user sending it again soon after is a retry.
    prompt_hash: str | None = None

    def to_json(self) -> dict[str, Any]:
        finished = None if self.finished_at is None else self.finished_at.isoformat()
        return {**dataclasses.asdict(self), "at": self.at.isoformat(), "finished_at": finished}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LedgerRow:
        finished = raw.get("finished_at")
        return cls(**{**raw, "at": dt.datetime.fromisoformat(raw["at"]),
                      "finished_at": None if finished is None else dt.datetime.fromisoformat(finished)})
