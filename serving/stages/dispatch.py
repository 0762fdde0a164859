"""Send the request where the spill-over decision says: in this issue, the local engines.

The decision (:func:`fallback.decision.decide`) runs here, before dispatch, on fresh engine
state. With no hosted target configured, a request the local engines cannot take gets 503
with ``Retry-After`` instead of waiting in a queue that will miss its target.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping

from fallback.decision import LOCAL, DispatchRequest, Route, RoutePin, SpillReason, decide
from serving.context import Api, RequestContext
from serving.errors import InvalidRequestError, NoReplicaError, NotFoundError
from serving.local_engines import LocalEngines
from serving.pipeline import Stage
from serving.wire import estimate_prompt_tokens

__all__ = ["DispatchLocal", "ROUTE_HEADER"]

ROUTE_HEADER = "x-spillover-route"


class DispatchLocal(Stage):
    name = "dispatch"

    def __init__(
        self,
        engines: LocalEngines,
        routes: Mapping[str, Route],
        *,
        embedding_models: Collection[str] = (),
        default_max_tokens: int,
    ) -> None:
        self._engines = engines
        self._routes = routes
        self._embedding_models = frozenset(embedding_models)
        self._default_max_tokens = default_max_tokens

    async def process(self, ctx: RequestContext) -> None:
        if ctx.api is Api.EMBEDDINGS:
            self._dispatch_embeddings(ctx)
            return
        route = self._routes.get(ctx.route)
        if route is None or ctx.parsed is None:
            raise _unknown_model(ctx.model)
        parsed = ctx.parsed
        request = DispatchRequest(
            prompt_tokens=estimate_prompt_tokens(parsed),
            max_tokens=parsed.output_limit(self._default_max_tokens),
            pin=_pin(ctx.headers.get(ROUTE_HEADER)),
        )
        state = self._engines.state(route.local_model) if route.local_model else None
        decision = decide(request, state, route)
        ctx.spill_reason = decision.reason
        if decision.destination != LOCAL or route.local_model is None:
            raise NoReplicaError(
                f"No replica of '{ctx.model}' is ready ({decision.reason.value}) and no hosted "
                "target is configured for it.",
                retry_after_s=5,
            )
        ctx.destination = LOCAL
        ctx.model_served = route.local_model
        ctx.timings.dispatched = time.perf_counter()
        ctx.upstream = self._engines.generate(ctx.api.value, route.local_model, _engine_body(ctx), ctx.request_id)

    def _dispatch_embeddings(self, ctx: RequestContext) -> None:
        """Embeddings are always served locally: they cost next to nothing and the cache shares them."""
        if ctx.model not in self._embedding_models:
            raise _unknown_model(ctx.model)
        ctx.destination, ctx.spill_reason, ctx.model_served = LOCAL, SpillReason.LOCAL_OK, ctx.model
        ctx.timings.dispatched = time.perf_counter()
        ctx.upstream = self._engines.embed(ctx.model, ctx.body)


def _unknown_model(model: str) -> NotFoundError:
    return NotFoundError(
        f"The model '{model}' does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


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


def _engine_body(ctx: RequestContext) -> dict:
    """The body the engine gets: usage is always asked for, so every stream is accounted."""
    body = dict(ctx.body)
    if ctx.stream:
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return body
