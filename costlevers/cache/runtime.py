"""The cache as the ingress runs it: stores chosen from the config (Redis when configured, in
process otherwise), the embedding call, the hit verifier, the stage, and its start and stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import numpy as np

from costlevers.cache.exact_store import ExactStore, MemoryExactStore, PurgeFilter, RedisExactStore
from costlevers.cache.request_key import model_version_of
from costlevers.cache.semantic_store import SemanticStore
from costlevers.cache.stage import CacheStage, RoutePolicy, ShadowCheck
from serving.config import RouteConfig, SpilloverConfig
from serving.context import Principal
from serving.errors import UpstreamError
from serving.metrics import Metrics
from serving.redis_pool import redis_client

__all__ = ["CacheRuntime", "route_policies"]

logger = logging.getLogger(__name__)

SWEEP_PERIOD_S = 60.0

EmbedCall = Callable[[str, dict[str, Any]], Any]


def route_policies(config: SpilloverConfig, routes: Mapping[str, Any]) -> dict[str, RoutePolicy]:
    """Every route the cache serves, with the global settings and the route's overrides."""
    g = config.cache
    models = {m.name: m.model_dump(mode="json") for m in config.models}
    providers = {p.name: p for p in config.providers}
    policies = {}
    for name, route in routes.items():
        rc = config.routes.get(name, RouteConfig()).cache
        if not (g.enabled if rc.enabled is None else rc.enabled):
            continue
        hosted = [(t.provider, providers[t.provider].upstream_model(t.model or name)) for t in route.hosted if t.provider in providers]
        version = rc.model_version or model_version_of({"local": models.get(route.local_model or ""), "hosted": hosted})
        policies[name] = RoutePolicy(
            ttl_s=rc.ttl_s or g.ttl_s,
            model_version=version,
            prompt_version=rc.prompt_version or g.prompt_version,
            non_deterministic=g.non_deterministic if rc.non_deterministic is None else rc.non_deterministic,
            tool_calls=g.tool_calls if rc.tool_calls is None else rc.tool_calls,
            semantic=g.semantic.enabled if rc.semantic is None else rc.semantic,
        )
    return policies


def embedder(embed: EmbedCall, model: str) -> Callable[[str], Awaitable[np.ndarray]]:
    """One text through the shared embedding deployment (it batches across requests)."""

    async def one(text: str) -> np.ndarray:
        async for item in embed(model, {"model": model, "input": [text]}):
            if "error" in item:
                raise UpstreamError(item["error"].get("message", "embedding failed"))
            return np.asarray(item["data"][0]["embedding"], dtype=np.float32)
        raise UpstreamError("The embedding deployment answered nothing.")

    return one


class CacheRuntime:
    def __init__(self, stage: CacheStage, exact: ExactStore, semantic: SemanticStore | None, redis_client: Any = None) -> None:
        self.stage = stage
        self.exact = exact
        self.semantic = semantic
        self._redis = redis_client
        self._sweeper: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, config: SpilloverConfig, routes: Mapping[str, Any], embed: EmbedCall, metrics: Metrics | None,
                    ask: Callable[[dict, Principal], Awaitable[str | None]] | None = None) -> CacheRuntime:
        c = config.cache
        client = None
        if config.stores.redis_url:
            client = redis_client(config.stores.redis_url)
        prefix = config.stores.redis_prefix + "cache:"
        exact: ExactStore = RedisExactStore(client, prefix + "x:") if client is not None else MemoryExactStore(c.max_entries)
        semantic = None
        decision = embed_one = shadow = None
        policies = route_policies(config, routes)
        embedding_model = c.semantic.embedding_model or (config.embeddings[0].name if config.embeddings else None)
        if embedding_model is not None and any(p.semantic for p in policies.values()):
            from costlevers.cache.verifier import HitVerifier

            decision = HitVerifier.load()
            if c.semantic.threshold is not None:
                decision.threshold = c.semantic.threshold
            if client is not None:
                from costlevers.cache.redis_semantic import RedisSemanticStore

                semantic = RedisSemanticStore(client, c.semantic.max_entries, prefix=prefix + "s:")
            else:
                semantic = SemanticStore(c.semantic.max_entries)
            embed_one = embedder(embed, embedding_model)
            if ask is not None and c.semantic.shadow_share > 0:
                shadow = ShadowCheck(c.semantic.shadow_share, c.semantic.shadow_agree_cosine, ask, embed_one, metrics)
        stage = CacheStage(policies, exact, scope=c.scope, semantic=semantic, embed=embed_one, decision=decision,
                           candidates=c.semantic.candidates, min_cosine=c.semantic.min_cosine, metrics=metrics, shadow=shadow, clock=time.time)
        return cls(stage, exact, semantic, client)

    async def start(self) -> None:
        start = getattr(self.semantic, "start", None)
        if start is not None:
            await start()
        if self.semantic is not None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="semantic-cache-sweep")

    async def _sweep_forever(self) -> None:
        """Expired entries leave the index (lookups skip them meanwhile)."""
        assert self.semantic is not None
        while True:
            await asyncio.sleep(SWEEP_PERIOD_S)
            try:
                self.semantic.sweep()
                sweep_redis = getattr(self.semantic, "sweep_redis", None)
                if sweep_redis is not None:
                    await sweep_redis()
            except Exception:
                logger.warning("semantic cache sweep failed", exc_info=True)

    async def purge(self, which: PurgeFilter) -> dict[str, int]:
        exact = await self.exact.purge(which)
        semantic = await self.semantic.purge(which) if self.semantic is not None else 0
        return {"exact": exact, "semantic": semantic}

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.stage.drain()
        close = getattr(self.semantic, "aclose", None)
        if close is not None:
            await close()
        if self._redis is not None:
            await self._redis.aclose()
