"""Send the request where the spill-over decision says, failing over before the first token.

The decision (:func:`fallback.decision.decide`) runs here, before dispatch, on fresh engine
state and the providers' breaker states. Its destination is tried first, then the decision's
fallbacks (:class:`fallback.failover.Failover`); whoever sends the first item serves the request,
and ``ctx.destination``/``ctx.spill_reason`` say who and why (``failover_error`` when it was
not the first choice). Embeddings are always served locally.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Collection, Mapping
from typing import Any

from contracts.context import Api, RequestContext
from contracts.engine_state import EngineState
from contracts.errors import CapacityError, InvalidRequestError, NoReplicaError, NotFoundError
from contracts.local_engines import LocalEngines
from contracts.pipeline import Stage
from contracts.spill import LOCAL, RoutePin, SpillReason
from contracts.upstream import UpstreamCall
from fallback.breaker import CircuitBreaker
from fallback.decision import DispatchRequest, Route, decide, local_last_resort, queued_work_s
from fallback.failover import Failover, Target
from fallback.providers.interface import Provider
from fallback.start_meter import StartMeter, metered

__all__ = ["Dispatch", "ROUTE_HEADER"]

ROUTE_HEADER = "x-spillover-route"


class Dispatch(Stage):
    name = "dispatch"

    def __init__(
        self,
        engines: LocalEngines,
        routes: Mapping[str, Route],
        *,
        providers: Mapping[str, Provider] | None = None,
        breakers: Mapping[str, CircuitBreaker] | None = None,
        failover: Failover | None = None,
        embedding_models: Collection[str] = (),
        local_start_timeout_s: float | None = None,
    ) -> None:
        self._engines = engines
        self._routes = routes
        self._providers = providers or {}
        self._breakers = breakers or {}
        self._failover = failover or Failover(self._breakers)
        self._embedding_models = frozenset(embedding_models)
        self._local_start_timeout_s = local_start_timeout_s
        self._meters: dict[str, StartMeter] = {}

    async def process(self, ctx: RequestContext) -> None:
        if ctx.api is Api.EMBEDDINGS:
            self._dispatch_embeddings(ctx)
            return
        route = self._routes.get(ctx.route)
        if route is None:
            raise _unknown_model(ctx.model)
        request = DispatchRequest(prompt_tokens=ctx.facts.prompt_tokens, max_tokens=ctx.facts.max_tokens, pin=_pin(ctx.headers.get(ROUTE_HEADER)))
        state = self._local_state(route.local_model) if route.local_model else None
        decision = decide(request, state, self._with_health(route))
        ctx.spill_reason, ctx.predicted_ttft_s = decision.reason, decision.predicted_ttft_s
        if decision.destination is None:
            raise _nowhere(ctx.model, decision.reason)
        order = [decision.destination, *(t.provider for t in decision.fallbacks)]
        if local_last_resort(decision, request, state, route):
            order.append(LOCAL)
        body = _upstream_body(ctx)
        # A local stream waits for its first item only as long as there is somewhere else to go.
        # A non-stream answer's first item is the whole answer: bounding it would cut long
        # answers and pay twice; an engine that fails still fails it over.
        timeout = route.local_start_timeout_s or self._local_start_timeout_s
        local_timeout = timeout if order[-1] != LOCAL and ctx.stream else None
        work_s = queued_work_s(request, state, route)
        targets = [self._target(name, route, ctx, body, local_timeout, work_s) for name in order]
        ctx.timings.dispatched = time.perf_counter()
        started = await self._failover.start(targets, ctx.request_id)
        ctx.timings.upstream_started = time.perf_counter()
        ctx.destination = started.target
        if started.target != decision.destination:
            ctx.spill_reason = SpillReason.FAILOVER_ERROR
        ctx.model_served = route.local_model if started.target == LOCAL else self._served_model(route, started.target)
        ctx.upstream = started.items()

    def _meter(self, model: str) -> StartMeter:
        return self._meters.setdefault(model, StartMeter())

    def _local_state(self, model: str) -> EngineState:
        """The engines' state plus the queue in front of them that only this sender sees."""
        meter = self._meter(model)
        state = self._engines.state(model)
        return dataclasses.replace(state, local_unstarted=meter.unstarted, local_backlog_s=meter.backlog_s(),
                                   local_oldest_wait_s=meter.oldest_wait_s(),
                                   local_starts_per_s=meter.starts_per_busy_s())

    def _with_health(self, route: Route) -> Route:
        """The route with each hosted target's health as its provider's breaker sees it now."""
        if not route.hosted:
            return route
        hosted = tuple(
            dataclasses.replace(t, healthy=t.provider in self._providers and _available(self._breakers.get(t.provider)))
            for t in route.hosted
        )
        return dataclasses.replace(route, hosted=hosted)

    def _target(self, name: str, route: Route, ctx: RequestContext, body: dict[str, Any], local_timeout_s: float | None,
                work_s: float) -> Target:
        if name == LOCAL:
            assert route.local_model is not None
            # The engine knows its own model's name, not the route's.
            local_body = {**body, "model": route.local_model}
            call = UpstreamCall(ctx.api.value, local_body, route.local_model, ctx.request_id, ctx.facts.prompt_tokens)
            meter, engines = self._meter(route.local_model), self._engines
            return Target(LOCAL, lambda: metered(meter, engines.generate(call), work_s), local_timeout_s)
        provider = self._providers[name]
        call = UpstreamCall(ctx.api.value, body, self._hosted_model(route, name), ctx.request_id, ctx.facts.prompt_tokens)
        return Target(name, lambda: provider.generate(call))

    @staticmethod
    def _hosted_model(route: Route, provider: str) -> str:
        """The model name a hosted target is asked for (its provider may map it further)."""
        target = next((t for t in route.hosted if t.provider == provider), None)
        return target.model if target is not None and target.model else route.name

    def _served_model(self, route: Route, provider: str) -> str:
        """The provider's own name for the model: what it bills, so what the ledger prices."""
        return self._providers[provider].config.upstream_model(self._hosted_model(route, provider))

    def _dispatch_embeddings(self, ctx: RequestContext) -> None:
        """Embeddings are always served locally: they cost next to nothing and the cache shares them."""
        if ctx.model not in self._embedding_models:
            raise _unknown_model(ctx.model)
        ctx.destination, ctx.spill_reason, ctx.model_served = LOCAL, SpillReason.LOCAL_OK, ctx.model
        ctx.timings.dispatched = time.perf_counter()
        ctx.upstream = self._engines.embed(ctx.model, ctx.body)


