"""The control loop: every tick, read signals, decide, and (unless dry-run) actuate.

One loop owns the replica counts of every local model (Serve's autoscaler is off for them).
Signals come from Prometheus (:mod:`autoscaler.prometheus`), the fleet from Serve
(:class:`autoscaler.actuator.ServeActuator`), the decision from :mod:`autoscaler.policy`. Each
decision is one JSON log line (the decision log) and sets the loop's own gauges; a scale runs
in the background, and its model is left alone until it returns (a drain to zero or the wait for
old replicas to leave can take a while).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from autoscaler.actuator import ReplicaCounts
from autoscaler.config import AutoscalingConfig, ReplicaConfig
from autoscaler.policy import FleetState, Payback, PolicyConfig, ScaleDecision, ScalingPolicy, Signals, WorkCapacity
from contracts.background import periodically

__all__ = ["ControlLoop", "LoopMetrics", "policy_for"]

logger = logging.getLogger(__name__)


class SignalReader(Protocol):
    def read(self, model: str) -> Signals | None: ...


class Actuator(Protocol):
    async def counts(self, model: str) -> ReplicaCounts: ...

    async def set_replicas(self, model: str, replicas: int) -> None: ...


def policy_for(replicas: ReplicaConfig, a: AutoscalingConfig) -> ScalingPolicy:
    """One model's policy from its replica bounds and autoscaling knobs."""
    return ScalingPolicy(PolicyConfig(
        min_replicas=replicas.min, max_replicas=replicas.max,
        target_ongoing_per_replica=a.target_ongoing_per_replica, max_kv_cache_usage=a.max_kv_cache_usage,
        ttft_p99_target_s=a.ttft_p99_target_s, up_window_s=a.up_window_s, down_window_s=a.down_window_s,
        idle_to_zero_s=a.idle_to_zero_s, scale_up_headroom=a.scale_up_headroom, scale_down_below=a.scale_down_below,
        min_marginal_utilisation=a.min_marginal_utilisation,
        capacity=None if a.replica_prefill_tokens_per_s is None or a.replica_decode_token_s is None
        else WorkCapacity(a.replica_prefill_tokens_per_s, a.replica_decode_token_s, a.target_utilisation),
        payback=None if a.replica_usd_per_hour is None
        else Payback(a.replica_usd_per_hour, a.hosted_input_usd_per_mtok, a.hosted_output_usd_per_mtok),
    ))


class LoopMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.target = Gauge("spillover_autoscaler_target_replicas", "Replicas the loop asks for.", ["model"], registry=self.registry)
        self.recommended = Gauge("spillover_autoscaler_recommended_replicas", "Replicas the signals alone ask for.", ["model"], registry=self.registry)
        self.decisions = Counter("spillover_autoscaler_decisions_total", "Decisions by reason.", ["model", "reason"], registry=self.registry)


class ControlLoop:
    def __init__(self, policies: Mapping[str, ScalingPolicy], reader: SignalReader, actuator: Actuator, *,
                 cold_start_s: Mapping[str, float], dry_run: bool = False, metrics: LoopMetrics | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._policies, self._reader, self._actuator = policies, reader, actuator
        self._cold_start_s, self._dry_run, self._clock = cold_start_s, dry_run, clock
        self.metrics = metrics or LoopMetrics()
        self._scaling: dict[str, asyncio.Task[None]] = {}

    async def tick(self) -> dict[str, ScaleDecision]:
        decisions = {}
        for model, policy in self._policies.items():
            if model in self._scaling and not self._scaling[model].done():
                continue
            signals = await asyncio.to_thread(self._reader.read, model)
            counts = await self._actuator.counts(model)
            fleet = FleetState(ready=counts.running, starting=counts.starting, draining=counts.stopping,
                               cold_start_s=self._cold_start_s.get(model, 0.0))
            decision = policy.decide(self._clock(), signals, fleet)
            decisions[model] = decision
            self._record(model, decision, signals, fleet)
            if not self._dry_run and decision.target != fleet.provisioned:
                self._scaling[model] = asyncio.create_task(self._scale(model, decision.target), name=f"scale-{model}")
        return decisions

    async def run_forever(self, tick_s: float) -> None:
        """Tick every ``tick_s``; one bad tick (Serve restarting, say) holds the counts and the loop goes on."""
        await periodically(tick_s, self.tick, logger=logger, what="autoscaler tick", first_at_once=True, start_to_start=True)

    async def _scale(self, model: str, replicas: int) -> None:
        try:
            await self._actuator.set_replicas(model, replicas)
        except Exception:
            logger.exception("scaling %s to %d failed", model, replicas)

    def _record(self, model: str, decision: ScaleDecision, signals: Signals | None, fleet: FleetState) -> None:
        self.metrics.target.labels(model).set(decision.target)
        self.metrics.recommended.labels(model).set(decision.recommended)
        self.metrics.decisions.labels(model, decision.reason.value).inc()
        logger.info(
            "autoscaler decision",
            extra={
                "model": model, "target": decision.target, "recommended": decision.recommended,
                "reason": decision.reason.value, "ready": fleet.ready, "starting": fleet.starting,
                "draining": fleet.draining, "dry_run": self._dry_run,
                "signals": None if signals is None else {k: round(v, 3) if isinstance(v, float) else v for k, v in vars(signals).items()},
            },
        )
