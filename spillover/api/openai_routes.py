"""The OpenAI surface: chat and text completions, embeddings, and the model list.

A handler reads and bounds the body (413), validates what the ingress acts on (400 with
``param``), builds the request context with its facts worked out once, walks the pipeline, and
returns one body or an SSE stream with the spill-over and cache headers.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from contracts.context import Api, CacheResult, RequestContext, RequestFacts, new_request_id
from contracts.errors import NotFoundError
from contracts.compression import COMPRESS_HEADER, Compression
from contracts.routing import MODEL_HEADER, RouteChoice
from serving.wire import ChatCompletionBody, CompletionBody, EmbeddingBody, request_facts
from spillover.assembly import IngressParts
from webio.bodies import parse_body, read_json_body

__all__ = ["CACHE_HEADER", "REQUEST_ID_HEADER", "openai_router", "request_id_of"]

REQUEST_ID_HEADER = "x-request-id"
CACHE_HEADER = "x-spillover-cache"
_CACHE_HEADER_VALUE = {CacheResult.EXACT: "hit-exact", CacheResult.SEMANTIC: "hit-semantic"}


def request_id_of(request: Request) -> str:
    """Accept the caller's ``x-request-id`` (bounded, printable) or make one."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = given if 0 < len(given) <= 128 and given.isprintable() else new_request_id()
    request.state.request_id = request_id
    return request_id


def openai_router(ingress: IngressParts, *, echo_request_id: bool) -> APIRouter:
    router = APIRouter()
    public_models = ingress.names.listed()

    @router.get("/v1/models")
    async def list_models() -> dict:
        return {"object": "list", "data": [_model_card(m) for m in public_models]}

    @router.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str) -> dict:
        if model_id not in public_models:
            raise NotFoundError(f"The model '{model_id}' does not exist.", param="model", code="model_not_found")
        return _model_card(model_id)

    async def handle(request: Request, api: Api, wire: type) -> Response:
        request_id = request_id_of(request)
        body = ingress.names.admit(api, await read_json_body(request, ingress.config.server.max_body_bytes))
        parsed = parse_body(wire, body)
        ctx = RequestContext(
            request_id=request_id,
            api=api,
            model=parsed.model,
            body=body,
            stream=bool(getattr(parsed, "stream", False)),
            headers={k.lower(): v for k, v in request.headers.items()},
            facts=RequestFacts() if api is Api.EMBEDDINGS else request_facts(
                parsed, body, ingress.names.default_max_tokens(parsed.model), count_prompt_tokens=ingress.count_prompt_tokens(parsed.model)),
        )
        outcome = await ingress.pipeline.run(ctx)
        headers = {**_spill_headers(ctx), **outcome.headers}
        if echo_request_id:
            headers[REQUEST_ID_HEADER] = request_id
        if outcome.stream is not None:
            return StreamingResponse(outcome.stream, media_type="text/event-stream", headers=headers)
        return JSONResponse(outcome.body, headers=headers)

    @router.post("/v1/chat/completions", openapi_extra=_request_schema(ChatCompletionBody))
    async def chat_completions(request: Request) -> Response:
        return await handle(request, Api.CHAT, ChatCompletionBody)

    @router.post("/v1/completions", openapi_extra=_request_schema(CompletionBody))
    async def completions(request: Request) -> Response:
        return await handle(request, Api.COMPLETIONS, CompletionBody)

    @router.post("/v1/embeddings", openapi_extra=_request_schema(EmbeddingBody))
    async def embeddings(request: Request) -> Response:
        return await handle(request, Api.EMBEDDINGS, EmbeddingBody)

    return router


def _request_schema(wire: type) -> dict:
    """Document the body the handler parses itself (so the OpenAPI spec is testable)."""
    schema = wire.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _model_card(model: str) -> dict:
    return {"id": model, "object": "model", "created": 0, "owned_by": "spillover"}


def _spill_headers(ctx: RequestContext) -> dict[str, str]:
    headers = {CACHE_HEADER: _CACHE_HEADER_VALUE.get(ctx.cache_result, "miss")}
    if ctx.destination:
        headers["x-spillover-destination"] = ctx.destination
    if ctx.spill_reason:
        headers["x-spillover-reason"] = ctx.spill_reason.value
    if ctx.predicted_ttft_s is not None:
        # The local wait the decision was judged on: lets a client (and the benchmark) check it.
        headers["x-spillover-predicted-ttft-ms"] = f"{ctx.predicted_ttft_s * 1000:.0f}"
    if ctx.timings.upstream_started is not None:
        # From the ingress taking the request to the upstream's first item: the part of a
        # client's time to first token spent at and behind the ingress (the rest is the path
        # in front of it: the client, the proxy).
        headers["x-spillover-upstream-start-ms"] = f"{(ctx.timings.upstream_started - ctx.timings.received) * 1000:.0f}"
    choice = ctx.slot(RouteChoice)
    if choice is not None:  # a routed name: which candidate served, why, and what was tried first
        headers[MODEL_HEADER] = choice.model
        headers["x-spillover-route-reason"] = choice.reason.value
        if choice.score is not None:
            headers["x-spillover-router-score"] = f"{choice.score:.4f}"
        if choice.escalations:
            headers["x-spillover-escalations"] = choice.escalations_text()
    compression = ctx.slot(Compression)
    if compression is not None:  # what compression did, with the ratio it reached against its target
        headers[COMPRESS_HEADER] = compression.header()
    return headers
