"""What one request carries through the pipeline, and the usage record every sink reads.

Stages read and fill a :class:`RequestContext`; nothing else travels between them. The
:class:`Usage` record is normalised across providers so the ledger, budgets and metrics
never need to know whose wire format produced it.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fallback.decision import Destination, SpillReason
from serving.wire import GenerationBody

__all__ = [
    "Api",
    "CacheResult",
    "Outcome",
    "Principal",
    "RequestContext",
    "SSE_DONE",
    "Status",
    "Timings",
    "Usage",
    "new_request_id",
]


#: The packet that ends an OpenAI-style stream.
SSE_DONE = "data: [DONE]\n\n"


def new_request_id() -> str:
    return f"req-{uuid.uuid4().hex}"


class Api(enum.StrEnum):
    CHAT = "chat"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"


class Status(enum.StrEnum):
    """How a request ended; every value becomes a ledger row."""

    PENDING = "pending"
    OK = "ok"
    ERROR = "error"
    #: The client went away (disconnect) before the response finished.
    CANCELLED = "cancelled"
    #: The stream was cut by a failure after tokens had already been sent.
    CUT = "cut"


class CacheResult(enum.StrEnum):
    MISS = "miss"
    EXACT = "exact"
    SEMANTIC = "semantic"
    #: The request skipped the cache (not cacheable, or the cache is off).
    BYPASS = "bypass"


@dataclass(frozen=True)
class Principal:
    """Who is asking. ``anonymous`` when authentication is off."""

    key_id: str
    user: str
    team: str
    feature: str | None = None


ANONYMOUS = Principal(key_id="anonymous", user="anonymous", team="default")


@dataclass
class Usage:
    """Token counts in one shape for every provider.

    ``prompt_tokens`` counts every input token including cached reads and cache writes
    (OpenAI's convention); ``cached_read_tokens`` and ``cache_write_tokens`` say how many of
    them were priced differently. ``reasoning_tokens`` are part of ``completion_tokens``.
    """

    prompt_tokens: int = 0
    cached_read_tokens: int = 0
    cache_write_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None) -> Usage:
        """Read an OpenAI-style ``usage`` object (vLLM emits the same shape)."""
        if not usage:
            return cls()
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return cls(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            cached_read_tokens=int(prompt_details.get("cached_tokens") or 0),
            # Not OpenAI's: spillover's translation of Anthropic's cache writes (fallback/).
            cache_write_tokens=int(prompt_details.get("cache_write_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
        )


@dataclass
class Timings:
    """Monotonic timestamps (``time.perf_counter``) of the request's milestones."""

    received: float = field(default_factory=time.perf_counter)
    dispatched: float | None = None
    first_token: float | None = None
    finished: float | None = None

    def ttft_s(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.received

    def total_s(self) -> float | None:
        return None if self.finished is None else self.finished - self.received


@dataclass
class Outcome:
    """What the pipeline produced: one body, or a stream of SSE ``data:`` payloads."""

    body: dict[str, Any] | None = None
    stream: AsyncIterator[str] | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RequestContext:
    """Everything known about one request; stages fill it in order."""

    request_id: str
    api: Api
    model: str
    body: dict[str, Any]
    stream: bool
    headers: dict[str, str]
    #: The fields the ingress read from ``body`` (chat and text completions).
    parsed: GenerationBody | None = None
    principal: Principal = ANONYMOUS
    #: The public route (model name) after routing; the model asked for until then.
    route: str = ""
    #: Budget reservation handle, set by the admit stage (costs issue).
    reservation: Any = None
    cache_result: CacheResult = CacheResult.BYPASS
    destination: Destination | None = None
    spill_reason: SpillReason | None = None
    #: The local time to first token the decision predicted (the decision log's evidence).
    predicted_ttft_s: float | None = None
    model_served: str | None = None
    usage: Usage = field(default_factory=Usage)
    timings: Timings = field(default_factory=Timings)
    status: Status = Status.PENDING
    error: Exception | None = None
    #: What dispatch got back: the engine's or provider's items, before respond shapes them.
    upstream: AsyncIterator[Any] | None = None
    #: Set by a stage that answers on its own (cache hit) or by respond.
    outcome: Outcome | None = None
    #: Chunks already sent to the client; a failure after the first is a cut, not a retry.
    chunks_sent: int = 0
    #: What the cache stage keeps between lookup and store (costlevers.cache.stage).
    cache_state: Any = None
    #: The finished request's ledger row, priced once for budgets and the ledger (costbook.ledger).
    ledger_row: Any = None
    #: When a list, respond appends every SSE payload of the stream to it (the cache stores them).
    capture: list[str] | None = None

    def __post_init__(self) -> None:
        if not self.route:
            self.route = self.model
