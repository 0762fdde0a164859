"""The routing stage: after the cache, before dispatch, a routed route's request gets its model.

For a route with a ``routing`` block (:class:`costlevers.routing.config.RoutingConfig`):

1. ``X-Spillover-Model: <candidate>`` pins the model (debugging, evaluation): no routing.
2. The router, if any, scores the request (the prompt's embedding, shared with the semantic
   cache when it computed one, and its shape). A score above the route's threshold goes
   straight to the strongest candidate.
3. Otherwise, without a cascade (or for a stream on a ``router_only`` route), the cheapest
   candidate serves it.
4. With a cascade, each cheaper candidate is asked in turn through the stages after this one
   (compress, dispatch, respond: spill-over still picks local or hosted for it), without
   streaming; its answer goes through the route's checks. The first answer that passes is the
   response (replayed as a stream when the client streams: it waits for the check, which the
   README measures); a rejected or failed attempt is recorded as a ledger row of its own
   (status ``escalated``, paid for) and the next candidate is asked. The strongest candidate is
   not checked: it goes on through the pipeline as the request itself, streaming and failing
   over as any request does, so its error is the request's error.

Spill-over then decides local or hosted for the chosen candidate, as for any route. The
choice, with the router, its score, each escalation and the abandoned attempts, stays in the
context (:class:`contracts.routing.RouteChoice`) for the ledger, headers, budgets and metrics.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from contracts.chat_answer import ChatAnswer
from contracts.context import Api, CacheResult, Outcome, PromptEmbedding, RequestContext, Status
from contracts.errors import InvalidRequestError
from contracts.pipeline import Pipeline, Stage
from contracts.routing import MODEL_HEADER, AttemptOf, RouteChoice, RouteReason
from costlevers.routing.checks import Check, Verdict, answer_text, final_answer, run_checks
from costlevers.routing.features import prompt_text, shape_features
from costlevers.routing.metrics import RoutingMetrics
from costlevers.routing.router import Router
from costlevers.routing.verifier import AnswerVerifier

__all__ = ["RoutePolicy", "RoutingStage"]

logger = logging.getLogger(__name__)

Embed = Callable[[str], Awaitable[np.ndarray]]
#: A candidate route's prompt-token count of a body (its local model's tokenizer, else chars/4).
Recount = Callable[[str, dict[str, Any]], int]


@dataclass(frozen=True)
class RoutePolicy:
    """One routed route, resolved at start: candidates, router and threshold, cascade checks."""

    candidates: tuple[str, ...]
    router: Router | None = None
    threshold: float = float("inf")
    embed: Embed | None = None
    cascade: bool = False
    checks: tuple[Check, ...] = ()
    second_sample: bool = False
    verifier: AnswerVerifier | None = None
    verifier_threshold: float = float("inf")
    wants_logprobs: bool = False
    streams_buffered: bool = True


class RoutingStage(Stage):
    name = "route"

    def __init__(self, policies: Mapping[str, RoutePolicy], *, recount: Recount, metrics: RoutingMetrics | None = None) -> None:
        self._policies = policies
        self._recount = recount
        self._metrics = metrics
        self._pipeline: Pipeline | None = None

    def attach(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    async def process(self, ctx: RequestContext) -> None:
        policy = self._policies.get(ctx.route)
        if policy is None or ctx.api is Api.EMBEDDINGS:
            return
        route = ctx.route
        pinned = ctx.headers.get(MODEL_HEADER)
        if pinned:
            if pinned not in policy.candidates:
                raise InvalidRequestError(f"X-Spillover-Model {pinned!r} is not a candidate of '{route}'; one of: "
                                          f"{', '.join(policy.candidates)}.", param="X-Spillover-Model", code="invalid_model")
            self._choose(ctx, RouteChoice(route, None, None, pinned, RouteReason.PINNED))
            return
        router_name = getattr(policy.router, "kind", None)
        score = None
        if policy.router is not None:
            score = await self._score(ctx, policy)
            if score is None:
                self._choose(ctx, RouteChoice(route, router_name, None, policy.candidates[-1], RouteReason.ROUTER_UNAVAILABLE))
                return
            if score > policy.threshold:
                self._choose(ctx, RouteChoice(route, router_name, score, policy.candidates[-1], RouteReason.ROUTER_STRONG))
                return
        if not policy.cascade or ctx.api is not Api.CHAT or (ctx.stream and not policy.streams_buffered):
            self._choose(ctx, RouteChoice(route, router_name, score, policy.candidates[0], RouteReason.ROUTER_CHEAP))
            return
        await self._cascade(ctx, policy, RouteChoice(route, router_name, score, policy.candidates[-1], RouteReason.ESCALATED))

    async def _score(self, ctx: RequestContext, policy: RoutePolicy) -> float | None:
        """The router's score, or None when the prompt could not be embedded (logged)."""
        assert policy.router is not None and policy.embed is not None
        text = prompt_text(ctx.body)
        shared = ctx.slot(PromptEmbedding)
        try:
            if shared is not None and shared.text == text:
                vector = shared.vector
            else:
                vector = await policy.embed(text)
                ctx.put(PromptEmbedding(text, vector))
            return policy.router.score(np.asarray(vector, dtype=np.float32), shape_features(ctx.body, text))
        except Exception:
            logger.warning("router could not score the request: the strongest candidate serves it", extra={"request_id": ctx.request_id},
                           exc_info=True)
            return None

    def _choose(self, ctx: RequestContext, choice: RouteChoice) -> None:
        """Send the request on to ``choice.model``'s route, its prompt counted as that model counts it."""
        choice.strongest = self._policies[choice.route].candidates[-1]
        ctx.route = choice.model
        ctx.facts = dataclasses.replace(ctx.facts, prompt_tokens=self._recount(choice.model, ctx.body))
        ctx.put(choice)
        if self._metrics is not None:
            self._metrics.decisions.labels(choice.route, choice.model, choice.tier, choice.reason.value).inc()

    async def _cascade(self, ctx: RequestContext, policy: RoutePolicy, choice: RouteChoice) -> None:
        for n, candidate in enumerate(policy.candidates[:-1], start=1):
            attempt = self._attempt(ctx, candidate, f"try{n}", policy)
            verdict, body = await self._ask_and_check(ctx, attempt, policy, choice)
            if verdict is None and body is not None:
                choice.model = candidate
                if not choice.escalations:
                    choice.reason = RouteReason.CASCADE_ACCEPTED
                self._choose(ctx, choice)
                self._adopt(ctx, attempt, body)
                return
            attempt.status = Status.ESCALATED if attempt.status is Status.OK else attempt.status
            choice.escalations.append((candidate, verdict.check if verdict is not None else "no_answer"))
            await self._record(attempt, choice)
            if self._metrics is not None:
                self._metrics.escalations.labels(choice.route, candidate, choice.escalations[-1][1]).inc()
        self._choose(ctx, choice)

    def _attempt(self, ctx: RequestContext, candidate: str, suffix: str, policy: RoutePolicy, *, resample: bool = False) -> RequestContext:
        """The request as a tentative call to ``candidate``: whole (no stream), its own id, its
        logprobs asked for when the confidence check reads them; ``resample``: a fresh sample at
        temperature 1 (no seed), for the agreement check."""
        body = {k: v for k, v in ctx.body.items() if k != "stream_options" and not (resample and k == "seed")}
        body["stream"] = False
        if resample:
            body["temperature"] = 1.0
        if policy.wants_logprobs:
            body["logprobs"] = True
        headers = {k: v for k, v in ctx.headers.items() if k != MODEL_HEADER}
        attempt = dataclasses.replace(
            ctx, request_id=f"{ctx.request_id}-{suffix}", body=body, stream=False, headers=headers, route=candidate,
            facts=dataclasses.replace(ctx.facts, wants_usage_chunk=False, prompt_tokens=self._recount(candidate, ctx.body)),
            usage=dataclasses.replace(ctx.usage), timings=dataclasses.replace(ctx.timings, received=time.perf_counter()),
            status=Status.PENDING, outcome=None, upstream=None, error=None, destination=None, spill_reason=None, predicted_ttft_s=None,
            model_served=None, cache_result=CacheResult.BYPASS, chunks_sent=0, _slots=ctx.carried(),
        )
        attempt.put(AttemptOf(ctx.request_id))
        return attempt

    async def _ask_and_check(self, ctx: RequestContext, attempt: RequestContext, policy: RoutePolicy,
                             choice: RouteChoice) -> tuple[Verdict | None, dict[str, Any] | None]:
        """(the first failing verdict or None, the answer body or None when the call failed)."""
        assert self._pipeline is not None
        try:
            outcome = await self._pipeline.run(attempt, after=self.name, record=False)
        except Exception as exc:  # the cheap call failed: the stronger candidate takes the request
            logger.warning("cascade attempt on %s failed (%s): escalating", attempt.route, type(exc).__name__,
                           extra={"request_id": ctx.request_id})
            return Verdict("call_failed", False, type(exc).__name__), None
        body = outcome.body or {}
        verdict = run_checks(policy.checks, attempt.body, body)
        if verdict is None and policy.verifier is not None:
            verdict = self._verify(policy, ctx, body)
        if verdict is None and policy.second_sample:
            verdict = await self._second_sample(ctx, attempt, policy, choice, body)
        return verdict, body

    @staticmethod
    def _verify(policy: RoutePolicy, ctx: RequestContext, body: dict[str, Any]) -> Verdict | None:
        assert policy.verifier is not None
        try:
            wrong = policy.verifier.score(prompt_text(ctx.body), answer_text(body))
        except Exception as exc:  # a check that errors has failed
            return Verdict("verifier", False, f"check raised {type(exc).__name__}")
        return None if wrong <= policy.verifier_threshold else Verdict("verifier", False, f"P(wrong) {wrong:.3f}")

    async def _second_sample(self, ctx: RequestContext, attempt: RequestContext, policy: RoutePolicy, choice: RouteChoice,
                             body: dict[str, Any]) -> Verdict | None:
        """Ask the same candidate again at temperature 1; the two must give the same final answer.
        The second call is paid for: it is recorded as an attempt row of the request."""
        assert self._pipeline is not None
        again = self._attempt(ctx, attempt.route, f"{attempt.request_id.rsplit('-', 1)[-1]}-sample", policy, resample=True)
        try:
            other = (await self._pipeline.run(again, after=self.name, record=False)).body or {}
        except Exception as exc:
            return Verdict("second_sample", False, f"second call failed: {type(exc).__name__}")
        finally:
            choice.attempts.append(again)
            await self._pipeline.record(again)
        first, second = _comparable(answer_text(body)), _comparable(answer_text(other))
        return None if first == second and first else Verdict("second_sample", False, "answers differ")

    async def _record(self, attempt: RequestContext, choice: RouteChoice) -> None:
        assert self._pipeline is not None
        choice.attempts.append(attempt)
        await self._pipeline.record(attempt)

    @staticmethod
    def _adopt(ctx: RequestContext, attempt: RequestContext, body: dict[str, Any]) -> None:
        """The accepted attempt's answer becomes the request's response (and its row's figures)."""
        ctx.destination, ctx.spill_reason, ctx.predicted_ttft_s = attempt.destination, attempt.spill_reason, attempt.predicted_ttft_s
        ctx.model_served, ctx.usage = attempt.model_served, attempt.usage
        ctx.timings.dispatched = attempt.timings.dispatched
        ctx.timings.first_token = time.perf_counter()
        if not ctx.body.get("logprobs"):
            body = {**body, "choices": [{k: v for k, v in c.items() if k != "logprobs"} for c in body.get("choices") or []]}
        if ctx.stream:
            stream = ChatAnswer(body).as_stream(body.get("id") or f"chatcmpl-{ctx.request_id}", include_usage=ctx.facts.wants_usage_chunk)
            ctx.outcome = Outcome(stream=_replay(stream))
        else:
            ctx.outcome = Outcome(body=body)


async def _replay(payloads: Sequence[str]) -> Any:
    for payload in payloads:
        yield payload


_SPACE = re.compile(r"\s+")


def _comparable(text: str) -> str:
    """What two samples must share: the stated final number, else the whole answer, normalised."""
    final = final_answer(text)
    return final if final is not None else _SPACE.sub(" ", text).strip().lower()
