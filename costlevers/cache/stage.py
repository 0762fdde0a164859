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
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from costlevers.cache.entries import CachedResponse
from costlevers.cache.exact_store import ExactStore
from costlevers.cache.request_key import CacheKeys, deterministic, request_keys
from costlevers.cache.semantic_store import SemanticEntry, SemanticStore, entry_id
from serving.context import Api, CacheResult, Outcome, Principal, RequestContext, Status
from serving.metrics import Metrics
from serving.pipeline import Stage

__all__ = ["CACHE", "CacheStage", "HitDecision", "RoutePolicy", "ShadowCheck"]

logger = logging.getLogger(__name__)

#: The destination of a request the cache answered (headers, ledger, metrics).
CACHE = "cache"
CACHE_HEADER = "x-spillover-cache"
_HEADER_VALUE = {CacheResult.EXACT: "hit-exact", CacheResult.SEMANTIC: "hit-semantic"}

Embed = Callable[[str], Awaitable[np.ndarray]]


class HitDecision(Protocol):
    """Picks the candidate that answers the query, or none (costlevers.cache.verifier)."""

    def decide(self, query_text: str, query_vec: np.ndarray, candidates: Sequence[tuple[str, np.ndarray]]) -> int | None: ...


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
    policy: RoutePolicy
    keys: CacheKeys
    store: bool
    vector: np.ndarray | None = None


def header_value(result: CacheResult) -> str:
    return _HEADER_VALUE.get(result, "miss")


def cache_directives(headers: Mapping[str, str]) -> set[str]:
    return {d.strip().lower() for d in headers.get("cache-control", "").split(",") if d.strip()}


class CacheStage(Stage):
    name = "cache"

    def __init__(self, policies: Mapping[str, RoutePolicy], exact: ExactStore, *, scope: str = "team",
                 semantic: SemanticStore | None = None, embed: Embed | None = None, decision: HitDecision | None = None,
                 candidates: int = 5, min_cosine: float = 0.75, metrics: Metrics | None = None,
                 shadow: ShadowCheck | None = None, clock: Callable[[], float] = time.time) -> None:
        self._policies = policies
        self._exact = exact
        self._scope = scope
        self._semantic = semantic if (semantic is not None and embed is not None and decision is not None) else None
        self._embed = embed
        self._decision = decision
        self._k, self._min_cosine = candidates, min_cosine
        self._metrics = metrics
        self._shadow = shadow
        self._clock = clock
        self._tally: dict[str, list[int]] = {"exact": [0, 0], "semantic": [0, 0]}

    def _scope_of(self, principal: Principal) -> str:
        return {"global": "*", "team": principal.team, "key": principal.key_id}[self._scope]

    async def process(self, ctx: RequestContext) -> None:
        policy = self._policies.get(ctx.route)
        if ctx.api is not Api.CHAT or policy is None or not (policy.non_deterministic or deterministic(ctx.body)):
            self._count("exact", "bypass")
            return
        directives = cache_directives(ctx.headers)
        keys = request_keys(ctx.body, route=ctx.route, model_version=policy.model_version, prompt_version=policy.prompt_version,
                            scope=self._scope_of(ctx.principal))
        lookup = ctx.cache_state = _Lookup(policy, keys, store="no-store" not in directives)
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
            except Exception:  # no embedding, no semantic cache: the request goes on
                logger.warning("cache: embedding failed; semantic lookup skipped", extra={"request_id": ctx.request_id}, exc_info=True)
            if lookup.vector is not None and read:
                try:
                    found = await self._semantic_hit(keys, lookup.vector)
                except Exception:
                    logger.warning("cache: semantic lookup failed; treated as a miss", extra={"request_id": ctx.request_id}, exc_info=True)
                    found = None
                self._count("semantic", "miss" if found is None else "hit")
                if found is not None:
                    self._answer(ctx, found[0], CacheResult.SEMANTIC)
                    if self._shadow is not None:
                        self._shadow.maybe_check(ctx.body, ctx.principal, found[1])
                    return
        if lookup.store:
            ctx.capture = []

    async def _read_exact(self, ctx: RequestContext, key: str) -> bytes | None:
        """A store that cannot answer is a miss: the cache never fails a request."""
        try:
            return await self._exact.get(key)
        except Exception:
            logger.warning("cache: exact store unavailable; treated as a miss", extra={"request_id": ctx.request_id}, exc_info=True)
            return None

    async def _semantic_hit(self, keys: CacheKeys, vector: np.ndarray) -> tuple[bytes, CachedResponse] | None:
        assert self._semantic is not None and self._decision is not None and keys.query_text is not None
        candidates = self._semantic.candidates(keys.partition, vector, self._k, self._min_cosine)
        if not candidates:
            return None
        chosen = self._decision.decide(keys.query_text, vector, [(c.entry.text, c.entry.vector) for c in candidates])
        if chosen is None:
            return None
        raw = await self._semantic.answer(candidates[chosen].entry)
        return None if raw is None else (raw, CachedResponse.from_bytes(raw))

    def _answer(self, ctx: RequestContext, raw: bytes, kind: CacheResult) -> None:
        cached = CachedResponse.from_bytes(raw)
        ctx.cache_result, ctx.usage, ctx.destination = kind, cached.usage, CACHE
        ctx.model_served = cached.body.get("model")
        ctx.timings.dispatched = ctx.timings.first_token = time.perf_counter()
        response_id = f"chatcmpl-{ctx.request_id}"
        if ctx.stream:
            include_usage = ctx.parsed.wants_usage_chunk() if ctx.parsed is not None else False
            ctx.outcome = Outcome(stream=_replay(cached.as_stream(response_id, include_usage=include_usage)))
        else:
            ctx.outcome = Outcome(body=cached.as_body(response_id))

    async def settle(self, ctx: RequestContext) -> None:
        lookup: _Lookup | None = ctx.cache_state
        if lookup is None or ctx.cache_result is not CacheResult.MISS or not lookup.store or ctx.status is not Status.OK:
            return
        outcome = ctx.outcome
        cached = CachedResponse(outcome.body) if outcome is not None and outcome.body is not None else CachedResponse.from_stream(ctx.capture or [])
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


@dataclass
class ShadowCheck:
    """Sends a share of semantic hits to the model as well and compares the two answers by their
    embeddings: the live estimate of the false-hit rate, with its sample size.

    ``ask`` runs the request past the cache (dispatch and respond) and returns the answer's text.
    """

    share: float
    agree_cosine: float
    ask: Callable[[dict, Principal], Awaitable[str | None]]
    embed: Embed
    metrics: Metrics | None = None
    rng: random.Random = field(default_factory=random.Random)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    agree: int = 0
    disagree: int = 0

    def maybe_check(self, body: dict, principal: Principal, cached: CachedResponse) -> None:
        if self.share <= 0 or self.rng.random() >= self.share:
            return
        task = asyncio.create_task(self.check(body, principal, cached))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def check(self, body: dict, principal: Principal, cached: CachedResponse) -> bool | None:
        try:
            fresh = await self.ask({**body, "stream": False}, principal)
            old = ((cached.body.get("choices") or [{}])[0].get("message") or {}).get("content")
            if not fresh or not old:
                return None
            agree = float(np.dot(await self.embed(fresh), await self.embed(old))) >= self.agree_cosine
        except Exception:
            logger.warning("cache shadow check failed", exc_info=True)
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
