"""What one request carries through the pipeline, and the usage record every sink reads.

Stages read and fill a :class:`RequestContext`; nothing else travels between them. A stage
keeps what it holds for the request in a slot of its own (:meth:`RequestContext.put`, keyed
by the value's type), so a new stage adds no field here. The :class:`Usage` record is normalised across providers so the ledger, budgets and metrics
never need to know whose wire format produced it.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from contracts.spill import Destination, SpillReason

__all__ = [
    "Api",
    "CacheResult",
    "Carried",
    "Outcome",
    "Principal",
    "PromptEmbedding",
    "RequestContext",
    "RequestFacts",
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
    #: A cascade's cheap attempt: answered and paid for, but a check rejected the answer and a
    #: stronger model was asked (its row names the request it was for in ``attempt_of``).
    ESCALATED = "escalated"


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

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI ``usage`` object these counts stand for (details only where non-zero)."""
        usage: dict[str, Any] = {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                                 "total_tokens": self.total_tokens}
        if self.cached_read_tokens or self.cache_write_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_read_tokens, "cache_write_tokens": self.cache_write_tokens}
        if self.reasoning_tokens:
            usage["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return usage

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
    #: When the chosen upstream's first item reached the ingress (failover included).
    upstream_started: float | None = None
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


@dataclass(frozen=True)
class RequestFacts:
    """What the ingress works out once from the body, for every stage that needs it."""

    #: Estimated prompt tokens (:func:`contracts.tokens.estimate_prompt_tokens`).
    prompt_tokens: int = 0
    #: The most the request may generate: its limit (or the default) times ``n``.
    max_tokens: int = 0
    #: The client asked for ``stream_options.include_usage``.
    wants_usage_chunk: bool = False
    #: The request carries tools (function calling).
    has_tools: bool = False


@dataclass(frozen=True)
class PromptEmbedding:
    """The last user turn's embedding, kept by whichever stage computed it first (the semantic
    cache) for any later one that needs the same vector (the router): one encoder pass a request.
    ``vector`` is the embedding deployment's unit vector (a numpy array; contracts stay numpy-free)."""

    text: str
    vector: Any


_Slot = TypeVar("_Slot")


class Carried:
    """Marks a slot's value as the whole request's: a tentative attempt made for the request (a
    cascade's cheap call) carries it too, so the attempt's own ledger row says the same (an
    experiment's assignment)."""


@dataclass
class RequestContext:
    """Everything known about one request; stages fill it in order."""

    request_id: str
    api: Api
    model: str
    body: dict[str, Any]
    stream: bool
    headers: dict[str, str]
    #: Worked out once at the ingress (prompt tokens, max tokens, ...).
    facts: RequestFacts = field(default_factory=RequestFacts)
    principal: Principal = ANONYMOUS
    #: The public route (model name) after routing; the model asked for until then.
    route: str = ""
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
    #: Each stage's own state for this request, keyed by the state's type (see :meth:`put`).
    _slots: dict[type, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.route:
            self.route = self.model

    def put(self, value: object) -> None:
        """Keep ``value`` for this request under its own type; a stage defines that type, so no
        other stage writes it."""
        self._slots[type(value)] = value

    def slot(self, kind: type[_Slot]) -> _Slot | None:
        """The value of type ``kind`` a stage kept, or None."""
        return self._slots.get(kind)

    def carried(self) -> dict[type, Any]:
        """The slots an attempt made for this request starts with (values marked :class:`Carried`)."""
        return {kind: value for kind, value in self._slots.items() if isinstance(value, Carried)}

    def pop(self, kind: type[_Slot]) -> _Slot | None:
        """Take the value of type ``kind`` out (settle it once)."""
        return self._slots.pop(kind, None)
