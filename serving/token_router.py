"""Route each local request to the replica with the fewest prompt tokens waiting to start.

Serve's default router picks the shorter queue of two random replicas, counting requests. Prompt
lengths are heavy-tailed (the Azure code trace: mean ~2k tokens, 10% over 5k), so two replicas
with equal queues can be seconds of prefill apart, and a short prompt sent behind a long one
misses a TTFT target that the spill-over decision, which sees the fleet as one pool, judged safe.
What a new prompt waits behind is the prefill still ahead of it: the prompts sent to a replica
that have not started answering. A replica busy decoding prompts that did start costs a new one
far less. So replicas are ranked by prompt tokens not yet started, then by all in flight.
Replayed in the simulator on the Azure code trace (70B on 4x A100, 2 s target, two replicas
with spill-over on), count-based routing keeps fewer requests in target than tokens in flight,
and tokens in flight fewer than tokens not yet started (BENCHMARKS.md, autoscaler).

The router runs in the sender (the ingress's handle), so it knows what it sent where: each
request's prompt-token estimate (the ``prompt_tokens`` keyword the ingress passes) counts against
its replica from routing until Serve reports it complete, and as not yet started until the
ingress sees its first item (:meth:`InFlightTokens.started`, keyed by the ``request_id`` keyword).
One book per process (:data:`IN_FLIGHT`), shared by the routers of every model the process
calls: replica ids are unique across deployments. Serve still skips a replica whose queue is full.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ray.serve.request_router import FIFOMixin, PendingRequest, RequestRouter, RunningReplica

__all__ = ["IN_FLIGHT", "PROMPT_TOKENS_KWARG", "REQUEST_ID_KWARG", "ROUTER_PATH", "InFlightTokens", "LeastPromptTokensRouter"]

#: The keywords the ingress passes to the engine deployment's generate call.
PROMPT_TOKENS_KWARG = "prompt_tokens"
REQUEST_ID_KWARG = "request_id"
ROUTER_PATH = f"{__name__}:LeastPromptTokensRouter"

R = TypeVar("R")


@dataclass
class _Routed:
    replica: Hashable
    tokens: int
    sender_id: str | None
    started: bool = False


class InFlightTokens:
    """Prompt tokens routed to each replica: not yet started, and not yet complete. Thread-safe:
    Serve reports completions from callbacks that may run off the router's event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[str, _Routed] = {}
        self._by_sender: dict[str, str] = {}
        self._tokens: dict[Hashable, int] = {}
        self._unstarted: dict[Hashable, int] = {}

    def routed(self, request_id: str, replica: Hashable, tokens: int, sender_id: str | None = None) -> None:
        """A request sent to ``replica``; a retry of the same request moves its tokens.
        ``sender_id`` is the id the sender will mark its start by."""
        with self._lock:
            earlier = self._requests.get(request_id)
            if earlier is not None:
                self._take(earlier)
            self._requests[request_id] = _Routed(replica, tokens, sender_id)
            self._tokens[replica] = self._tokens.get(replica, 0) + tokens
            self._unstarted[replica] = self._unstarted.get(replica, 0) + tokens
            if sender_id is not None:
                self._by_sender[sender_id] = request_id

    def started(self, sender_id: str) -> None:
        """The request the sender knows as ``sender_id`` sent its first item: its prompt is no
        longer ahead of anyone's."""
        with self._lock:
            routed = self._requests.get(self._by_sender.pop(sender_id, ""))
            if routed is not None and not routed.started:
                routed.started = True
                if routed.replica in self._unstarted:
                    self._unstarted[routed.replica] -= routed.tokens

    def completed(self, request_id: str) -> None:
        with self._lock:
            routed = self._requests.pop(request_id, None)
            if routed is not None:
                self._take(routed)
                if routed.sender_id is not None and self._by_sender.get(routed.sender_id) == request_id:
                    del self._by_sender[routed.sender_id]

    def forget(self, replica: Hashable) -> None:
        with self._lock:
            self._tokens.pop(replica, None)
            self._unstarted.pop(replica, None)
            self._requests = {k: v for k, v in self._requests.items() if v.replica != replica}
            self._by_sender = {k: v for k, v in self._by_sender.items() if v in self._requests}

    def of(self, replica: Hashable) -> int:
        with self._lock:
            return self._tokens.get(replica, 0)

    def unstarted_of(self, replica: Hashable) -> int:
        with self._lock:
            return self._unstarted.get(replica, 0)

    def ranked(self, replicas: Sequence[R], key: Any) -> list[R]:
        """``replicas`` by tokens not yet started, then by tokens in flight, fewest first
        (``key`` maps one to its id)."""
        with self._lock:
            return sorted(replicas, key=lambda r: (self._unstarted.get(key(r), 0), self._tokens.get(key(r), 0)))

    def _take(self, routed: _Routed) -> None:
        """Remove a request's tokens from its replica's counts (lock held)."""
        if routed.replica in self._tokens:
            self._tokens[routed.replica] -= routed.tokens
        if not routed.started and routed.replica in self._unstarted:
            self._unstarted[routed.replica] -= routed.tokens


#: This process's book: the routers write it, the ingress marks starts on it.
IN_FLIGHT = InFlightTokens()


class LeastPromptTokensRouter(FIFOMixin, RequestRouter):
    def initialize_state(self, **kwargs: Any) -> None:
        # Serve cloudpickles this class by value; a name bound at import would pickle the book
        # (and its lock) with it. Looked up here, it is this process's one book.
        from serving import token_router

        self._in_flight = token_router.IN_FLIGHT

    async def choose_replicas(self, candidate_replicas: list[RunningReplica],
                              pending_request: PendingRequest | None = None) -> list[list[RunningReplica]]:
        # One replica per rank: Serve tries them in order, skipping any whose queue is full.
        return [[r] for r in self._in_flight.ranked(candidate_replicas, key=lambda r: r.replica_id)]

    async def _choose_replica_for_request(self, pending_request: PendingRequest, *, is_retry: bool = False) -> RunningReplica:
        # Serve's one place where a request and the replica chosen for it meet, on every path
        # (``on_request_routed`` fires only under strict max_ongoing_requests).
        replica = await super()._choose_replica_for_request(pending_request, is_retry=is_retry)
        tokens = int(pending_request.kwargs.get(PROMPT_TOKENS_KWARG) or 0)
        sender_id = pending_request.kwargs.get(REQUEST_ID_KWARG)
        self._in_flight.routed(pending_request.metadata.internal_request_id, replica.replica_id, tokens,
                               str(sender_id) if sender_id is not None else None)
        return replica

    def on_request_completed(self, replica_id: Any, internal_request_id: str) -> None:
        self._in_flight.completed(internal_request_id)

    def on_replica_actor_died(self, replica_id: Any) -> None:
        super().on_replica_actor_died(replica_id)
        self._in_flight.forget(replica_id)
