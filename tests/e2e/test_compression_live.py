"""Compression through ``spillover serve`` with the local SmolLM2 (vLLM on CPU behind Ray Serve):
a long RAG request reaches the engine cut (vLLM's own prompt-token count says so), the ledger
records the tokens before and after, the untouched system prompt still hits vLLM's prefix cache
(the engine's prefix-cache counter, through Ray's metrics export), and the opt-out header sends
the prompt whole."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa

from spillover.config import DEFAULT_EMBEDDING_MODEL_NAME, DEFAULT_MODEL_NAME
from stores.sql_schema import ledger_table
from tests.costlevers.test_compression import QUESTION, VAN_HOOK
from tests.helpers import SpilloverServe, spillover_serving, wait_for

pytestmark = pytest.mark.e2e
MODEL = DEFAULT_MODEL_NAME
# Long enough to fill several KV blocks: the prefix the cache must still hit after compression.
SYSTEM = "You are a careful research assistant. Answer only from the documents the user gives you. " + " ".join(
    f"Rule {i}: cite the title of the document that supports each claim, and say so when no document does." for i in range(1, 25))
DISTRACTORS = "\n\n".join(
    f"Title: Township {i}\nTownship {i} is a civil township in Example County {i}. It had {100 + i} residents at the census. "
    f"Its economy rests on farming and a small grain elevator that opened in {1900 + i}." for i in range(1, 16))


def documents(seed: str) -> str:
    return f"{DISTRACTORS}\n\n{VAN_HOOK}\n\nTitle: Note {seed}\nThis note, {seed}, is about nothing in particular."


@pytest.fixture(scope="module")
def spillover(ray_cluster: dict[str, str], serve_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpilloverServe]:
    config = {
        "models": [{"name": MODEL, "source": f"builtin:{MODEL}"}],
        "embeddings": [{"name": DEFAULT_EMBEDDING_MODEL_NAME, "source": f"builtin:{DEFAULT_EMBEDDING_MODEL_NAME}"}],
        "routes": {MODEL: {"ttft_target_s": 600, "allow_hosted": False, "compression": {"ratio": 2, "min_tokens": 200}}},
    }
    with spillover_serving(ray_cluster, serve_port, config, tmp_path_factory.mktemp("serve-compression")) as process:
        yield process


def ask(spillover: SpilloverServe, seed: str, **extra: Any) -> Any:
    client = openai.OpenAI(base_url=spillover.base_url, api_key="unused", max_retries=0, timeout=300)
    return client.chat.completions.with_raw_response.create(
        model=MODEL, max_tokens=8, temperature=0,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"{documents(seed)}\n\nQuestion: {QUESTION}"}], **extra)


def prefix_cache_hits(ray_cluster: dict[str, str]) -> float:
    text = httpx.get(f"http://127.0.0.1:{ray_cluster['metrics_port']}/metrics").text
    return sum(float(v) for v in re.findall(rf'^ray_vllm_prefix_cache_hits_total{{[^}}]*model_name="{MODEL}"[^}}]*}} (\S+)$', text, re.M))


def ledger_row(spillover: SpilloverServe, request_id: str) -> Any:
    engine = sa.create_engine(f"sqlite:///{spillover.log_path.parent / 'spillover.db'}")

    def rows() -> list[Any]:
        with engine.connect() as connection:
            return list(connection.execute(sa.select(ledger_table).where(ledger_table.c.request_id == request_id)))

    try:
        wait_for(lambda: len(rows()) == 1, timeout_s=15, what="the ledger row")
        return rows()[0]
    finally:
        engine.dispose()


def test_a_long_rag_prompt_is_cut_and_its_system_prompt_still_hits_the_prefix_cache(
        spillover: SpilloverServe, ray_cluster: dict[str, str]) -> None:
    first = ask(spillover, "one")
    header = first.headers["x-spillover-compression"]
    before, after = (int(n) for n in header.split("tokens=")[1].split(";")[0].split("->"))
    assert header.startswith("compressed;") and before / after >= 1.8
    usage = first.parse().usage
    assert abs(usage.prompt_tokens - after) <= 2, "vLLM saw the cut prompt"
    row = ledger_row(spillover, first.headers["x-request-id"])
    assert (row.compression, row.prompt_tokens_original) == ("compressed", before)
    assert row.prompt_tokens == usage.prompt_tokens < before

    hits = prefix_cache_hits(ray_cluster)
    second = ask(spillover, "two")  # the same system prompt, other documents
    assert second.headers["x-spillover-compression"].startswith("compressed;")
    system_tokens = 200  # the system prompt alone is ~450 tokens: at least a few full blocks match
    wait_for(lambda: prefix_cache_hits(ray_cluster) - hits >= system_tokens, timeout_s=40,
             what="vLLM's prefix-cache hits to grow by the system prompt (Ray's export, every ~10 s)")


def test_the_opt_out_header_sends_the_whole_prompt(spillover: SpilloverServe) -> None:
    whole = ask(spillover, "three", extra_headers={"x-spillover-compression": "off"})
    header = whole.headers["x-spillover-compression"]
    assert header.startswith("opt_out;")
    before = int(header.split("tokens=")[1].split("->")[0])
    assert abs(whole.parse().usage.prompt_tokens - before) <= 2
    assert ledger_row(spillover, whole.headers["x-request-id"]).compression == "opt_out"
