"""Faults around the semantic cache: a shadow check that fails is no evidence (never agreement),
and no failing part of the cache (its Redis, the embedding, the index, a check) blocks or fails
the request it serves."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from contracts.context import Api, CacheResult, Outcome, Principal, RequestContext, Status
from contracts.errors import UpstreamUnavailableError
from contracts.pipeline import Pipeline, Stage
from costlevers.cache.exact_store import MemoryExactStore, RedisExactStore
from costlevers.cache.metrics import CacheMetrics
from costlevers.cache.semantic_store import SemanticStore
from costlevers.cache.stage import CacheStage, RoutePolicy, ShadowCheck
from costlevers.cache.steering import Steering
from costlevers.cache.verifier import HitVerifier
from serving.embeddings import SentenceEncoder
from tests.serving.scripted_engines import completion

POLICY = RoutePolicy(ttl_s=600, model_version="v1", prompt_version="1", non_deterministic=False, tool_calls=False, semantic=True)
QUESTION, PARAPHRASE = "What is the capital of France?", "what is the capital of france"


@pytest.fixture(scope="module")
def encoder() -> Iterator[SentenceEncoder]:
    yield SentenceEncoder.builtin(threads=1)


class Model(Stage):
    """The stages after the cache: answers with the next scripted item; an exception is raised
    as the upstream would raise it."""

    name = "model"

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.asked = 0

    async def process(self, ctx: RequestContext) -> None:
        self.asked += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        ctx.outcome = Outcome(body=completion(answer))


def ctx(question: str) -> RequestContext:
    body = {"model": "m", "messages": [{"role": "user", "content": question}], "temperature": 0}
    return RequestContext("r", Api.CHAT, "m", body, False, {}, principal=Principal("k", "u", "team-a"))


def earned(ladder: list[float]) -> Steering:
    """A steered route that already serves at 0.5 (every served hit checked)."""
    steering = Steering(ladder, start=None, share_halving=10**9)
    for _ in range(500):
        steering.record(0.95, True, paid=False)
    assert steering.threshold == 0.5
    return steering


def steered_stage(encoder: SentenceEncoder, steering: Steering, registry: CollectorRegistry) -> tuple[CacheStage, ShadowCheck]:
    async def embed(text: str) -> np.ndarray:
        return encoder.encode([text])[0]

    metrics = CacheMetrics(registry)
    shadow = ShadowCheck(share=0.0, agree_cosine=0.6, embed=embed, metrics=metrics)
    cache = CacheStage({"m": POLICY}, MemoryExactStore(100), semantic=SemanticStore(100), embed=embed, decision=HitVerifier.load(),
                       metrics=metrics, shadow=shadow, steering={"m": steering})
    return cache, shadow


def checks(registry: CollectorRegistry) -> float:
    return sum(registry.get_sample_value("spillover_cache_semantic_checks_total", {"route": "m", "kind": k, "result": r}) or 0.0
               for k in ("paid", "free") for r in ("agree", "disagree"))


@pytest.mark.parametrize("shadow_answer", [UpstreamUnavailableError("the model is down"), ""], ids=["model-error", "empty-answer"])
async def test_a_paid_check_that_fails_is_no_evidence_and_the_hit_is_still_served(encoder: SentenceEncoder,
                                                                                   shadow_answer: str | Exception) -> None:
    registry = CollectorRegistry()
    steering = earned([0.99, 0.9, 0.5])
    cache, shadow = steered_stage(encoder, steering, registry)
    model = Model("The capital of France is Paris.", shadow_answer)
    pipeline = Pipeline([cache, model])
    await pipeline.run(ctx(QUESTION))
    before = steering.state()
    outcome_ctx = ctx(PARAPHRASE)
    outcome = await pipeline.run(outcome_ctx)
    await cache.drain()
    assert outcome_ctx.cache_result is CacheResult.SEMANTIC and outcome.body is not None, "the hit was served"
    assert model.asked == 2, "the served hit was checked"
    after = steering.state()
    assert (after.checks, after.paid_checks) == (before.checks, before.paid_checks), "a failed check adds no evidence"
    assert (shadow.agree, shadow.disagree) == (0, 0) and checks(registry) == 0


async def test_a_probe_whose_own_answer_is_empty_is_no_evidence(encoder: SentenceEncoder) -> None:
    registry = CollectorRegistry()
    steering = Steering([0.99, 0.9, 0.5], start=None)
    cache, _ = steered_stage(encoder, steering, registry)
    pipeline = Pipeline([cache, Model("The capital of France is Paris.", "")])
    await pipeline.run(ctx(QUESTION))
    request = ctx(PARAPHRASE)
    await pipeline.run(request)
    await cache.drain()
    assert request.cache_result is CacheResult.MISS, "shadow only: the would-be hit is a probe"
    assert steering.state().checks == 0 and checks(registry) == 0


async def test_a_cache_whose_redis_is_down_still_answers_through_the_model() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)  # nothing listens there
    cache = CacheStage({"m": POLICY}, RedisExactStore(client))
    model = Model("Paris.", "Paris.")
    pipeline = Pipeline([cache, model])
    try:
        for _ in range(2):
            request = ctx(QUESTION)
            outcome = await pipeline.run(request)
            assert outcome.body is not None and request.status is Status.OK and request.cache_result is CacheResult.MISS
    finally:
        await client.aclose()
    assert model.asked == 2


async def test_a_failing_embedding_or_index_is_a_miss_not_an_error(encoder: SentenceEncoder) -> None:
    async def embed_down(text: str) -> np.ndarray:
        raise UpstreamUnavailableError("the embedding deployment is down")

    class BrokenIndex(SemanticStore):
        """The in-process index with its search failing (a corrupted index, a bug)."""

        def candidates(self, *args: object, **kwargs: object) -> list:  # type: ignore[override]
            raise RuntimeError("index unreadable")

    async def embed(text: str) -> np.ndarray:
        return encoder.encode([text])[0]

    for store, embedder, steering in ((SemanticStore(10), embed_down, None), (BrokenIndex(10), embed, None),
                                      (BrokenIndex(10), embed, Steering([0.9], start=0.9))):
        cache = CacheStage({"m": POLICY}, MemoryExactStore(10), semantic=store, embed=embedder, decision=HitVerifier.load(),
                           steering={"m": steering} if steering is not None else None)
        model = Model("Paris.", "Paris.")
        pipeline = Pipeline([cache, model])
        for question in (QUESTION, PARAPHRASE):
            request = ctx(question)
            outcome = await pipeline.run(request)
            assert outcome.body is not None and request.status is Status.OK and request.cache_result is CacheResult.MISS
        assert model.asked == 2
