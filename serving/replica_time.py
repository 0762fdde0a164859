"""Replica time by interval: how long each engine replica was up, and how long its engine worked.

Local work is priced by the replica-hour (costbook.local_cost): a replica's up time in an
interval times its price is what the interval cost; the busy part is shared out to the requests
served, by their tokens, and the rest is idle cost. The engine-state board sees every replica's
posts, so it keeps this book: each post adds the time since that replica's previous post as up
time (from the moment it began starting, for its first post: loading is paid for too) and the
growth of its engine's busy seconds as busy time, both split across interval boundaries.
"""

from __future__ import annotations

from contracts.engine_state import ReplicaInterval, ReplicaState, interval_start

__all__ = ["ReplicaTimeBook"]


class ReplicaTimeBook:
    """Up and busy seconds per replica and interval, kept for ``keep_s``.

    A replica that stops posting stops adding time at its last post (within the posting period
    of when it stopped); a replica that misses posts but comes back was up all along.
    """

    def __init__(self, interval_s: float = 60.0, *, keep_s: float = 6 * 3600.0) -> None:
        self.interval_s = interval_s
        self._keep_s = keep_s
        self._last: dict[str, ReplicaState] = {}
        self._buckets: dict[tuple[str, str, float], list[float]] = {}

    def observe(self, state: ReplicaState) -> None:
        last = self._last.get(state.replica_id)
        if last is None:
            since = state.started_at if 0 < state.started_at < state.observed_at else state.observed_at
            busy = state.busy_s
        else:
            since, busy = last.observed_at, state.busy_s - last.busy_s
        self._last[state.replica_id] = state
        if state.observed_at > since:
            self._add(state, since, state.observed_at, min(max(busy, 0.0), state.observed_at - since))

    def retire(self, replica_id: str) -> None:
        self._last.pop(replica_id, None)

    def _add(self, state: ReplicaState, begin: float, end: float, busy_s: float) -> None:
        """Spread ``begin..end`` over the intervals it crosses, busy time in proportion."""
        span = end - begin
        at = begin
        while at < end:
            start = interval_start(at, self.interval_s)
            until = min(end, start + self.interval_s)
            bucket = self._buckets.setdefault((state.model, state.replica_id, start), [0.0, 0.0])
            bucket[0] += until - at
            bucket[1] += busy_s * (until - at) / span
            at = until

    def closed(self, after: float, before: float) -> list[ReplicaInterval]:
        """Kept intervals starting at or after ``after`` that ended by ``before``; drops those
        older than ``keep_s``."""
        for key in [k for k in self._buckets if k[2] + self.interval_s < before - self._keep_s]:
            del self._buckets[key]
        return [
            ReplicaInterval(model, replica, start, up, busy)
            for (model, replica, start), (up, busy) in sorted(self._buckets.items(), key=lambda kv: kv[0][2])
            if start >= after and start + self.interval_s <= before
        ]
