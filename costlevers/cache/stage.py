"""The cache stage: answer a repeated question from the cache, store a new answer once it is whole.

Order of the lookup: the exact key, then (when the route has it) the semantic index, whose
nearest entries the hit verifier judges (costlevers.cache.verifier). Only deterministic
requests (temperature 0 or a seed) are cached unless the route opts in; ``Cache-Control:
no-cache`` skips the read and ``no-store`` the write. A hit answers at once, as a body or a
replayed stream, with the original usage; the ledger prices it at zero. A miss is stored at
settle, and only if it finished whole (never an error, a cut or cancelled stream, or a tool
call unless the route opts in).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from contracts.chat_answer import ChatAnswer
from contracts.context import Api, CacheResult, Outcome, Principal, PromptEmbedding, RequestContext, Status, new_request_id
from contracts.pipeline import Pipeline, Stage
from contracts.routing import MODEL_HEADER
from contracts.spill import CACHE
from contracts.stores import ExactStore, SemanticEntry
from costlevers.cache.agreement import AnswerJudge
from costlevers.cache.metrics import CacheMetrics
from costlevers.cache.request_key import CacheKeys, deterministic, request_keys
from costlevers.cache.semantic_store import SemanticStore, entry_id
from costlevers.cache.steering import Steering, SteeringState

__all__ = ["CacheStage", "HitDecision", "RoutePolicy", "ShadowCheck"]

logger = logging.getLogger(__name__)


Embed = Callable[[str], Awaitable[np.ndarray]]


class HitDecision(Protocol):
    """Picks the candidate that answers the query, or none (costlevers.cache.verifier)."""

    def decide(self, query_text: str, query_vec: np.ndarray, candidates: Sequence[tuple[str, np.ndarray]]) -> int | None: ...

    def scores(self, query_text: str, query_vec: np.ndarray, candidates: Sequence[tuple[str, np.ndarray]]) -> np.ndarray:
        """Each candidate's score (a steered route picks its own threshold on them)."""


@dataclass(frozen=True)
class RoutePolicy:
    """One route's cache settings, global values and the route's overrides resolved."""

    ttl_s: int
    model_version: str
    prompt_version: str
    non_deterministic: bool
    tool_calls: bool
    semantic: bool


@dataclass
class _Lookup:
    """What the cache stage keeps for one request between lookup and store (its context slot)."""

    policy: RoutePolicy
    keys: CacheKeys
    store: bool
    vector: np.ndarray | None = None
    #: The stream's packets as the client got them, kept to store a whole streamed answer.
    captured: list[str] | None = None
    #: A steered route's would-be hit it did not serve: its score and answer, compared with this
    #: request's own answer at settle (free evidence).
    probe: tuple[float, ChatAnswer] | None = None


def cache_directives(headers: Mapping[str, str]) -> set[str]:
    return {d.strip().lower() for d in headers.get("cache-control", "").split(",") if d.strip()}


