"""Semantic entries and the per-replica vector index that finds the nearest ones.

Each entry is a past question (the last user turn, its embedding, its partition) and its
answer. Every ingress replica keeps an in-process HNSW index (usearch) per partition, and the
questions' texts for the hit verifier. In the embedded default that is all there is; with Redis
(:class:`RedisSemanticStore`) entries live in Redis with their TTL, each replica rebuilds its
index from them at start and follows a Redis stream of additions and removals, and a hit's
answer is read from Redis (so an expired or purged entry never answers). Eviction: by TTL, and
oldest first past ``max_entries``.

An entry's id is a hash of its partition and question: two identical requests finishing together
write the same entry, never two.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from contracts.stores import Candidate, PurgeFilter, SemanticEntry

__all__ = ["SemanticStore", "entry_id"]


def entry_id(partition: str, text: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{partition}\n{text}".encode()).digest()[:8], "big") >> 1  # fits int64


class SemanticStore:
    """In-process entries and answers; the base of the Redis-backed store."""

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.time) -> None:
        self._max = max_entries
        self._clock = clock
        self._indexes: dict[str, Any] = {}
        self._entries: OrderedDict[int, SemanticEntry] = OrderedDict()
        self._answers: dict[int, bytes] = {}

    def __len__(self) -> int:
        return len(self._entries)

    # -- the index -------------------------------------------------------------------------
    def _index_add(self, entry: SemanticEntry) -> None:
        if entry.id in self._entries:
            self._entries[entry.id] = entry
            return
        index = self._indexes.get(entry.partition)
        if index is None:
            # Inner product of unit vectors: cosine. The encoder's size comes with its vectors.
            index = self._indexes[entry.partition] = _new_index(entry.vector.shape[0])
        index.add(entry.id, entry.vector.astype(np.float32, copy=False))
        self._entries[entry.id] = entry

    def _index_remove(self, entry_id: int) -> SemanticEntry | None:
        entry = self._entries.pop(entry_id, None)
        self._answers.pop(entry_id, None)
        if entry is not None:
            index = self._indexes[entry.partition]
            index.remove(entry_id)
            if len(index) == 0:
                del self._indexes[entry.partition]
        return entry

    def candidates(self, partition: str, vector: np.ndarray, k: int, min_cosine: float) -> list[Candidate]:
        """The ``k`` nearest live entries of ``partition`` at or above ``min_cosine``, nearest first."""
        index = self._indexes.get(partition)
        if index is None:
            return []
        matches = index.search(vector.astype(np.float32, copy=False), min(k, len(index)))
        now = self._clock()
        found = []
        for key, distance in zip(matches.keys, matches.distances, strict=True):
            entry = self._entries.get(int(key))
            if entry is not None and entry.expires_at > now and 1.0 - float(distance) >= min_cosine:
                found.append(Candidate(entry, 1.0 - float(distance)))
        return found

    # -- entries and answers ---------------------------------------------------------------
    async def add(self, entry: SemanticEntry, answer: bytes) -> None:
        self._index_add(entry)
        self._answers[entry.id] = answer
        while len(self._entries) > self._max:
            self._index_remove(next(iter(self._entries)))

    async def answer(self, entry: SemanticEntry) -> bytes | None:
        return self._answers.get(entry.id)

    async def purge(self, which: PurgeFilter) -> int:
        doomed = [e.id for e in self._entries.values() if which.matches(e.namespace)]
        for entry_id_ in doomed:
            self._index_remove(entry_id_)
        return len(doomed)

    def sweep(self) -> int:
        """Drop expired entries from the index (lookups already skip them)."""
        now = self._clock()
        doomed = [e.id for e in self._entries.values() if e.expires_at <= now]
        for entry_id_ in doomed:
            self._index_remove(entry_id_)
        return len(doomed)

    def bytes_per_entry(self) -> float:
        """Index memory plus each question's text and vector, per entry (answers not counted)."""
        if not self._entries:
            return 0.0
        index = sum(i.memory_usage for i in self._indexes.values())
        own = sum(len(e.text.encode()) + e.vector.nbytes for e in self._entries.values())
        return (index + own) / len(self._entries)


def _new_index(ndim: int) -> Any:
    """An empty HNSW index over inner products (vectors are unit length, so cosine).

    usearch is imported here, not at module import: its native library loaded before torch's
    breaks torch's (a ``std::regex_error`` abort when vLLM loads later in the same process).
    A replica builds its first index long after its engines' libraries are in.
    """
    from usearch.index import Index

    return Index(ndim=ndim, metric="ip", dtype="f32")
