"""The route table: what each public model name means, resolved once from the whole config.

Every local model is a route of its own name; ``routes`` adds hosted targets and new names. The
subsystems get only what they need of it: dispatch its :class:`fallback.decision.Route` objects,
the cache each route's cache block and model version, costs each route's hosted models (their
prices bound what a budget reserves) and each local model's replica shape, and the prompt-token
counters each route's local model source (where its tokenizer is).
"""

from __future__ import annotations

from costbook.costbook import ReplicaShape
from costlevers.cache.config import RouteCacheConfig
from costlevers.cache.request_key import model_version_of
from fallback.decision import HostedTarget, Route
from spillover.config import RouteConfig, SpilloverConfig

__all__ = ["DEFAULT_TTFT_TARGET_S", "cache_routes", "hosted_models", "local_sources", "replica_shapes", "routes_from_config"]

#: TTFT target of a local model that has no `routes` entry of its own.
DEFAULT_TTFT_TARGET_S = 2.0


def routes_from_config(config: SpilloverConfig) -> dict[str, Route]:
    routes = {m.name: Route(name=m.name, local_model=m.name, ttft_target_s=DEFAULT_TTFT_TARGET_S) for m in config.models}
    local_models = {m.name for m in config.models}
    for name, rc in config.routes.items():
        local = rc.local_model or (name if name in local_models else None)
        routes[name] = Route(
            name=name,
            local_model=local,
            ttft_target_s=rc.ttft_target_s,
            hosted=tuple(HostedTarget(provider=t.provider, model=t.model or "") for t in rc.hosted),
            allow_hosted=rc.allow_hosted,
            local_start_timeout_s=rc.local_start_timeout_s,
        )
    return routes


def _upstream_models(config: SpilloverConfig, route: Route) -> list[tuple[str, str]]:
    """The route's hosted targets as (provider, the provider's own model name)."""
    providers = {p.name: p for p in config.providers}
    return [(t.provider, providers[t.provider].upstream_model(t.model or route.name)) for t in route.hosted if t.provider in providers]


def cache_routes(config: SpilloverConfig, routes: dict[str, Route]) -> dict[str, tuple[RouteCacheConfig, str]]:
    """Per route: its cache block, and the default model version (a hash of its local model's
    config and its hosted models), so changing either starts a fresh cache."""
    models = {m.name: m.model_dump(mode="json") for m in config.models}
    def behind(route: Route) -> dict:
        return {"local": models.get(route.local_model or ""), "hosted": _upstream_models(config, route)}

    out = {}
    for name, route in routes.items():
        rc = config.routes.get(name, RouteConfig())
        # A routed name answers with whichever candidate serves: its version covers them all.
        version = model_version_of([behind(routes[c]) for c in rc.routing.candidates] if rc.routing else behind(route))
        out[name] = (rc.cache, version)
    return out


def hosted_models(config: SpilloverConfig, routes: dict[str, Route]) -> dict[str, list[str]]:
    """Per configured route, the provider model names it may spill to (none where hosting is off;
    a routed route's: its candidates')."""
    def models_of(name: str) -> list[str]:
        rc = config.routes.get(name, RouteConfig())
        if rc.routing is not None:  # any candidate may serve a routed name
            return [model for candidate in rc.routing.candidates for model in models_of(candidate)]
        return [model for _, model in _upstream_models(config, routes[name])] if rc.allow_hosted else []

    return {name: models_of(name) for name in config.routes}


def replica_shapes(config: SpilloverConfig) -> dict[str, ReplicaShape]:
    return {m.name: ReplicaShape(m.gpus_per_replica, m.cpus_per_replica, m.usd_per_replica_hour) for m in config.models}


def local_sources(config: SpilloverConfig, routes: dict[str, Route]) -> dict[str, str]:
    """Per route with a local model, that model's ``source`` (where its tokenizer is)."""
    sources = {m.name: m.source for m in config.models}
    return {name: sources[route.local_model] for name, route in routes.items() if route.local_model in sources}
