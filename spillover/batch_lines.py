"""What the batch lever needs of the ingress, which it may not import: how one batch line runs
through the ingress's own pipeline, when a local model has room for one, and which models a
line may name.

A line is parsed and checked as the same request would be over HTTP (a bad body fails that line
with the same 400), then walks the stages after authentication as its batch's owner: admission
charges its budget (no rate limit), the cache may answer it, routing picks its model, dispatch
keeps it local (``X-Spillover-Route: local-only``: batch lines never spill to hosted sync APIs),
and the ledger row carries the batch id.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

from contracts.batch import BatchLine
from contracts.context import Api, Principal, RequestContext, RequestFacts, Status, Usage
from contracts.errors import SpilloverError, error_body
from contracts.local_engines import LocalEngines
from contracts.pipeline import Pipeline
from contracts.spill import RoutePin
from contracts.tokens import estimate_prompt_tokens
from costbook.admit import Admit
from costlevers.batch.config import BatchConfig
from costlevers.batch.hosted import HostedBatches, OpenAIBatches
from costlevers.batch.validate import ENDPOINTS
from costlevers.batch.worker import HandOff
from fallback.providers.anthropic_batches import AnthropicBatches
from fallback.decision import Route
from fallback.providers.config import ProviderConfig
from serving.prompt_tokens import PromptTokenCounter
from serving.stages.dispatch import ROUTE_HEADER
from serving.wire import ChatCompletionBody, CompletionBody, EmbeddingBody, request_facts
from spillover.public_names import PublicNames
from webio.bodies import parse_body

__all__ = ["BATCH_PRIORITY", "BatchBudget", "BatchLines", "InteractiveInFlight"]

#: A batch line's priority on an engine that schedules by priority (lower runs first; an
#: interactive request has vLLM's default, 0).
BATCH_PRIORITY = 100

logger = logging.getLogger(__name__)

_WIRE = {Api.CHAT: ChatCompletionBody, Api.COMPLETIONS: CompletionBody, Api.EMBEDDINGS: EmbeddingBody}


class InteractiveInFlight:
    """Interactive requests in the pipeline now, per model asked (a starter and a sink): a batch
    line starts only on a model with none, so no interactive request waits behind one."""

    def __init__(self) -> None:
        self.by_model: Counter[str] = Counter()

    def started(self, ctx: RequestContext) -> None:
        if ctx.slot(BatchLine) is None:
            self.by_model[ctx.model] += 1

    def finished(self, ctx: RequestContext) -> None:
        if ctx.slot(BatchLine) is None:
            self.by_model[ctx.model] -= 1


class BatchBudget:
    """A batch's budget hold (:class:`costlevers.batch.budget.BudgetHold`) over admission's
    counters: each line's worst case as admission would reserve it for the same request."""

    def __init__(self, admit: Admit, names: PublicNames, counters: Mapping[str, PromptTokenCounter]) -> None:
        self._admit = admit
        self._names = names
        self._counters = counters

    async def worst_case(self, principal: Principal, endpoint: str, bodies: Sequence[dict[str, Any]]) -> list[int]:
        api = Api(ENDPOINTS[endpoint])
        if api is Api.EMBEDDINGS:
            return [0] * len(bodies)
        return await asyncio.to_thread(lambda: [self._line_worst(api, principal, body) for body in bodies])

    def _line_worst(self, api: Api, principal: Principal, body: dict[str, Any]) -> int:
        try:
            body = self._names.admit(api, body)
            parsed = parse_body(_WIRE[api], body)
        except SpilloverError:  # the line fails when it runs, before any cost
            return 0
        facts = request_facts(parsed, body, self._names.default_max_tokens(parsed.model), count_prompt_tokens=self._counters.get(parsed.model, estimate_prompt_tokens))
        ctx = RequestContext("batch-worst-case", api, parsed.model, body, False, {}, facts=facts, principal=principal)
        return self._admit.worst_cost(ctx, facts.prompt_tokens, facts.max_tokens)

    async def hold(self, principal: Principal, amount_micro_usd: int, at: float) -> None:
        await self._admit.hold(principal, amount_micro_usd, at)

    async def release(self, principal: Principal, amount_micro_usd: int, at: float) -> None:
        await self._admit.release(principal, amount_micro_usd, at)


