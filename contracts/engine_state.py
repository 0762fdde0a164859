"""Engine state: the contract between the engines, the spill-over decision and the autoscaler.

Per model, summed over its ready replicas: running and waiting requests, KV-cache use,
measured prefill and decode rates, replicas ready and starting. The live system reads it
straight from the replicas (:mod:`serving.state_board`, at most about a second old);
the autoscaler reads the same quantities from Prometheus in a cluster; the simulator builds
it from its model of replicas. All three hand the same dataclass to the same decision.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["PUBLISH_PERIOD_S", "EngineState", "ReplicaInterval", "ReplicaState", "interval_start", "sum_replicas"]

#: How often each engine replica posts its snapshot; readers poll at the same period.
PUBLISH_PERIOD_S = 0.5


@dataclass(frozen=True)
class ReplicaState:
    """One engine replica's own view, published twice a second."""

    replica_id: str
    model: str
    running: int = 0
    waiting: int = 0
    kv_cache_usage: float = 0.0
    #: Prompt tokens per second of prefill work, measured over recent busy steps.
    prefill_tokens_per_s: float = 0.0
    #: Generated tokens per second over recent busy steps (all sequences together).
    decode_tokens_per_s: float = 0.0
    #: Wall-clock time (``time.time()``) the replica took this snapshot.
    observed_at: float = field(default_factory=time.time)
    #: Seconds since the engine last finished a step (0 before its first).
    engine_idle_s: float = 0.0
    #: Seconds of engine steps with work since the engine started (cumulative).
    busy_s: float = 0.0
    #: When the replica began starting (``time.time()``): it is paid for from then (0: unknown).
    started_at: float = 0.0

    def age_s(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.observed_at

    def stalled(self, stall_s: float) -> bool:
        """Work is waiting but the engine has not stepped for ``stall_s``: hung, not idle."""
        return (self.running > 0 or self.waiting > 0) and self.engine_idle_s > stall_s


@dataclass(frozen=True)
class EngineState:
    """One model's engines, summed over ready replicas."""

    model: str
    replicas_ready: int = 0
    replicas_starting: int = 0
    #: Replicas that post state but whose engine has stalled with work waiting.
    replicas_unhealthy: int = 0
    #: Replicas finishing their in-flight work before a scale to zero: they take nothing new.
    replicas_draining: int = 0
    running: int = 0
    waiting: int = 0
    #: Mean KV-cache use over ready replicas, 0..1.
    kv_cache_usage: float = 0.0
    prefill_tokens_per_s: float = 0.0
    decode_tokens_per_s: float = 0.0
    #: Age of the oldest replica snapshot included, in seconds.
    age_s: float = 0.0
    #: Requests the sender has sent locally that have not started answering (fallback.start_meter):
    #: the queue in front of the engines as well as in them.
    local_unstarted: int = 0
    #: Seconds of prefill work still ahead of a new local request: each unstarted request's
    #: prompt at the prefill rate when it was sent, worked off as time passes (fallback.start_meter).
    local_backlog_s: float = 0.0
    #: How long the oldest of those has waited: its first token comes with the step that prefills
    #: a request kept now, so keeping one must not push it past the target (fallback.start_meter).
    local_oldest_wait_s: float = 0.0
    #: How fast local requests start while any wait, per second.
    local_starts_per_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sum_replicas(
    model: str,
    replicas: Iterable[ReplicaState],
    *,
    replicas_starting: int = 0,
    draining: bool = False,
    max_age_s: float = 2.0,
    stall_s: float = 30.0,
    now: float | None = None,
) -> EngineState:
    """Fold fresh replica snapshots into one :class:`EngineState`.

    Stale snapshots count as gone; replicas whose engine stalled count as unhealthy, not ready;
    while the model is ``draining`` (scaling to zero) its replicas count as draining, not ready.
    """
    now = time.time() if now is None else now
    alive = [r for r in replicas if r.model == model and r.age_s(now) <= max_age_s]
    fresh = [r for r in alive if not r.stalled(stall_s)]
    unhealthy = len(alive) - len(fresh)
    if draining or not fresh:
        return EngineState(
            model=model,
            replicas_starting=replicas_starting,
            replicas_unhealthy=unhealthy,
            replicas_draining=len(fresh) if draining else 0,
        )
    return EngineState(
        model=model,
        replicas_ready=len(fresh),
        replicas_starting=replicas_starting,
        replicas_unhealthy=unhealthy,
        running=sum(r.running for r in fresh),
        waiting=sum(r.waiting for r in fresh),
        kv_cache_usage=sum(r.kv_cache_usage for r in fresh) / len(fresh),
        prefill_tokens_per_s=sum(r.prefill_tokens_per_s for r in fresh),
        decode_tokens_per_s=sum(r.decode_tokens_per_s for r in fresh),
        age_s=max(r.age_s(now) for r in fresh),
    )


@dataclass(frozen=True)
class ReplicaInterval:
    """How long one replica was up, and its engine busy, in one pricing interval (costbook.local_cost)."""

    model: str
    replica_id: str
    #: Interval start, epoch seconds, a multiple of the interval length.
    start: float
    up_s: float
    busy_s: float


def interval_start(at: float, interval_s: float) -> float:
    return math.floor(at / interval_s) * interval_s
