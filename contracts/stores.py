"""The store interfaces the subsystems are built on; implementations live with their subsystem
(in memory for the embedded default, Redis, SQLite or PostgreSQL when configured).

* :class:`CounterStore`: rate limits and budgets, admitted atomically (costbook.counters).
* :class:`LedgerStore`: where ledger rows end up (costbook.ledger_store).
* :class:`ExactStore`: the exact cache's entries (costlevers.cache.exact_store).
* :class:`VectorStore`: the semantic cache's entries and nearest-neighbour search
  (costlevers.cache.semantic_store).

A store that cannot be reached raises :class:`contracts.errors.StoreUnavailableError`, so
callers never catch a client library's exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

if TYPE_CHECKING:
    from contracts.ledger_row import LedgerRow

__all__ = ["Candidate", "Charge", "CounterStore", "ExactStore", "LedgerStore", "PurgeFilter", "SemanticEntry", "VectorStore"]


@dataclass(frozen=True)
class Charge:
    """Add ``amount`` to counter ``key`` if it stays within ``limit`` (``None``: no limit)."""

    key: str
    amount: int
    limit: int | None
    #: Seconds the counter must outlive its period by (it expires after).
    ttl_s: int


class CounterStore(Protocol):
    async def admit(self, charges: Sequence[Charge]) -> int | None:
        """Apply every charge, or none; ``None`` on success, else the index of the first
        charge that would cross its limit."""

    async def add(self, deltas: Mapping[str, int]) -> dict[str, int]:
        """Add each delta (may be negative) to its counter in one round trip, settling what admit
        reserved; returns the counters' new values."""

    async def values(self, keys: Sequence[str]) -> list[int]: ...


class LedgerStore(Protocol):
    def insert(self, rows: Sequence[LedgerRow]) -> None:
        """Insert rows; a request id already present is left as it is (moves are retried)."""


@dataclass(frozen=True)
class PurgeFilter:
    """Which cache entries an admin purge removes; unset parts match anything."""

    route: str | None = None
    model_version: str | None = None
    prompt_version: str | None = None
    scope: str | None = None

    def parts(self) -> list[str | None]:
        return [None if p is None else quote(p, safe="") for p in (self.route, self.model_version, self.prompt_version, self.scope)]

    def matches(self, namespace: str) -> bool:
        have = namespace.split(":")[:4]
        return all(want is None or want == got for want, got in zip(self.parts(), have, strict=True))

    def glob(self) -> str:
        """A Redis MATCH pattern (quoted parts hold no glob characters)."""
        return ":".join("*" if p is None else p for p in self.parts()) + ":*"


class ExactStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes, ttl_s: int) -> None: ...

    async def purge(self, which: PurgeFilter) -> int: ...


@dataclass(frozen=True)
class SemanticEntry:
    """A past question (its last user turn, embedding and partition) whose answer is kept."""

    id: int
    partition: str
    text: str
    #: The question's unit-length embedding (a float32 numpy array).
    vector: Any
    expires_at: float

    @property
    def namespace(self) -> str:
        return self.partition.rsplit(":", 1)[0]


@dataclass(frozen=True)
class Candidate:
    entry: SemanticEntry
    cosine: float


class VectorStore(Protocol):
    def candidates(self, partition: str, vector: Any, k: int, min_cosine: float) -> list[Candidate]:
        """The ``k`` nearest live entries of ``partition`` at or above ``min_cosine``, nearest first."""

    async def add(self, entry: SemanticEntry, answer: bytes) -> None: ...

    async def answer(self, entry: SemanticEntry) -> bytes | None:
        """The entry's answer, or None once it expired or was purged."""

    async def purge(self, which: PurgeFilter) -> int: ...

    def sweep(self) -> int:
        """Drop expired entries from the index; returns how many."""