class BatchLines:
    def __init__(self, pipeline: Pipeline, engines: LocalEngines, routes: Mapping[str, Route], names: PublicNames,
                 counters: Mapping[str, PromptTokenCounter],
                 interactive: InteractiveInFlight, config: BatchConfig, *, after: str, priority_models: Collection[str] = (),
                 charge: Callable[[RequestContext], Awaitable[None]] | None = None) -> None:
        """``priority_models``: local models whose engines schedule by priority (vLLM's
        ``scheduling_policy: priority``, which the CPU build has too): their batch lines go at
        :data:`BATCH_PRIORITY`, behind any interactive request the engine holds. ``charge``: adds
        a hosted batch's answer to its owner's budgets (it never passed admission)."""
        self._charge = charge
        self._priority_models = frozenset(priority_models)
        self._pipeline = pipeline
        self._engines = engines
        self._routes = routes
        self._names = names
        self._counters = counters
        self._interactive = interactive
        self._config = config
        self._after = after

    def models(self) -> list[str]:
        """What a line may name: routes served locally, and the embedding models (aliases included)."""
        served = {name for name, route in self._routes.items() if route.local_model} | set(self._engines.embedding_models())
        return [name for name in self._names.listed() if self._names.resolve(name) in served]

    def headroom(self, model: str, flying: int) -> bool:
        """Room for one more line on ``model``: fewer than ``max_in_flight`` lines there, no
        interactive request in the pipeline for it, and its engines idle but for our lines."""
        model = self._names.resolve(model)
        if flying >= self._config.max_in_flight or self._interactive.by_model[model] > 0:
            return False
        route = self._routes.get(model)
        local = route.local_model if route is not None else model
        if not local:
            return False
        state = self._engines.state(local)
        return (state.replicas_ready > 0 and state.waiting == 0 and state.running <= flying
                and state.kv_cache_usage < self._config.max_kv_use)

    def hand_off(self, provider: ProviderConfig) -> HandOff | None:
        """What the worker needs to send lines to ``provider``'s batch API, when the config names one."""
        hosted = self._config.hosted
        if hosted is None:
            return None

        def provider_body(body: dict[str, Any]) -> dict[str, Any]:
            body = {**body, "model": self._names.resolve(str(body.get("model", "")))}
            route = self._routes.get(body["model"])
            target = next((t for t in route.hosted if t.provider == provider.name), None) if route is not None else None
            return {**body, "model": provider.upstream_model(target.model if target is not None and target.model else body["model"])}

        async def record(batch: dict[str, Any], line: dict[str, Any], result: dict[str, Any]) -> None:
            """A hosted batch answer's ledger row: the line's usage at the provider's batch price."""
            body = json.loads(line["body"])
            body["model"] = self._names.resolve(str(body.get("model", "")))
            answer = result["response"]["body"]
            ctx = RequestContext(f"{batch['id']}-{line['line']}", Api(ENDPOINTS[batch["endpoint"]]), body.get("model", ""), body, False, {},
                                 principal=Principal(batch["key_id"], batch["user_name"], batch["team"], batch["feature"] or "batch"))
            ctx.put(BatchLine(batch["id"], line["line"], via_hosted_batch=True))
            ctx.destination, ctx.model_served = provider.name, provider_body(body)["model"]
            ctx.usage, ctx.status = Usage.from_openai(answer.get("usage")), Status.OK
            if self._charge is not None:
                await self._charge(ctx)
            await self._pipeline.record(ctx)

        api: HostedBatches = AnthropicBatches(provider) if provider.kind == "anthropic" else OpenAIBatches(provider.base_url, provider.api_key())
        return HandOff(api, hosted, provider_body, record)

    async def run(self, batch: dict[str, Any], line: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """One line through the pipeline: (``done`` or ``failed``, OpenAI's per-line result)."""
        api = Api(ENDPOINTS[batch["endpoint"]])
        body = json.loads(line["body"])
        route = self._routes.get(self._names.resolve(str(body.get("model", ""))))
        if api is not Api.EMBEDDINGS and route is not None and route.local_model in self._priority_models:
            body = {**body, "priority": BATCH_PRIORITY}
        request_id = f"{batch['id']}-{line['line']}"
        try:
            body = self._names.admit(api, body)
            parsed = parse_body(_WIRE[api], body)
            facts = RequestFacts() if api is Api.EMBEDDINGS else request_facts(
                parsed, body, self._names.default_max_tokens(parsed.model), count_prompt_tokens=self._counters.get(parsed.model, estimate_prompt_tokens))
            ctx = RequestContext(request_id, api, parsed.model, body, False, {ROUTE_HEADER: RoutePin.LOCAL_ONLY.value}, facts=facts,
                                 principal=Principal(batch["key_id"], batch["user_name"], batch["team"], batch["feature"] or "batch"))
            ctx.put(BatchLine(batch["id"], line["line"]))
            outcome = await self._pipeline.run(ctx, after=self._after)
        except SpilloverError as exc:
            return "failed", {"response": {"status_code": exc.status_code, "request_id": request_id, "body": exc.body()},
                              "error": {"code": exc.body()["error"].get("code"), "message": exc.body()["error"]["message"]}}
        except Exception as exc:
            logger.exception("batch line failed", extra={"request_id": request_id})
            failure = error_body("The line could not be run.", "api_error", None, type(exc).__name__)
            return "failed", {"response": {"status_code": 500, "request_id": request_id, "body": failure},
                              "error": {"code": "api_error", "message": "The line could not be run."}}
        return "done", {"response": {"status_code": 200, "request_id": request_id, "body": outcome.body}, "error": None}
