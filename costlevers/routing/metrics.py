"""The routing stage's series: every routed request's candidate and why, and each escalation
with the check that failed the cheaper answer (the strong-model share and the saving against
"everything to the strongest" are queries over these and the ledger)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from contracts.metric_names import ROUTE_DECISIONS_TOTAL, ROUTE_ESCALATIONS_TOTAL

__all__ = ["RoutingMetrics"]


class RoutingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(ROUTE_DECISIONS_TOTAL, "Routed requests by route, chosen candidate, its tier (cheap or strong: the strongest "
                                 "candidate) and reason.", ["route", "model", "tier", "reason"],
                                 registry=registry)
        self.escalations = Counter(ROUTE_ESCALATIONS_TOTAL, "Cascade escalations by route, the candidate whose answer was rejected, "
                                   "and the check that rejected it.", ["route", "from_model", "check"], registry=registry)
