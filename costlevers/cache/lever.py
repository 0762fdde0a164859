"""The cache as the ingress runs it: stores chosen from the shared stores (Redis when configured,
in process otherwise), the embedding call, the hit verifier, the stage, and its start and stop.

Built from the ``cache`` section, each route's resolved policy (:func:`route_policies`), the
shared stores and the embedding call the composition root hands over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from contracts.background import run_every, stop_tasks
from contracts.stores import ExactStore, PurgeFilter
from costlevers.cache.config import CacheConfig, RouteCacheConfig
from costlevers.cache.exact_store import MemoryExactStore, RedisExactStore
from costlevers.cache.metrics import CacheMetrics
from costlevers.cache.semantic_store import SemanticStore
from costlevers.cache.stage import CacheStage, RoutePolicy, ShadowCheck
from costlevers.cache.steering import Steering
from costlevers.embedding import EmbedCall, embedder
from stores.shared import SharedStores

__all__ = ["CacheLever", "route_policies"]

logger = logging.getLogger(__name__)

SWEEP_PERIOD_S = 60.0

def route_policies(cache: CacheConfig, routes: Mapping[str, tuple[RouteCacheConfig, str]]) -> dict[str, RoutePolicy]:
    """Every route the cache serves: per route its own cache settings and the version of the
    models behind it; global settings fill what a route leaves unset."""
    g = cache
    policies = {}
    for name, (rc, model_version) in routes.items():
        if not (g.enabled if rc.enabled is None else rc.enabled):
            continue
        policies[name] = RoutePolicy(
            ttl_s=rc.ttl_s or g.ttl_s,
            model_version=rc.model_version or model_version,
            prompt_version=rc.prompt_version or g.prompt_version,
            non_deterministic=g.non_deterministic if rc.non_deterministic is None else rc.non_deterministic,
            tool_calls=g.tool_calls if rc.tool_calls is None else rc.tool_calls,
            semantic=g.semantic.enabled if rc.semantic is None else rc.semantic,
        )
    return policies


class CacheLever:
    def __init__(self, stage: CacheStage, exact: ExactStore, semantic: SemanticStore | None) -> None:
        self.stage = stage
        self.exact = exact
        self.semantic = semantic
        self._sweeper: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, cache: CacheConfig, policies: Mapping[str, RoutePolicy], stores: SharedStores, embed: EmbedCall, *,
                    embedding_model: str | None, registry: CollectorRegistry | None = None) -> CacheLever:
        """``embedding_model``: the deployment the semantic cache embeds with when the section names none."""
        c = cache
        client = stores.redis
        metrics = CacheMetrics(registry) if registry is not None else None
        prefix = stores.config.redis_prefix + "cache:"
        exact: ExactStore = RedisExactStore(client, prefix + "x:") if client is not None else MemoryExactStore(c.max_entries)
        semantic = None
        decision = embed_one = shadow = None
        steering: dict[str, Steering] = {}
        embedding_model = c.semantic.embedding_model or embedding_model
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
            sc = c.semantic.steering
            if c.semantic.shadow_share > 0 or sc is not None:
                shadow = ShadowCheck(0.0 if sc is not None else c.semantic.shadow_share, c.semantic.shadow_agree_cosine, embed_one, metrics)
            if sc is not None:  # each semantic route earns its own threshold
                steering = {name: Steering(sc.ladder, start=max(sc.ladder) if sc.start == "strict" else None, target=sc.target, window=sc.window,
                                           min_share=sc.min_share, share_halving=sc.share_halving,
                                           judge_sensitivity=sc.judge_sensitivity)
                            for name, p in policies.items() if p.semantic}
        stage = CacheStage(policies, exact, scope=c.scope, semantic=semantic, embed=embed_one, decision=decision,
                           candidates=c.semantic.candidates, min_cosine=c.semantic.min_cosine, metrics=metrics, shadow=shadow,
                           steering=steering, clock=time.time)
        return cls(stage, exact, semantic)

    async def start(self) -> None:
        start = getattr(self.semantic, "start", None)
        if start is not None:
            await start()
        if self.semantic is not None:
            self._sweeper = run_every(SWEEP_PERIOD_S, self._sweep, logger=logger, what="semantic cache sweep")

    async def _sweep(self) -> None:
        """Expired entries leave the index (lookups skip them meanwhile)."""
        assert self.semantic is not None
        self.semantic.sweep()
        sweep_redis = getattr(self.semantic, "sweep_redis", None)
        if sweep_redis is not None:
            await sweep_redis()

    async def purge(self, which: PurgeFilter) -> dict[str, int]:
        exact = await self.exact.purge(which)
        semantic = await self.semantic.purge(which) if self.semantic is not None else 0
        return {"exact": exact, "semantic": semantic}

    async def aclose(self) -> None:
        await stop_tasks(self._sweeper)
        await self.stage.drain()
        close = getattr(self.semantic, "aclose", None)
        if close is not None:
            await close()
