"""Routing in the running ingress app: a routed name (``auto``) over two candidates, the cheap
``m`` and the strong ``big``, each a scripted local engine, through the real pipeline, the
SQLite ledger and the official SDK. The live test with a real hosted server is in tests/e2e."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from contracts.errors import ConfigError
from spillover.app import create_app
from spillover.config import SpilloverConfig, parse_config
from stores.sql_schema import ledger_table
from tests.helpers import UvicornThread, wait_for
from tests.serving.scripted_engines import ScriptedEngines, completion, scripted_config

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}


def routed_config(tmp_path: Path, routing: dict[str, Any]) -> SpilloverConfig:
    base = scripted_config({"SPILLOVER__STORES__SQLITE_PATH": str(tmp_path / "spillover.db"),
                            "SPILLOVER__STORES__SPOOL_DIR": str(tmp_path / "spool")})
    raw = base.model_dump(mode="json", exclude_unset=False)
    raw["models"].append({**raw["models"][0], "name": "big"})
    raw["routes"] = {"auto": {"routing": routing}}
    return parse_config(raw)


@pytest.fixture
def engines() -> ScriptedEngines:
    engines = ScriptedEngines()
    engines.scripts = {"m": [completion("cheap answer")], "big": [completion("strong answer")]}
    engines.embedding = [1.0] + [0.0] * 383
    return engines


def serve(tmp_path: Path, engines: ScriptedEngines, routing: dict[str, Any]) -> Iterator[str]:
    with UvicornThread(create_app(routed_config(tmp_path, routing), engines, keys_and_costs=True)) as server:
        yield server.base_url


@pytest.fixture
def cascade(tmp_path: Path, engines: ScriptedEngines) -> Iterator[str]:
    yield from serve(tmp_path, engines, {"candidates": ["m", "big"], "cascade": {"checks": ["not_truncated", "valid_structure"]}})


def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url + "/v1", api_key="none", max_retries=0)


def ask(base_url: str, **extra: Any) -> Any:
    return client(base_url).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Which city?"}], **extra)


def ledger(tmp_path: Path, count: int) -> list[Any]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'spillover.db'}")

    def rows() -> list[Any]:
        with engine.connect() as connection:
            return list(connection.execute(sa.select(ledger_table)))

    try:
        wait_for(lambda: len(rows()) >= count, timeout_s=10, what=f"{count} ledger rows")
        return rows()
    finally:
        engine.dispose()


def test_a_passing_cheap_answer_is_the_response_and_the_strong_model_is_never_called(
        cascade: str, engines: ScriptedEngines, tmp_path: Path) -> None:
    raw = ask(cascade)
    assert raw.parse().choices[0].message.content == "cheap answer"
    assert raw.headers["x-spillover-model"] == "m" and raw.headers["x-spillover-route-reason"] == "cascade_accepted"
    assert engines.models_called == ["m"]
    [row] = ledger(tmp_path, 1)
    assert (row.model_asked, row.model_served, row.route_reason, row.escalations, row.status) == ("auto", "m", "cascade_accepted", None, "ok")


def test_a_truncated_cheap_answer_escalates_and_both_calls_are_in_the_ledger(cascade: str, engines: ScriptedEngines, tmp_path: Path) -> None:
    cut = completion("cheap ans")
    cut["choices"][0]["finish_reason"] = "length"
    engines.scripts["m"] = [cut]
    raw = ask(cascade)
    assert raw.parse().choices[0].message.content == "strong answer"
    assert raw.headers["x-spillover-model"] == "big" and raw.headers["x-spillover-escalations"] == "m:not_truncated"
    assert engines.models_called == ["m", "big"]
    rows = {r.status: r for r in ledger(tmp_path, 2)}
    served, abandoned = rows["ok"], rows["escalated"]
    assert (served.model_served, served.route_reason, served.escalations) == ("big", "escalated", "m:not_truncated")
    assert abandoned.attempt_of == served.request_id and abandoned.model_served == "m" and abandoned.completion_tokens == 2


def test_an_answer_that_breaks_the_json_schema_escalates(cascade: str, engines: ScriptedEngines) -> None:
    engines.scripts = {"m": [completion('{"town": "Oslo"}')], "big": [completion('{"city": "Oslo"}')]}
    schema_format = {"type": "json_schema", "json_schema": {"name": "place", "schema": SCHEMA}}
    raw = ask(cascade, response_format=schema_format)
    assert json.loads(raw.parse().choices[0].message.content) == {"city": "Oslo"}
    assert raw.headers["x-spillover-escalations"] == "m:valid_structure"

    engines.scripts["m"] = [completion('{"city": "Bergen"}')]
    assert json.loads(ask(cascade, response_format=schema_format).parse().choices[0].message.content) == {"city": "Bergen"}


def test_a_stream_waits_for_the_check_and_then_streams_the_accepted_answer(cascade: str, engines: ScriptedEngines) -> None:
    stream = client(cascade).chat.completions.create(model="auto", messages=[{"role": "user", "content": "Which city?"}], stream=True,
                                                     stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "cheap answer"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2
    assert engines.models_called == ["m"]


def test_the_strong_models_error_is_returned_after_a_rejection_and_the_cheap_attempt_is_still_paid(
        cascade: str, engines: ScriptedEngines, tmp_path: Path) -> None:
    cut = completion("cheap ans")
    cut["choices"][0]["finish_reason"] = "length"
    engines.scripts = {"m": [cut], "big": [{"error": {"message": "engine overloaded", "type": "server_error", "code": 503}}]}
    with pytest.raises(openai.APIStatusError) as raised:
        ask(cascade)
    assert raised.value.status_code >= 500
    statuses = sorted(r.status for r in ledger(tmp_path, 2))
    assert statuses == ["error", "escalated"]


def test_a_pinned_model_skips_routing_and_an_unknown_pin_is_a_400(cascade: str, engines: ScriptedEngines) -> None:
    raw = ask(cascade, extra_headers={"X-Spillover-Model": "big"})
    assert raw.parse().choices[0].message.content == "strong answer" and raw.headers["x-spillover-route-reason"] == "pinned"
    assert engines.models_called == ["big"]
    with pytest.raises(openai.BadRequestError) as raised:
        ask(cascade, extra_headers={"X-Spillover-Model": "gpt-5"})
    assert raised.value.body["param"] == "X-Spillover-Model"


@pytest.mark.parametrize(("threshold", "model", "reason"), [(-10.0, "big", "router_strong"), (10.0, "m", "router_cheap")])
def test_the_router_score_against_the_threshold_picks_the_model(
        tmp_path: Path, engines: ScriptedEngines, threshold: float, model: str, reason: str) -> None:
    for base_url in serve(tmp_path, engines, {"candidates": ["m", "big"], "router": {"threshold": threshold}}):
        raw = ask(base_url)
        assert raw.headers["x-spillover-model"] == model and raw.headers["x-spillover-route-reason"] == reason
        assert -1.0 <= float(raw.headers["x-spillover-router-score"]) <= 1.0
        assert engines.models_called == [model]
        [row] = ledger(tmp_path, 1)
        assert (row.router, row.route_reason) == ("linear", reason) and row.route_score is not None


def test_a_route_with_no_embedding_answer_goes_to_the_strongest_candidate(tmp_path: Path, engines: ScriptedEngines) -> None:
    engines.embedding = None
    engines.script = [RuntimeError("embedding deployment down")]
    for base_url in serve(tmp_path, engines, {"candidates": ["m", "big"], "router": {}}):
        raw = ask(base_url)
        assert raw.headers["x-spillover-model"] == "big" and raw.headers["x-spillover-route-reason"] == "router_unavailable"


@pytest.mark.parametrize(("routing", "field"), [
    ({"candidates": ["m", "big"], "router": {"kind": "forest"}}, "routes.auto.routing.router.kind"),
    ({"candidates": [], "cascade": {}}, "routes.auto.routing.candidates"),
    ({"candidates": ["m", "big"], "cascade": {"checks": ["vibes"]}}, "routes.auto.routing.cascade.checks.0"),
])
def test_a_bad_routing_block_fails_at_start_naming_the_field(tmp_path: Path, routing: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        routed_config(tmp_path, routing)
    message = str(raised.value)
    assert field in message and "\n" not in message


def test_a_candidate_that_is_not_a_route_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown route 'gpt-9'"):
        routed_config(tmp_path, {"candidates": ["m", "gpt-9"], "cascade": {}})


def test_route_spend_counts_the_abandoned_attempt_beside_the_strongest_candidates_cost(
        cascade: str, engines: ScriptedEngines) -> None:
    cut = completion("cheap ans")
    cut["choices"][0]["finish_reason"] = "length"
    engines.scripts["m"] = [cut]
    ask(cascade)
    ask(cascade, extra_headers={"X-Spillover-Model": "big"})
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(cascade + "/metrics").text)}

    def value(family: str, **labels: str) -> float:
        return sum(s.value for s in families[family].samples if s.name.endswith("_total") and labels.items() <= s.labels.items())

    # Both candidates are local here, priced at the ceiling on the same usage: the escalated request
    # paid twice what the strongest alone would have, the pinned one the same.
    spent, strongest = value("spillover_route_cost_usd", route="auto"), value("spillover_route_strongest_cost_usd", route="auto")
    assert strongest > 0 and spent == pytest.approx(1.5 * strongest)
    assert value("spillover_route_decisions", route="auto", tier="strong") == 2
    assert value("spillover_route_escalations", route="auto", from_model="m", check="not_truncated") == 1


def test_a_second_sample_that_agrees_keeps_the_cheap_answer_and_is_billed_as_an_attempt(
        tmp_path: Path, engines: ScriptedEngines) -> None:
    engines.scripts["m"] = [completion("The total is 12.\n#### 12")]
    for base_url in serve(tmp_path, engines, {"candidates": ["m", "big"], "cascade": {"checks": ["final_answer"], "second_sample": True}}):
        raw = ask(base_url, seed=5)
        assert raw.headers["x-spillover-route-reason"] == "cascade_accepted" and engines.models_called == ["m", "m"]
        resample = engines.bodies[-1]
        assert resample["temperature"] == 1.0 and "seed" not in resample
        rows = ledger(tmp_path, 2)
        served = next(r for r in rows if r.attempt_of is None)
        assert [r.attempt_of for r in rows if r.attempt_of] == [served.request_id]


def test_the_confidence_check_asks_for_logprobs_and_an_answer_without_them_escalates(tmp_path: Path, engines: ScriptedEngines) -> None:
    for base_url in serve(tmp_path, engines, {"candidates": ["m", "big"], "cascade": {"checks": [], "min_mean_logprob": -1.0}}):
        raw = ask(base_url)
        assert raw.headers["x-spillover-escalations"] == "m:confident"
        assert engines.bodies[0]["logprobs"] is True and "logprobs" not in engines.bodies[1]


def test_a_pinned_request_is_not_answered_from_the_routed_answer_s_cache_entry(cascade: str, engines: ScriptedEngines) -> None:
    assert ask(cascade, temperature=0).parse().choices[0].message.content == "cheap answer"
    assert ask(cascade, temperature=0).headers["x-spillover-cache"] == "hit-exact"
    pinned = ask(cascade, temperature=0, extra_headers={"X-Spillover-Model": "big"})
    assert pinned.parse().choices[0].message.content == "strong answer" and pinned.headers["x-spillover-cache"] == "miss"
