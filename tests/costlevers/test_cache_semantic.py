"""The semantic cache stage with the real encoder (all-MiniLM-L6-v2) and the shipped hit verifier:
paraphrases hit, topically close questions do not, and context isolates entries."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from contracts.context import Api, CacheResult, Outcome, Principal, RequestContext, Status
from contracts.pipeline import Pipeline, Stage
from costlevers.cache.exact_store import MemoryExactStore
from costlevers.cache.metrics import CacheMetrics
from costlevers.cache.semantic_store import SemanticStore
from costlevers.cache.stage import CacheStage, RoutePolicy, ShadowCheck
from costlevers.cache.steering import Steering
from costlevers.cache.verifier import HitVerifier
from serving.embeddings import SentenceEncoder
from tests.serving.scripted_engines import completion

POLICY = RoutePolicy(ttl_s=600, model_version="v1", prompt_version="1", non_deterministic=False, tool_calls=False, semantic=True)
SYSTEM = {"role": "system", "content": "Answer in one sentence."}


@pytest.fixture(scope="module")
def encoder() -> Iterator[SentenceEncoder]:
    yield SentenceEncoder.builtin(threads=1)


def stage(encoder: SentenceEncoder, metrics: CacheMetrics | None = None, shadow: ShadowCheck | None = None) -> CacheStage:
    async def embed(text: str) -> np.ndarray:
        return encoder.encode([text])[0]

    return CacheStage({"m": POLICY}, MemoryExactStore(100), semantic=SemanticStore(100), embed=embed, decision=HitVerifier.load(),
                      metrics=metrics, shadow=shadow)


def ctx(question: str, *before: dict) -> RequestContext:
    body = {"model": "m", "messages": [*before, {"role": "user", "content": question}], "temperature": 0}
    return RequestContext("r", Api.CHAT, "m", body, False, {}, principal=Principal("k", "u", "team-a"))


async def ask(cache: CacheStage, question: str, *before: dict, answer: str = "Paris.") -> CacheResult:
    """One request through the stage; a miss is answered (as the model would) and stored."""
    request = ctx(question, *before)
    await cache.process(request)
    if request.outcome is None:
        request.outcome, request.status = Outcome(body=completion(answer)), Status.OK
        await cache.settle(request)
    return request.cache_result


async def test_a_paraphrase_hits_and_close_but_different_questions_do_not(encoder: SentenceEncoder) -> None:
    cache = stage(encoder)
    assert await ask(cache, "What is the capital of France?", SYSTEM) is CacheResult.MISS
    assert await ask(cache, "What is the capital of France?", SYSTEM) is CacheResult.EXACT
    assert await ask(cache, "what is the capital of france", SYSTEM) is CacheResult.SEMANTIC
    await ask(cache, "What is the best way to convert USD to INR?", SYSTEM)
    assert await ask(cache, "What is the best way to convert INR to USD?", SYSTEM) is CacheResult.MISS, "reversed: cosine 0.98"
    await ask(cache, "What are the health benefits of green tea?", SYSTEM)
    assert await ask(cache, "What are the health risks of green tea?", SYSTEM) is CacheResult.MISS


async def test_other_context_never_shares_an_entry(encoder: SentenceEncoder) -> None:
    cache = stage(encoder)
    await ask(cache, "What is the capital of France?", SYSTEM)
    assert await ask(cache, "what is the capital of france", {"role": "system", "content": "Answer in French."}) is CacheResult.MISS
    earlier = [{"role": "user", "content": "Let's talk about Texas."}, {"role": "assistant", "content": "Sure."}]
    assert await ask(cache, "what is the capital of france", *earlier) is CacheResult.MISS, "another conversation before it"
    assert await ask(cache, "what is the capital of france", SYSTEM) is CacheResult.SEMANTIC


class ModelAnswers(Stage):
    """Stands for the stages after the cache: answers each request with the next scripted text
    and keeps the contexts it saw."""

    name = "model"

    def __init__(self, answers: list[str]) -> None:
        self.answers = iter(answers)
        self.seen: list[RequestContext] = []

    async def process(self, ctx: RequestContext) -> None:
        self.seen.append(ctx)
        ctx.outcome = Outcome(body=completion(next(self.answers)))


async def test_shadow_checks_ask_the_stages_after_the_cache_and_estimate_false_hits(encoder: SentenceEncoder) -> None:
    registry = CollectorRegistry()
    metrics = CacheMetrics(registry)

    async def embed(text: str) -> np.ndarray:
        return encoder.encode([text])[0]

    shadow = ShadowCheck(share=1.0, agree_cosine=0.6, embed=embed, metrics=metrics)
    cache = stage(encoder, metrics, shadow)
    model = ModelAnswers(["Paris is the capital of France.", "Bananas are rich in potassium."])
    Pipeline([cache, model])  # the cache stage learns the pipeline its shadow checks run through
    await ask(cache, "What is the capital of France?", answer="The capital of France is Paris.")
    for _ in range(2):
        assert await ask(cache, "what is the capital of france") is CacheResult.SEMANTIC
        await cache.drain()
    assert (shadow.agree, shadow.disagree) == (1, 1)
    assert [c.principal.feature for c in model.seen] == ["cache-shadow", "cache-shadow"]
    assert all(c.body["stream"] is False and c.request_id != "r" for c in model.seen)
    assert registry.get_sample_value("spillover_cache_semantic_false_hit_estimate") == 0.5
    assert registry.get_sample_value("spillover_cache_requests_total", {"kind": "semantic", "result": "hit"}) == 2


async def test_a_steered_route_probes_for_free_until_evidence_earns_a_threshold_then_checks_what_it_serves(encoder: SentenceEncoder) -> None:
    registry = CollectorRegistry()
    metrics = CacheMetrics(registry)

    async def embed(text: str) -> np.ndarray:
        return encoder.encode([text])[0]

    shadow = ShadowCheck(share=0.0, agree_cosine=0.6, embed=embed, metrics=metrics)
    steering = Steering([0.99, 0.9, 0.5], start=None, share_halving=10**9)  # every served hit is checked
    cache = CacheStage({"m": POLICY}, MemoryExactStore(100), semantic=SemanticStore(100), embed=embed, decision=HitVerifier.load(),
                       metrics=metrics, shadow=shadow, steering={"m": steering})
    model = ModelAnswers(["Paris is the capital of France."])
    Pipeline([cache, model])
    await ask(cache, "What is the capital of France?", answer="The capital of France is Paris.")
    assert steering.threshold is None, "shadow only at first"
    result = await ask(cache, "what is the capital of france", answer="Paris is France's capital.")
    await cache.drain()
    assert result is CacheResult.MISS, "a would-be hit is not served: the model answers, and its answer is the evidence"
    assert steering.state().checks == 1 and model.seen == [], "the probe cost nothing"
    assert registry.get_sample_value("spillover_cache_semantic_checks_total", {"route": "m", "kind": "free", "result": "agree"}) == 1
    for _ in range(400):  # as if 400 more probes had agreed at this score
        steering.record(0.95, True, paid=False)
    assert steering.threshold is not None and steering.threshold <= 0.9
    assert await ask(cache, "What is the capital of France ?") is CacheResult.SEMANTIC
    await cache.drain()
    assert [c.principal.feature for c in model.seen] == ["cache-shadow"], "the served hit was checked, paid"
    assert registry.get_sample_value("spillover_cache_semantic_checks_total", {"route": "m", "kind": "paid", "result": "agree"}) == 1
    assert registry.get_sample_value("spillover_cache_semantic_false_hit_bound", {"route": "m"}) <= 0.01
