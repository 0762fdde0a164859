"""The cache's series: lookups by kind and result, hit ratios, and the shadow checks' false-hit
estimate with its sample size."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from contracts.metric_names import (
    CACHE_FALSE_HIT_ESTIMATE,
    CACHE_HIT_RATIO,
    CACHE_REQUESTS_TOTAL,
    CACHE_SHADOW_TOTAL,
    CACHE_STEERING_BOUND,
    CACHE_STEERING_CHECKS_TOTAL,
    CACHE_STEERING_THRESHOLD,
)

__all__ = ["CacheMetrics"]


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.cache_requests = Counter(CACHE_REQUESTS_TOTAL, "Cache lookups by kind and result.", ["kind", "result"], registry=registry)
        self.cache_hit_ratio = Gauge(CACHE_HIT_RATIO, "Hits over hits and misses since start, by kind.", ["kind"], registry=registry)
        self.cache_shadow = Counter(CACHE_SHADOW_TOTAL, "Semantic hits checked against the model's own answer.", ["result"], registry=registry)
        self.cache_false_hit = Gauge(CACHE_FALSE_HIT_ESTIMATE, "Disagreeing shadow checks over all of them.", registry=registry)
        self.steering_checks = Counter(CACHE_STEERING_CHECKS_TOTAL, "A steered route's checks: paid (a served hit asked again) or free "
                                       "(a would-be hit not served, against the request's own answer), by verdict.",
                                       ["route", "kind", "result"], registry=registry)
        self.steering_threshold = Gauge(CACHE_STEERING_THRESHOLD, "The verifier score a steered route serves semantic hits at "
                                        "(NaN: shadow only).", ["route"], registry=registry)
        self.steering_bound = Gauge(CACHE_STEERING_BOUND, "Upper 95% (Wilson) bound of the false-hit rate at that threshold.",
                                    ["route"], registry=registry)
