"""Routing against real candidates: the local SmolLM2 (vLLM on CPU behind Ray Serve) as the cheap
model, vLLM's own OpenAI server as the strong hosted one. Routing by the router's score, the
cascade escalating on truncation and on an answer that breaks the JSON schema, the ledger rows
and headers of each, and the pinned-model override."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import openai
import pytest
import sqlalchemy as sa

from costlevers.routing.features import shape_features
from costlevers.routing.router import BUILTIN_WEIGHTS, load_router
from serving.embeddings import SentenceEncoder
from spillover.config import DEFAULT_EMBEDDING_MODEL_NAME, DEFAULT_MODEL_NAME
from stores.sql_schema import ledger_table
from tests.e2e.conftest import HOSTED_KEY
from tests.helpers import SpilloverServe, spillover_serving, wait_for

pytestmark = pytest.mark.e2e
CHEAP, STRONG = DEFAULT_MODEL_NAME, "strong"
# Bounded, so the guided answer must close well within the roomy max_tokens below.
SCHEMA = {"type": "object", "properties": {"colours": {"type": "array", "items": {"type": "string", "maxLength": 12}, "minItems": 3,
                                                       "maxItems": 3}},
          "required": ["colours"], "additionalProperties": False}


@pytest.fixture(scope="module")
def spillover(ray_cluster: dict[str, str], serve_port: int, hosted_vllm: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpilloverServe]:
    workdir = tmp_path_factory.mktemp("serve-routing")
    key_file = workdir / "hosted.key"
    key_file.write_text(HOSTED_KEY + "\n")
    candidates = [CHEAP, STRONG]
    config = {
        "models": [{"name": CHEAP, "source": f"builtin:{CHEAP}"}],
        "embeddings": [{"name": DEFAULT_EMBEDDING_MODEL_NAME, "source": f"builtin:{DEFAULT_EMBEDDING_MODEL_NAME}"}],
        "providers": [{"name": "hosted", "kind": "openai", "base_url": hosted_vllm + "/v1", "api_key_file": str(key_file),
                       "models": {STRONG: "hosted-smollm2"}}],
        "routes": {
            # The local model never spills here: the cheap candidate is the local one.
            CHEAP: {"ttft_target_s": 600, "allow_hosted": False},
            STRONG: {"hosted": [{"provider": "hosted"}]},
            "auto": {"routing": {"candidates": candidates, "router": {}}},
            "auto-always-strong": {"routing": {"candidates": candidates, "router": {"threshold": -1.0}}},
            "auto-cascade": {"routing": {"candidates": candidates, "cascade": {"checks": ["not_truncated", "not_refusal"]}}},
            "auto-json": {"routing": {"candidates": candidates, "cascade": {"checks": ["valid_structure"]}}},
        },
    }
    with spillover_serving(ray_cluster, serve_port, config, workdir) as process:
        yield process


@pytest.fixture
def client(spillover: SpilloverServe) -> openai.OpenAI:
    return openai.OpenAI(base_url=spillover.base_url, api_key="unused", max_retries=0, timeout=180)


def _ask(client: openai.OpenAI, model: str, content: str, **extra: Any) -> Any:
    return client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": content}], temperature=0,
                                                            **extra)


def _rows(spillover: SpilloverServe, where: Any, count: int) -> list[Any]:
    engine = sa.create_engine(f"sqlite:///{spillover.log_path.parent / 'spillover.db'}")

    def rows() -> list[Any]:
        with engine.connect() as connection:
            return list(connection.execute(sa.select(ledger_table).where(where)))

    try:
        wait_for(lambda: len(rows()) >= count, timeout_s=15, what=f"{count} ledger rows")
        return rows()
    finally:
        engine.dispose()


def test_the_router_scores_the_prompt_and_the_threshold_picks_the_model(client: openai.OpenAI, spillover: SpilloverServe) -> None:
    router, calibration = load_router(BUILTIN_WEIGHTS)
    threshold = calibration.threshold(0.95)
    encoder = SentenceEncoder.builtin()
    for prompt in ("Say hello.", "A train leaves at 3:40 pm going 62 mph; another at 4:10 pm at 75 mph. When does the second catch up?"):
        raw = _ask(client, "auto", prompt, max_tokens=8)
        body = {"messages": [{"role": "user", "content": prompt}]}
        expected = router.score(encoder.encode([prompt])[0], shape_features(body, prompt))
        score = float(raw.headers["x-spillover-router-score"])
        assert np.isclose(score, expected, atol=2e-3), "the ingress scores what the offline router scores"
        assert raw.headers["x-spillover-model"] == (STRONG if score > threshold else CHEAP)
        assert raw.headers["x-spillover-destination"] == ("hosted" if score > threshold else "local")
    always = _ask(client, "auto-always-strong", "Say hello.", max_tokens=8)
    assert (always.headers["x-spillover-model"], always.headers["x-spillover-route-reason"]) == (STRONG, "router_strong")
    assert always.headers["x-spillover-destination"] == "hosted"


def test_a_truncated_cheap_answer_escalates_to_the_strong_model_and_both_are_billed(client: openai.OpenAI, spillover: SpilloverServe) -> None:
    raw = _ask(client, "auto-cascade", "Write a long story about a lighthouse keeper.", max_tokens=5)
    assert raw.headers["x-spillover-model"] == STRONG and raw.headers["x-spillover-escalations"] == f"{CHEAP}:not_truncated"
    assert raw.headers["x-spillover-destination"] == "hosted" and raw.parse().choices[0].message.content
    request_id = raw.headers["x-request-id"]
    [served] = _rows(spillover, ledger_table.c.request_id == request_id, 1)
    [abandoned] = _rows(spillover, ledger_table.c.attempt_of == request_id, 1)
    assert (served.model_asked, served.model_served, served.route_reason, served.escalations) == ("auto-cascade", "hosted-smollm2", "escalated",
                                                                                                  f"{CHEAP}:not_truncated")
    assert (abandoned.status, abandoned.destination, abandoned.completion_tokens) == ("escalated", "local", 5)


def test_a_whole_cheap_answer_is_kept_and_a_stream_gets_it_after_the_check(client: openai.OpenAI) -> None:
    raw = _ask(client, "auto-cascade", "Name a colour.", max_tokens=200)
    assert raw.headers["x-spillover-route-reason"] == "cascade_accepted" and raw.headers["x-spillover-destination"] == "local"
    chunks = list(client.chat.completions.create(model="auto-cascade", messages=[{"role": "user", "content": "Name a colour."}],
                                                 max_tokens=200, temperature=0, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == raw.parse().choices[0].message.content


def test_an_answer_that_breaks_the_schema_escalates(client: openai.OpenAI) -> None:
    # Cut at 6 tokens, the cheap model's JSON cannot close: it does not parse against the schema.
    schema = {"type": "json_schema", "json_schema": {"name": "colours", "schema": SCHEMA}}
    raw = _ask(client, "auto-json", "List three colours as JSON.", max_tokens=6, response_format=schema)
    assert raw.headers["x-spillover-escalations"] == f"{CHEAP}:valid_structure" and raw.headers["x-spillover-model"] == STRONG
    roomy = _ask(client, "auto-json", "List three colours as JSON.", max_tokens=200, response_format=schema)
    assert roomy.headers["x-spillover-route-reason"] == "cascade_accepted"
    assert len(json.loads(roomy.parse().choices[0].message.content)["colours"]) == 3


def test_a_pinned_model_is_served_without_routing(client: openai.OpenAI) -> None:
    raw = _ask(client, "auto", "Say hello.", max_tokens=8, extra_headers={"X-Spillover-Model": STRONG})
    assert (raw.headers["x-spillover-model"], raw.headers["x-spillover-route-reason"], raw.headers["x-spillover-destination"]) == (
        STRONG, "pinned", "hosted")
    assert "x-spillover-router-score" not in raw.headers
