"""Spend, tokens, idle local cost and team budgets as Prometheus series (per user: the ledger,
never a label)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from contracts.metric_names import (
    BUDGET_REMAINING,
    BUDGET_SOFT_LIMIT,
    COST_TOTAL,
    LOCAL_IDLE_COST_TOTAL,
    ROUTE_COST_TOTAL,
    ROUTE_STRONGEST_COST_TOTAL,
    TOKENS_TOTAL,
)

__all__ = ["CostMetrics"]


class CostMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        spend = ["team", "feature", "model", "destination"]
        self.cost = Counter(COST_TOTAL, "List-price cost of finished requests (local work once priced).", spend, registry=registry)
        self.tokens = Counter(TOKENS_TOTAL, "Tokens of finished requests, by kind (prompt, completion).", [*spend, "kind"], registry=registry)
        self.local_idle_cost = Counter(LOCAL_IDLE_COST_TOTAL, "Cost of local replica time with no work, by model.", ["model"], registry=registry)
        self.budget_remaining = Gauge(BUDGET_REMAINING, "What a team's budget has left this period.", ["team", "period"], registry=registry)
        self.route_cost = Counter(ROUTE_COST_TOTAL, "What a routed name's requests cost, abandoned cheap attempts included "
                                  "(list prices; local at the ceiling).", ["route"], registry=registry)
        self.route_strongest_cost = Counter(ROUTE_STRONGEST_COST_TOTAL, "What the same usage would have cost on the routed name's "
                                            "strongest candidate.", ["route"], registry=registry)
        self.budget_soft_limit = Gauge(BUDGET_SOFT_LIMIT, "1 once a team has spent 80% of a budget this period.", ["team", "period"],
                                       registry=registry)
