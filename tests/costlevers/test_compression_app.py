"""Compression in the running ingress app: a compressing route over a scripted local engine,
through the real pipeline, the SQLite ledger and the official SDK (what the engine was sent, the
response header, the ledger's columns, the opt-out header, metrics). The live test with vLLM is in
tests/e2e."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from spillover.app import create_app
from spillover.config import parse_config
from tests.costlevers.test_compression import QUESTION, VAN_HOOK
from tests.costlevers.test_routing_app import ledger
from tests.helpers import UvicornThread
from tests.serving.scripted_engines import ScriptedEngines, completion, scripted_config

SYSTEM = "You answer from the documents."


@pytest.fixture
def engines() -> ScriptedEngines:
    engines = ScriptedEngines()
    engines.script = [completion("Stanley")]
    return engines


def serve(tmp_path: Path, engines: ScriptedEngines, compression: dict[str, Any]) -> Iterator[str]:
    base = scripted_config({"SPILLOVER__STORES__SQLITE_PATH": str(tmp_path / "spillover.db"),
                            "SPILLOVER__STORES__SPOOL_DIR": str(tmp_path / "spool")})
    raw = base.model_dump(mode="json")
    raw["routes"] = {"m": {"compression": compression}}
    with UvicornThread(create_app(parse_config(raw), engines, keys_and_costs=True)) as server:
        yield server.base_url


@pytest.fixture
def compressing(tmp_path: Path, engines: ScriptedEngines) -> Iterator[str]:
    yield from serve(tmp_path, engines, {"ratio": 2, "min_tokens": 10, "concise": True})


def ask(base_url: str, **extra: Any) -> Any:
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="none", max_retries=0)
    return client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"{VAN_HOOK}\n\nQuestion: {QUESTION}"}],
        **extra)


def test_a_long_prompt_is_cut_before_the_engine_and_the_ledger_prices_the_saving(
        compressing: str, engines: ScriptedEngines, tmp_path: Path) -> None:
    raw = ask(compressing)
    assert raw.parse().choices[0].message.content == "Stanley"
    header = raw.headers["x-spillover-compression"]
    assert header.startswith("compressed; ratio=") and header.endswith("; concise")
    sent = engines.bodies[-1]["messages"]
    assert sent[0] == {"role": "system", "content": SYSTEM}
    assert "Van Hook Township is a township in Mountrail County" in sent[1]["content"]
    assert len(sent[1]["content"]) < len(VAN_HOOK) * 0.8
    assert sent[1]["content"].endswith(f"Question: {QUESTION}\n\nAnswer as briefly as the question allows: no preamble, no restating the question.")
    row = ledger(tmp_path, 1)[0]
    assert row.compression == "compressed"
    before, after = (int(n) for n in header.split("tokens=")[1].split(";")[0].split("->"))
    assert row.prompt_tokens_original == before and after < before / 1.3
    assert row.compression_saved_micro_usd is not None and row.compression_saved_micro_usd >= 0
    metrics = httpx.get(compressing + "/metrics").text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(metrics) for s in f.samples}
    assert samples[("spillover_compress_requests_total", (("outcome", "compressed"), ("route", "m")))] == 1
    assert samples[("spillover_compress_tokens_removed_total", (("route", "m"),))] > 0


def test_the_opt_out_header_sends_the_prompt_whole(compressing: str, engines: ScriptedEngines, tmp_path: Path) -> None:
    raw = ask(compressing, extra_headers={"x-spillover-compression": "off"})
    assert raw.headers["x-spillover-compression"].startswith("opt_out; ratio=1.00")
    assert engines.bodies[-1]["messages"][1]["content"] == f"{VAN_HOOK}\n\nQuestion: {QUESTION}"
    assert ledger(tmp_path, 1)[0].compression == "opt_out"


def test_a_compression_that_fails_sends_the_request_whole(
        compressing: str, engines: ScriptedEngines, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("scorer broke")

    monkeypatch.setattr("costlevers.compression.stage.compress_messages", broken)
    raw = ask(compressing)
    assert raw.parse().choices[0].message.content == "Stanley"
    assert raw.headers["x-spillover-compression"].startswith("error;")
    assert VAN_HOOK in engines.bodies[-1]["messages"][1]["content"]
    assert ledger(tmp_path, 1)[0].compression == "error"
