"""Semantic-cache steering through ``spillover serve`` (SmolLM2 on vLLM CPU, all-MiniLM-L6-v2 behind
Ray Serve, the shipped hit verifier): a steered route starts shadow-only, so a paraphrase of a
cached question is not served from the cache; the model answers it, the cached answer is
compared with that answer after the response (a free check), and the route's check counter,
bound and threshold series and the dashboard's steering row move."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from spillover.config import DEFAULT_MODEL_NAME, default_config_dict
from tests.helpers import SpilloverServe, spillover_serving, wait_for

pytestmark = pytest.mark.e2e
MODEL = DEFAULT_MODEL_NAME
SYSTEM = {"role": "system", "content": "Answer in one short sentence."}


@pytest.fixture(scope="module")
def spillover(ray_cluster: dict[str, str], serve_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpilloverServe]:
    config = {**default_config_dict(), "cache": {"semantic": {"enabled": True, "steering": {"start": "shadow"}}}}
    with spillover_serving(ray_cluster, serve_port, config, tmp_path_factory.mktemp("serve-cache-steering")) as process:
        yield process


def ask(spillover: SpilloverServe, question: str) -> Any:
    client = openai.OpenAI(base_url=spillover.base_url, api_key="unused", max_retries=0, timeout=300)
    return client.chat.completions.with_raw_response.create(
        model=MODEL, max_tokens=16, temperature=0, messages=[SYSTEM, {"role": "user", "content": question}])


def series(spillover: SpilloverServe, name: str) -> dict[str, float]:
    """Every sample of ``name`` on the ingress, by its label text."""
    text = httpx.get(spillover.base_url.removesuffix("/v1") + "/metrics", timeout=10).text
    return {labels: float(value) for labels, value in re.findall(rf"^{name}{{([^}}]*)}} (\S+)$", text, re.MULTILINE)}


def checks(spillover: SpilloverServe) -> float:
    return sum(v for labels, v in series(spillover, "spillover_cache_semantic_checks_total").items()
               if f'route="{MODEL}"' in labels and 'kind="free"' in labels)


def test_a_steered_route_starts_shadow_only_and_checks_its_would_be_hits(spillover: SpilloverServe) -> None:
    first = ask(spillover, "What is the capital of France?")
    assert first.headers["x-spillover-cache"] == "miss"
    assert ask(spillover, "What is the capital of France?").headers["x-spillover-cache"] == "hit-exact"
    assert checks(spillover) == 0
    paraphrase = ask(spillover, "what is the capital of france")
    assert paraphrase.headers["x-spillover-cache"] == "miss", "shadow only: a would-be hit is not served"
    assert paraphrase.parse().choices[0].message.content, "the model answered it"
    wait_for(lambda: checks(spillover) == 1, timeout_s=30, what="the free check's verdict on the route's series")
    threshold = series(spillover, "spillover_cache_semantic_threshold")[f'route="{MODEL}"']
    bound = series(spillover, "spillover_cache_semantic_false_hit_bound")[f'route="{MODEL}"']
    assert math.isnan(threshold), "one check earns no rung: still shadow only"
    assert bound > 0.01
    view = httpx.get(spillover.base_url.removesuffix("/v1") + "/dashboard/api/view", timeout=30).json()
    row = view["cache_steering"][MODEL]
    assert row["threshold"] is None and row["checks"] == 1 and row["paid_checks"] == 0 and row["bound"] == pytest.approx(bound)
