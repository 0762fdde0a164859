"""Routing as the ingress runs it: each routed route's policy resolved from its ``routing`` block
(router weights loaded, quality targets turned into thresholds, checks looked up) and the stage.

Built from the routes' ``routing`` blocks, the embedding call the composition root hands over,
and a prompt-token counter per candidate route.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry

from costlevers.embedding import EmbedCall, embedder
from costlevers.routing.checks import CHECKS, Check, confident
from costlevers.routing.config import RoutingConfig
from costlevers.routing.metrics import RoutingMetrics
from costlevers.routing.router import BUILTIN_WEIGHTS, Calibration, KnnRouter, LinearRouter, load_router
from costlevers.routing.stage import Recount, RoutePolicy, RoutingStage
from costlevers.routing.verifier import AnswerVerifier, load_verifier

__all__ = ["routing_policies", "routing_stage"]


@functools.cache
def _router(path: Path) -> tuple[LinearRouter | KnnRouter, Calibration]:
    return load_router(path)


@functools.cache
def _verifier() -> tuple[AnswerVerifier, Calibration]:
    return load_verifier()


def _policy(config: RoutingConfig, embed: EmbedCall, default_embedding_model: str | None) -> RoutePolicy:
    policy = RoutePolicy(candidates=tuple(config.candidates))
    if config.router is not None:
        rc = config.router
        model = rc.embedding_model or default_embedding_model
        if model is None:
            raise ValueError("a router needs an `embeddings` model to embed prompts with")
        router, calibration = _router(Path(rc.weights).expanduser() if rc.weights else BUILTIN_WEIGHTS)
        if router.kind != rc.kind:
            raise ValueError(f"router.weights holds a {router.kind} router, not {rc.kind}")
        threshold = rc.threshold if rc.threshold is not None else calibration.threshold(rc.quality_target)
        policy = RoutePolicy(policy.candidates, router=router, threshold=threshold, embed=embedder(embed, model))
    if config.cascade is not None:
        cc = config.cascade
        checks: list[Check] = [CHECKS[name] for name in cc.checks]
        if cc.min_mean_logprob is not None:
            checks.append(functools.partial(confident, min_mean_logprob=cc.min_mean_logprob))
        verifier, verifier_threshold = None, float("inf")
        if cc.verifier:
            verifier, calibration = _verifier()
            verifier_threshold = calibration.threshold(cc.verifier_quality_target)
        policy = RoutePolicy(policy.candidates, policy.router, policy.threshold, policy.embed, cascade=True, checks=tuple(checks),
                             second_sample=cc.second_sample, verifier=verifier, verifier_threshold=verifier_threshold,
                             wants_logprobs=cc.min_mean_logprob is not None, streams_buffered=cc.streams == "buffer")
    return policy


def routing_policies(routes: Mapping[str, RoutingConfig], embed: EmbedCall, default_embedding_model: str | None) -> dict[str, RoutePolicy]:
    """Per routed route, its policy; a route whose router cannot load fails start, naming the route."""
    policies = {}
    for name, config in routes.items():
        try:
            policies[name] = _policy(config, embed, default_embedding_model)
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"routes.{name}.routing: {exc}") from None
    return policies


def routing_stage(routes: Mapping[str, RoutingConfig], embed: EmbedCall, *, default_embedding_model: str | None, recount: Recount,
                  registry: CollectorRegistry | None = None) -> RoutingStage:
    return RoutingStage(routing_policies(routes, embed, default_embedding_model), recount=recount,
                        metrics=RoutingMetrics(registry) if registry is not None else None)
