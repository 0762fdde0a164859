"""Each experiment variant becomes a route of its own, built from the experiment route's settings.

Why routes: every stage reads its settings per route, so a variant needs no code in any stage;
the experiment stage only points a request at its variant's route. Variant routes are named
``<route>~<experiment>.<variant>``; clients cannot ask for them (PublicNames keeps them hidden),
and metrics and the cache see them as routes of their own (each variant caches apart: a
variant's hit rate is its own traffic's).

- ``settings``: the experiment route's entry with those fields deep-merged.
- ``route``: another route's entry (another model), then ``settings`` on top.
- ``holdout``: every lever off (``RouteConfig.LEVERS_OFF``); a routed route's holdout is its
  strongest candidate with its levers off, the "everything to the strongest model" counterfactual.
"""

from __future__ import annotations

import copy
from typing import Any

from experiments.config import ExperimentConfig
from experiments.stage import ExperimentPlan
from spillover.config import RouteConfig, SpilloverConfig, parse_config
from spillover.public_names import VARIANT_MARK

__all__ = ["VARIANT_MARK", "variant_route_name", "with_experiment_routes"]


def variant_route_name(route: str, experiment: str, variant: str) -> str:
    return f"{route}{VARIANT_MARK}{experiment}.{variant}"


def with_experiment_routes(config: SpilloverConfig) -> tuple[SpilloverConfig, dict[str, ExperimentPlan]]:
    """The config with every variant's route added, and per tested route its plan."""
    if not config.experiments:
        return config, {}
    raw = config.model_dump(mode="json", exclude_unset=False)
    plans: dict[str, ExperimentPlan] = {}
    for name, experiment in config.experiments.items():
        variant_routes = {}
        for variant in experiment.variants:
            route_name = variant_route_name(experiment.route, name, variant)
            raw["routes"][route_name] = _variant_entry(config, experiment, variant)
            variant_routes[variant] = route_name
        plans[experiment.route] = ExperimentPlan(name, {v: c.weight for v, c in experiment.variants.items()}, variant_routes,
                                                 experiment.assign_by)
    return parse_config(raw, origin="experiments"), plans


def _entry(config: SpilloverConfig, route: str) -> dict[str, Any]:
    """A route's settings as a plain mapping, its local model named (a variant route has another
    name, so a model's implicit route must say which model serves it); no aliases (not public)."""
    entry = config.routes.get(route, RouteConfig()).model_dump(mode="json", exclude={"aliases"})
    if entry["local_model"] is None and entry["routing"] is None and route in {m.name for m in config.models}:
        entry["local_model"] = route
    return entry


def _variant_entry(config: SpilloverConfig, experiment: ExperimentConfig, variant: str) -> dict[str, Any]:
    wanted = experiment.variants[variant]
    if wanted.holdout:
        base = config.routes.get(experiment.route)
        strongest = base.routing.candidates[-1] if base is not None and base.routing is not None else experiment.route
        return _merged(_entry(config, strongest), RouteConfig.LEVERS_OFF)
    return _merged(_entry(config, wanted.route or experiment.route), wanted.settings)


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
