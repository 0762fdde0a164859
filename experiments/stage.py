"""The experiment stage: right after authentication, a request to a route under test is given
its variant, and from then on it is served as the variant's own route.

Why it rewrites ``ctx.route`` and nothing else: every later stage (admission's reservation,
the cache, routing, compression, dispatch) reads its settings by route, and each variant is a
route built from the experiment route's settings at start (spillover.experiment_routes). The
public name the client asked for stays in ``ctx.model`` (the ledger's ``model_asked``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from contracts.context import RequestContext
from contracts.experiments import Assignment
from contracts.pipeline import Stage
from experiments.assign import assign

__all__ = ["ExperimentPlan", "ExperimentStage"]


@dataclass(frozen=True)
class ExperimentPlan:
    name: str
    #: Variant -> weight, in the configured order.
    weights: Mapping[str, float]
    #: Variant -> the route that serves it.
    variant_routes: Mapping[str, str]
    assign_by: str = "user"


class ExperimentStage(Stage):
    name = "experiment"

    def __init__(self, plans: Mapping[str, ExperimentPlan], running: Callable[[str], bool]) -> None:
        """``plans``: per public route under test, its experiment; ``running``: whether an
        experiment splits traffic now (the admin API starts and stops them)."""
        self._plans = plans
        self._running = running

    async def process(self, ctx: RequestContext) -> None:
        plan = self._plans.get(ctx.route)
        if plan is None or not self._running(plan.name):
            return
        unit = ctx.principal.user if plan.assign_by == "user" else ctx.principal.key_id
        variant = assign(plan.name, unit, plan.weights)
        ctx.route = plan.variant_routes[variant]
        ctx.put(Assignment(plan.name, variant))