class CacheStage(Stage):
    name = "cache"

    def __init__(self, policies: Mapping[str, RoutePolicy], exact: ExactStore, *, scope: str = "team",
                 semantic: SemanticStore | None = None, embed: Embed | None = None, decision: HitDecision | None = None,
                 candidates: int = 5, min_cosine: float = 0.75, metrics: CacheMetrics | None = None,
                 shadow: ShadowCheck | None = None, steering: Mapping[str, Steering] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._policies = policies
        self._exact = exact
        self._scope = scope
        self._semantic = semantic if (semantic is not None and embed is not None and decision is not None) else None
        self._embed = embed
        self._decision = decision
        self._k, self._min_cosine = candidates, min_cosine
        self._metrics = metrics
        self._shadow = shadow
        self._steering = steering or {}
        self._clock = clock
        self._tally: dict[str, list[int]] = {"exact": [0, 0], "semantic": [0, 0]}

    def steering_states(self) -> dict[str, SteeringState]:
        """Per route with a steered semantic threshold: what this replica's evidence says now."""
        return {route: steering.state() for route, steering in self._steering.items()}

    def _scope_of(self, principal: Principal) -> str:
        return {"global": "*", "team": principal.team, "key": principal.key_id}[self._scope]

    async def process(self, ctx: RequestContext) -> None:
        policy = self._policies.get(ctx.route)
        if ctx.api is not Api.CHAT or policy is None or not (policy.non_deterministic or deterministic(ctx.body)):
            self._count("exact", "bypass")
            return
        directives = cache_directives(ctx.headers)
        # A pinned model (routing's override) answers apart from what routing would have chosen.
        pin = ctx.headers.get(MODEL_HEADER)
        keys = request_keys(ctx.body, route=f"{ctx.route}@{pin}" if pin else ctx.route, model_version=policy.model_version,
                            prompt_version=policy.prompt_version, scope=self._scope_of(ctx.principal))
        lookup = _Lookup(policy, keys, store="no-store" not in directives)
        ctx.put(lookup)
        ctx.cache_result = CacheResult.MISS
        read = "no-cache" not in directives
        if read and (raw := await self._read_exact(ctx, keys.exact)) is not None:
            self._count("exact", "hit")
            self._answer(ctx, raw, CacheResult.EXACT)
            return
        self._count("exact", "miss" if read else "bypass")
        if self._semantic is not None and policy.semantic and keys.query_text is not None:
            try:
                lookup.vector = await self._embed(keys.query_text)  # type: ignore[misc]  # set with the store
                ctx.put(PromptEmbedding(keys.query_text, lookup.vector))  # the router reuses it
            except Exception:  # no embedding, no semantic cache: the request goes on
                logger.warning("cache: embedding failed; semantic lookup skipped", extra={"request_id": ctx.request_id}, exc_info=True)
            if lookup.vector is not None and read:
                steering = self._steering.get(ctx.route)
                try:
                    found = await (self._semantic_hit(keys, lookup.vector) if steering is None
                                   else self._steered_hit(keys, lookup.vector, steering, lookup))
                except Exception:
                    logger.warning("cache: semantic lookup failed; treated as a miss", extra={"request_id": ctx.request_id}, exc_info=True)
                    found = None
                self._count("semantic", "miss" if found is None else "hit")
                if found is not None:
                    self._answer(ctx, found[0], CacheResult.SEMANTIC)
                    if self._shadow is not None and steering is None:
                        self._shadow.maybe_check(ctx, found[1])
                    elif self._shadow is not None and steering is not None and steering.check_served():
                        route, score = ctx.route, found[2]
                        self._shadow.check_for(ctx, found[1], lambda agree: self._steer(route, score, agree, paid=True))
                    return
        if lookup.store:
            lookup.captured = []

    def attach(self, pipeline: Pipeline) -> None:
        if self._shadow is not None:
            self._shadow.pipeline = pipeline

    def observe(self, ctx: RequestContext, stream: AsyncIterator[str]) -> AsyncIterator[str]:
        lookup = ctx.slot(_Lookup)
        if lookup is None or lookup.captured is None:
            return stream
        return _tee(stream, lookup.captured)

    async def _read_exact(self, ctx: RequestContext, key: str) -> bytes | None:
        """A store that cannot answer is a miss: the cache never fails a request."""
        try:
            return await self._exact.get(key)
        except Exception:
            logger.warning("cache: exact store unavailable; treated as a miss", extra={"request_id": ctx.request_id}, exc_info=True)
            return None

    async def _semantic_hit(self, keys: CacheKeys, vector: np.ndarray) -> tuple[bytes, ChatAnswer] | None:
        assert self._semantic is not None and self._decision is not None and keys.query_text is not None
        candidates = self._semantic.candidates(keys.partition, vector, self._k, self._min_cosine)
        if not candidates:
            return None
        chosen = self._decision.decide(keys.query_text, vector, [(c.entry.text, c.entry.vector) for c in candidates])
        if chosen is None:
            return None
        raw = await self._semantic.answer(candidates[chosen].entry)
        return None if raw is None else (raw, ChatAnswer.from_bytes(raw))

    async def _steered_hit(self, keys: CacheKeys, vector: np.ndarray, steering: Steering,
                           lookup: _Lookup) -> tuple[bytes, ChatAnswer, float] | None:
        """The best candidate by the verifier's score, served only at the route's earned
        threshold; a would-be hit under it is kept as a probe (its answer compared at settle)."""
        assert self._semantic is not None and self._decision is not None and keys.query_text is not None
        candidates = self._semantic.candidates(keys.partition, vector, self._k, self._min_cosine)
        if not candidates:
            return None
        scores = self._decision.scores(keys.query_text, vector, [(c.entry.text, c.entry.vector) for c in candidates])
        best = int(np.argmax(scores))
        score = float(scores[best])
        if not (steering.serves(score) or steering.probes(score)):
            return None
        raw = await self._semantic.answer(candidates[best].entry)
        if raw is None:
            return None
        if steering.serves(score):
            return raw, ChatAnswer.from_bytes(raw), score
        lookup.probe = (score, ChatAnswer.from_bytes(raw))
        return None

    def _answer(self, ctx: RequestContext, raw: bytes, kind: CacheResult) -> None:
        cached = ChatAnswer.from_bytes(raw)
        ctx.cache_result, ctx.usage, ctx.destination = kind, cached.usage, CACHE
        ctx.model_served = cached.body.get("model")
        ctx.timings.dispatched = ctx.timings.first_token = time.perf_counter()
        response_id = f"chatcmpl-{ctx.request_id}"
        if ctx.stream:
            ctx.outcome = Outcome(stream=_replay(cached.as_stream(response_id, include_usage=ctx.facts.wants_usage_chunk)))
        else:
            ctx.outcome = Outcome(body=cached.as_body(response_id))

    async def settle(self, ctx: RequestContext) -> None:
        lookup = ctx.slot(_Lookup)
        if lookup is None or ctx.cache_result is not CacheResult.MISS or not lookup.store or ctx.status is not Status.OK:
            return
        outcome = ctx.outcome
        if outcome is not None and outcome.body is not None:
            cached: ChatAnswer | None = ChatAnswer(outcome.body)
        else:
            # The usage chunk reached the client only if it asked; the request's usage stands in.
            cached = ChatAnswer.from_stream(lookup.captured or [], usage=ctx.usage.to_openai())
        if lookup.probe is not None and cached is not None and self._shadow is not None and ctx.route in self._steering:
            route, (score, would_be) = ctx.route, lookup.probe  # compared after the response, off its path
            self._shadow.compare_later(would_be, cached, lambda agree: self._steer(route, score, agree, paid=False))
        if cached is None or not cached.cacheable(tool_calls=lookup.policy.tool_calls):
            return
        raw = cached.to_bytes()
        await self._exact.put(lookup.keys.exact, raw, lookup.policy.ttl_s)
        if self._semantic is not None and lookup.vector is not None and lookup.keys.query_text is not None:
            keys = lookup.keys
            entry = SemanticEntry(entry_id(keys.partition, keys.query_text), keys.partition, keys.query_text, lookup.vector,
                                  self._clock() + lookup.policy.ttl_s)
            await self._semantic.add(entry, raw)

    async def drain(self) -> None:
        """Let shadow checks in flight finish (at shutdown)."""
        if self._shadow is not None:
            await self._shadow.drain()

    def _steer(self, route: str, score: float, agree: bool, *, paid: bool) -> None:
        """A check's verdict to the route's steering, and its state to the metrics."""
        steering = self._steering[route]
        steering.record(score, agree, paid=paid)
        if self._metrics is not None:
            state = steering.state()
            self._metrics.steering_checks.labels(route, "paid" if paid else "free", "agree" if agree else "disagree").inc()
            self._metrics.steering_threshold.labels(route).set(float("nan") if state.threshold is None else state.threshold)
            self._metrics.steering_bound.labels(route).set(state.bound)

    def _count(self, kind: str, result: str) -> None:
        if self._metrics is None:
            return
        self._metrics.cache_requests.labels(kind, result).inc()
        if result != "bypass":
            tally = self._tally[kind]
            tally[0 if result == "hit" else 1] += 1
            self._metrics.cache_hit_ratio.labels(kind).set(tally[0] / (tally[0] + tally[1]))


async def _replay(payloads: list[str]) -> AsyncIterator[str]:
    for payload in payloads:
        yield payload


async def _tee(stream: AsyncIterator[str], captured: list[str]) -> AsyncIterator[str]:
    async for packet in stream:
        captured.append(packet)
        yield packet


@dataclass
class ShadowCheck:
    """Sends a share of semantic hits to the model as well and compares the two answers
    (:class:`costlevers.cache.agreement.AnswerJudge`: as data, exactly when short, by their
    embeddings when long): the live estimate of the false-hit rate, with its sample size. On a steered
    route (:mod:`costlevers.cache.steering`) the steering decides which hits are checked, and the
    result goes to it.

    The question goes through the stages after the cache (``pipeline``, the one the cache stage
    runs in), under the caller's principal with feature ``cache-shadow``: a ledger row of its own.
    A check that fails (the model errors, an answer is empty) is no evidence, never agreement.
    """

    share: float
    agree_cosine: float
    embed: Embed
    metrics: CacheMetrics | None = None
    pipeline: Pipeline | None = None
    rng: random.Random = field(default_factory=random.Random)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    agree: int = 0
    disagree: int = 0

    def maybe_check(self, ctx: RequestContext, cached: ChatAnswer) -> None:
        if self.share <= 0 or self.pipeline is None or self.rng.random() >= self.share:
            return
        self._spawn(self.check(self._shadow_of(ctx), cached))

    def check_for(self, ctx: RequestContext, cached: ChatAnswer, on_result: Callable[[bool], None]) -> None:
        """Check this hit and hand the verdict (if any) to ``on_result`` (a steered route's evidence)."""
        if self.pipeline is None:
            return

        async def run() -> None:
            agree = await self.check(self._shadow_of(ctx), cached)
            if agree is not None:
                on_result(agree)

        self._spawn(run())

    def compare_later(self, cached: ChatAnswer, fresh: ChatAnswer, on_result: Callable[[bool], None]) -> None:
        """Judge two answers in the background and hand the verdict (if any) to ``on_result``."""

        async def run() -> None:
            agree = await self.judge(cached, fresh)
            if agree is not None:
                on_result(agree)

        self._spawn(run())

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _shadow_of(ctx: RequestContext) -> RequestContext:
        """The same question, asked anew without streaming, billed to feature ``cache-shadow``."""
        return RequestContext(new_request_id(), ctx.api, ctx.model, {**ctx.body, "stream": False}, False, {},
                              facts=dataclasses.replace(ctx.facts, wants_usage_chunk=False), route=ctx.route,
                              principal=dataclasses.replace(ctx.principal, feature="cache-shadow"))

    async def ask(self, ctx: RequestContext) -> str | None:
        """The model's own answer to ``ctx``'s question, past the cache."""
        assert self.pipeline is not None
        outcome = await self.pipeline.run(ctx, after=CacheStage.name)
        choices = (outcome.body or {}).get("choices") or [{}]
        return (choices[0].get("message") or {}).get("content")

    async def judge(self, cached: ChatAnswer, fresh: ChatAnswer) -> bool | None:
        """Whether two answers are interchangeable (their embeddings' cosine); None: no verdict."""
        try:
            return await self._agree(_content(cached), _content(fresh))
        except Exception:
            logger.warning("cache answer comparison failed", exc_info=True)
            return None

    async def _agree(self, old: str | None, fresh: str | None) -> bool | None:
        return await AnswerJudge(self.embed, agree_cosine=self.agree_cosine).agree(old, fresh)

    async def check(self, shadow: RequestContext, cached: ChatAnswer) -> bool | None:
        try:
            agree = await self._agree(_content(cached), await self.ask(shadow))
        except Exception:
            logger.warning("cache shadow check failed", exc_info=True)
            return None
        if agree is None:
            return None
        if agree:
            self.agree += 1
        else:
            self.disagree += 1
        if self.metrics is not None:
            self.metrics.cache_shadow.labels("agree" if agree else "disagree").inc()
            self.metrics.cache_false_hit.set(self.disagree / (self.agree + self.disagree))
        return agree

    async def drain(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _content(answer: ChatAnswer) -> str | None:
    return ((answer.body.get("choices") or [{}])[0].get("message") or {}).get("content")