def _available(breaker: CircuitBreaker | None) -> bool:
    return breaker is None or breaker.available()


def _unknown_model(model: str) -> NotFoundError:
    return NotFoundError(
        f"The model '{model}' does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def _nowhere(model: str, reason: SpillReason) -> CapacityError:
    if reason in (SpillReason.NO_READY_REPLICA, SpillReason.COLD_START, SpillReason.DRAINING):
        return NoReplicaError(f"No replica of '{model}' is ready ({reason.value}) and no healthy hosted target can take it.", retry_after_s=5)
    if reason is SpillReason.HOSTED_FORBIDDEN:
        return NoReplicaError(f"'{model}' may not be sent to hosted targets.", code="hosted_forbidden", retry_after_s=5)
    return CapacityError(f"No healthy target can serve '{model}' now ({reason.value}).", retry_after_s=5, code="no_healthy_target")


def _pin(value: str | None) -> RoutePin:
    if not value:
        return RoutePin.AUTO
    try:
        return RoutePin(value.strip().lower())
    except ValueError:
        allowed = ", ".join(p.value for p in RoutePin)
        raise InvalidRequestError(
            f"Invalid X-Spillover-Route header {value!r}; expected one of: {allowed}.",
            param="X-Spillover-Route",
        ) from None


def _upstream_body(ctx: RequestContext) -> dict[str, Any]:
    """The body upstream gets: usage is always asked for, so every stream is accounted."""
    body = dict(ctx.body)
    if ctx.stream:
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return body

