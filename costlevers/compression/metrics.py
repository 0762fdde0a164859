"""The compress stage's series: what it did per route, the tokens it removed and its time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from contracts.compression import Compression
from contracts.metric_names import COMPRESS_REQUESTS_TOTAL, COMPRESS_SECONDS, COMPRESS_TOKENS_REMOVED_TOTAL

__all__ = ["CompressionMetrics"]


class CompressionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(COMPRESS_REQUESTS_TOTAL, "Requests on compressing routes by route and outcome.", ["route", "outcome"],
                                registry=registry)
        self.removed = Counter(COMPRESS_TOKENS_REMOVED_TOTAL, "Prompt tokens compression removed, by route.", ["route"], registry=registry)
        self.seconds = Histogram(COMPRESS_SECONDS, "Time compression took per request.", ["route"], registry=registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0))

    def observe(self, route: str, result: Compression) -> None:
        self.requests.labels(route, result.outcome.value).inc()
        self.removed.labels(route).inc(result.removed_tokens)
        self.seconds.labels(route).observe(result.elapsed_ms / 1000)
