"""The ingress: spillover's OpenAI-compatible HTTP app, built by a factory.

The same app runs as a Ray Serve ingress deployment (:mod:`serving.application`) and under
plain uvicorn in tests and benchmarks; it is handed its engines and never builds them. Request
path: parse and bound the body, build a :class:`~serving.context.RequestContext`, walk the
:class:`~serving.pipeline.Pipeline` (authenticate, admit, cache, dispatch, respond), and return
one body or an SSE stream with the spill-over and cache headers.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response, StreamingResponse

from costlevers.cache.admin import cache_admin_router
from costlevers.cache.runtime import CacheRuntime
from costlevers.cache.stage import CACHE_HEADER, header_value
from fallback.breaker import CircuitBreaker
from fallback.decision import HostedTarget, Route
from fallback.failover import Failover
from fallback.providers import Provider, build_provider
from serving.config import SpilloverConfig
from serving.context import Api, Principal, RequestContext, new_request_id
from serving.errors import NotFoundError, SpilloverError, error_body
from serving.local_engines import LocalEngines
from serving.logs import access_log
from serving.metrics import Metrics
from serving.pipeline import Pipeline, Stage
from serving.stages import Authenticate, Dispatch, Respond, static_keys_from_env
from serving.wire import ChatCompletionBody, CompletionBody, EmbeddingBody, parse_body, read_json_body

if TYPE_CHECKING:
    from costbook.runtime import Costbook

__all__ = ["create_app", "default_stages", "routes_from_config", "REQUEST_ID_HEADER"]

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
#: TTFT target of a local model that has no `routes` entry of its own.
DEFAULT_TTFT_TARGET_S = 2.0
#: ``max_tokens`` assumed for the decision when the request leaves it unset.
DEFAULT_MAX_TOKENS = 256


def routes_from_config(config: SpilloverConfig) -> dict[str, Route]:
    """Every local model is a route of its own name; ``routes`` adds targets and new names."""
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
        )
    return routes


def breakers_from_config(config: SpilloverConfig) -> dict[str, CircuitBreaker]:
    f = config.failover
    return {
        p.name: CircuitBreaker(
            consecutive_failures=f.breaker_consecutive_failures,
            failure_rate=f.breaker_failure_rate,
            window=f.breaker_window,
            min_samples=f.breaker_min_samples,
            cooldown_s=f.breaker_cooldown_s,
        )
        for p in config.providers
    }


def default_stages(
    config: SpilloverConfig,
    engines: LocalEngines,
    providers: Mapping[str, Provider],
    breakers: Mapping[str, CircuitBreaker],
    costbook: Costbook | None = None,
    cache: Stage | None = None,
) -> list[Stage]:
    if costbook is None:
        authenticate = Authenticate(static_keys_from_env(config.auth.keys_env), enabled=config.auth.enabled)
    else:
        authenticate = Authenticate(costbook.principals(), enabled=config.auth.enabled, digest_of=costbook.digest)
    admit = [] if costbook is None else [costbook.admit_stage(config, DEFAULT_MAX_TOKENS)]
    return [
        authenticate,
        *admit,
        *([cache] if cache is not None else []),
        Dispatch(
            engines,
            routes_from_config(config),
            providers=providers,
            breakers=breakers,
            failover=Failover(breakers, attempts_per_target=config.failover.attempts_per_target, deadline_s=config.failover.deadline_s),
            embedding_models=[e.name for e in config.embeddings],
            default_max_tokens=DEFAULT_MAX_TOKENS,
            local_start_timeout_s=config.failover.local_start_timeout_s,
        ),
        Respond(),
    ]


def create_app(
    config: SpilloverConfig,
    engines: LocalEngines,
    *,
    stages: Sequence[Stage] | None = None,
    providers: Mapping[str, Provider] | None = None,
    costbook: Costbook | None = None,
    echo_request_id: bool = True,
) -> FastAPI:
    """Build the ingress app over ``engines``.

    ``echo_request_id``: add ``x-request-id`` to responses; off behind Serve's proxy, which
    already echoes the same id (it forwards the client's, or its own, to the app).
    """
    providers = {p.name: build_provider(p) for p in config.providers} if providers is None else dict(providers)
    breakers = breakers_from_config(config)
    routes = routes_from_config(config)

    metrics = Metrics(engine_states=engines.all_states)
    shadow: list[Pipeline] = []
    cache = CacheRuntime.from_config(config, routes, engines.embed, metrics, ask=lambda body, who: _ask_past_cache(shadow[0], body, who))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if costbook is not None:
            costbook.start(engines.replica_time)
        await cache.start()
        yield
        await cache.aclose()
        for provider in providers.values():
            await provider.aclose()
        if costbook is not None:
            await costbook.aclose()

    app = FastAPI(title="spillover", version="0.1.0", docs_url=None, redoc_url=None, lifespan=lifespan)
    if costbook is not None:
        costbook.attach(metrics)
    stages = default_stages(config, engines, providers, breakers, costbook, cache.stage) if stages is None else stages
    sinks = [costbook.record] if costbook is not None else []
    pipeline = Pipeline(stages, sinks=[*sinks, _metrics_sink(metrics), access_log])
    # A cache shadow check asks the model again, past the cache and the caller's limits; its
    # cost is still a ledger row (feature "cache-shadow").
    shadow.append(Pipeline([s for s in stages if s.name in ("dispatch", "respond")], sinks=sinks))
    app.state.config = config
    app.state.engines = engines
    app.state.pipeline = pipeline
    app.state.metrics = metrics
    _install_error_handlers(app, echo_request_id)
    if costbook is not None:
        from costbook.admin import admin_router, budget_router

        app.include_router(admin_router(costbook.keys.store, costbook.admin_key))
        authenticate = Authenticate(costbook.principals(), enabled=config.auth.enabled, digest_of=costbook.digest)
        app.include_router(budget_router(authenticate, costbook.admit_stage(config, DEFAULT_MAX_TOKENS), costbook.counters))
    app.include_router(cache_admin_router(cache, costbook.admin_key if costbook is not None else os.environ.get(config.auth.admin_key_env) or None))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> Response:
        """Every route can be served: a local replica is ready, or a hosted target is healthy."""
        states = engines.all_states()
        report = {}
        for name, route in routes.items():
            state = states.get(route.local_model) if route.local_model else None
            hosted = [t.provider for t in route.hosted if t.provider in providers and breakers[t.provider].available()] if route.allow_hosted else []
            report[name] = {
                "replicas_ready": state.replicas_ready if state else 0,
                "replicas_starting": state.replicas_starting if state else 0,
                "healthy_hosted": hosted,
            }
        body = {"ready": all(r["replicas_ready"] > 0 or r["healthy_hosted"] for r in report.values()), "routes": report}
        if body["ready"]:
            return JSONResponse(body)
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})

    public_models = [*routes, *engines.embedding_models()]

    @app.get("/v1/models")
    async def list_models() -> dict:
        return {"object": "list", "data": [_model_card(m) for m in public_models]}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str) -> dict:
        if model_id not in public_models:
            raise NotFoundError(f"The model '{model_id}' does not exist.", param="model", code="model_not_found")
        return _model_card(model_id)

    @app.get("/v1/engine/state")
    async def engine_state() -> dict:
        return {"object": "engine_state", "data": {m: s.to_dict() for m, s in engines.all_states().items()}}

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def handle(request: Request, api: Api, wire: type) -> Response:
        request_id = _request_id(request)
        body = await read_json_body(request, config.server.max_body_bytes)
        parsed = parse_body(wire, body)
        ctx = RequestContext(
            request_id=request_id,
            api=api,
            model=parsed.model,
            body=body,
            stream=bool(getattr(parsed, "stream", False)),
            headers={k.lower(): v for k, v in request.headers.items()},
            parsed=parsed if api is not Api.EMBEDDINGS else None,
        )
        metrics.in_flight.labels(ctx.model).inc()
        outcome = await pipeline.run(ctx)
        headers = {**_spill_headers(ctx), **outcome.headers}
        if echo_request_id:
            headers[REQUEST_ID_HEADER] = request_id
        if outcome.stream is not None:
            return StreamingResponse(outcome.stream, media_type="text/event-stream", headers=headers)
        return JSONResponse(outcome.body, headers=headers)

    @app.post("/v1/chat/completions", openapi_extra=_request_schema(ChatCompletionBody))
    async def chat_completions(request: Request) -> Response:
        return await handle(request, Api.CHAT, ChatCompletionBody)

    @app.post("/v1/completions", openapi_extra=_request_schema(CompletionBody))
    async def completions(request: Request) -> Response:
        return await handle(request, Api.COMPLETIONS, CompletionBody)

    @app.post("/v1/embeddings", openapi_extra=_request_schema(EmbeddingBody))
    async def embeddings(request: Request) -> Response:
        return await handle(request, Api.EMBEDDINGS, EmbeddingBody)

    return app


def _request_schema(wire: type) -> dict:
    """Document the body the handler parses itself (so the OpenAPI spec is testable)."""
    schema = wire.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _model_card(model: str) -> dict:
    return {"id": model, "object": "model", "created": 0, "owned_by": "spillover"}


def _request_id(request: Request) -> str:
    """Accept the caller's ``x-request-id`` (bounded, printable) or make one."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = given if 0 < len(given) <= 128 and given.isprintable() else new_request_id()
    request.state.request_id = request_id
    return request_id


async def _ask_past_cache(pipeline: Pipeline, body: dict, principal: Principal) -> str | None:
    """The model's own answer to ``body`` (a cache shadow check), or None."""
    ctx = RequestContext(new_request_id(), Api.CHAT, body["model"], body, False, {}, parsed=parse_body(ChatCompletionBody, body),
                         principal=dataclasses.replace(principal, feature="cache-shadow"))
    outcome = await pipeline.run(ctx)
    choices = (outcome.body or {}).get("choices") or [{}]
    return (choices[0].get("message") or {}).get("content")


def _spill_headers(ctx: RequestContext) -> dict[str, str]:
    headers = {CACHE_HEADER: header_value(ctx.cache_result)}
    if ctx.destination:
        headers["x-spillover-destination"] = ctx.destination
    if ctx.spill_reason:
        headers["x-spillover-reason"] = ctx.spill_reason.value
    if ctx.predicted_ttft_s is not None:
        # The local wait the decision was judged on: lets a client (and the benchmark) check it.
        headers["x-spillover-predicted-ttft-ms"] = f"{ctx.predicted_ttft_s * 1000:.0f}"
    return headers


def _metrics_sink(metrics: Metrics):  # type: ignore[no-untyped-def]  # returns a Sink closure
    def record(ctx: RequestContext) -> None:
        destination = ctx.destination or "none"
        reason = ctx.spill_reason.value if ctx.spill_reason else "none"
        metrics.in_flight.labels(ctx.model).dec()
        metrics.requests.labels(ctx.model, destination, reason, ctx.status.value).inc()
        if ctx.timings.dispatched is not None:
            metrics.overhead.labels(ctx.api.value).observe(ctx.timings.dispatched - ctx.timings.received)
        ttft, total = ctx.timings.ttft_s(), ctx.timings.total_s()
        if ttft is not None:
            metrics.ttft.labels(ctx.model, destination).observe(ttft)
        if total is not None:
            metrics.duration.labels(ctx.model, destination).observe(total)

    return record


def _install_error_handlers(app: FastAPI, echo_request_id: bool) -> None:
    def respond(request: Request, status: int, body: dict, headers: dict[str, str] | None = None) -> JSONResponse:
        headers = dict(headers or {})
        if echo_request_id:
            headers[REQUEST_ID_HEADER] = getattr(request.state, "request_id", None) or _request_id(request)
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(SpilloverError)
    async def spillover_error(request: Request, exc: SpilloverError) -> JSONResponse:
        log = logger.warning if exc.status_code >= 500 else logger.info
        log("request refused: %s %s", exc.status_code, exc.code, extra={"request_id": getattr(request.state, "request_id", None)})
        return respond(request, exc.status_code, exc.body(), exc.headers())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            body = error_body(f"Unknown request URL: {request.method} {request.url.path}.", "invalid_request_error", None, "unknown_url")
        elif exc.status_code == 405:
            body = error_body(f"Method {request.method} is not allowed for {request.url.path}.", "invalid_request_error", None, "method_not_allowed")
        else:
            body = error_body(str(exc.detail), "invalid_request_error" if exc.status_code < 500 else "api_error")
        return respond(request, exc.status_code, body, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # No stack trace or message to the client: both can carry prompt text.
        logger.error("unexpected error: %s", type(exc).__name__, extra={"request_id": getattr(request.state, "request_id", None)})
        return respond(request, 500, error_body("The server had an error while processing your request.", "api_error", None, "internal_error"))
