"""The ingress's own request series and the engine-state gauges, on a registry it is handed.

Names come from :mod:`contracts.metric_names`; the costs and the cache declare their series on
the same registry (:mod:`costbook.metrics`, :mod:`costlevers.cache.metrics`), so one
``GET /metrics`` serves them all. Labels stay small: model, destination, reason, status, api.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from contracts.context import RequestContext
from contracts.engine_state import EngineState
from contracts.metric_names import ENGINE_GAUGES, IN_FLIGHT, INGRESS_OVERHEAD, REQUEST_DURATION, REQUESTS_TOTAL, TTFT

__all__ = ["RequestMetrics"]

_LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256)
_OVERHEAD_BUCKETS_S = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25)


class _EngineStateCollector(Collector):
    """Reads engine state at scrape time, so the gauges cost nothing between scrapes."""

    def __init__(self, states: Callable[[], dict[str, EngineState]]) -> None:
        self._states = states

    def collect(self) -> Iterable[GaugeMetricFamily]:
        states = self._states()
        for field, (name, help_text) in ENGINE_GAUGES.items():
            family = GaugeMetricFamily(name, help_text, labels=["model"])
            for model, state in states.items():
                family.add_metric([model], float(getattr(state, field)))
            yield family


class RequestMetrics:
    """Requests by outcome, their latencies, the ingress's own overhead, and engine state."""

    def __init__(self, registry: CollectorRegistry, engine_states: Callable[[], dict[str, EngineState]] | None = None) -> None:
        self.requests = Counter(
            REQUESTS_TOTAL,
            "Requests finished, by where they were served, why, and how they ended.",
            ["model", "destination", "reason", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            REQUEST_DURATION, "Time from request received to last byte.", ["model", "destination"],
            buckets=_LATENCY_BUCKETS_S, registry=registry,
        )
        self.ttft = Histogram(
            TTFT, "Time from request received to the first token sent.", ["model", "destination"],
            buckets=_LATENCY_BUCKETS_S, registry=registry,
        )
        self.overhead = Histogram(
            INGRESS_OVERHEAD, "The ingress's own time per request: received to dispatched, in seconds.", ["api"],
            buckets=_OVERHEAD_BUCKETS_S, registry=registry,
        )
        self.in_flight = Gauge(IN_FLIGHT, "Requests in flight in this ingress replica.", ["model"], registry=registry)
        if engine_states is not None:
            registry.register(_EngineStateCollector(engine_states))

    def started(self, ctx: RequestContext) -> None:
        """A request entered the pipeline (its starter)."""
        self.in_flight.labels(ctx.model).inc()

    def finished(self, ctx: RequestContext) -> None:
        """A request left it (its sink): outcome, latencies and the ingress's own overhead."""
        destination = ctx.destination or "none"
        reason = ctx.spill_reason.value if ctx.spill_reason else "none"
        self.in_flight.labels(ctx.model).dec()
        self.requests.labels(ctx.model, destination, reason, ctx.status.value).inc()
        if ctx.timings.dispatched is not None:
            self.overhead.labels(ctx.api.value).observe(ctx.timings.dispatched - ctx.timings.received)
        ttft, total = ctx.timings.ttft_s(), ctx.timings.total_s()
        if ttft is not None:
            self.ttft.labels(ctx.model, destination).observe(ttft)
        if total is not None:
            self.duration.labels(ctx.model, destination).observe(total)
