"""Experiments through the running ingress (scripted engines, the real pipeline, SQLite): a
variant is a route's settings and nothing else, rows carry their variant, feedback lands on the
right row and only from its own key, the admin API starts and stops a split."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa

from experiments.config import ExperimentConfig
from experiments.report import experiment_report, outcomes
from spillover.app import create_app
from spillover.config import RouteConfig, SpilloverConfig, parse_config
from spillover.experiment_routes import variant_route_name, with_experiment_routes
from stores.sql_schema import feedback_table, ledger_table
from tests.costlevers.test_batch_app import ADMIN, config, new_key
from tests.helpers import UvicornThread, wait_for
from tests.serving.scripted_engines import ScriptedEngines, completion

AB = ExperimentConfig.model_validate({"route": "m", "variants": {"cached": {"weight": 1}, "uncached": {"weight": 1, "settings": {
    "cache": {"enabled": False}}}}})


def with_experiment(base: SpilloverConfig, experiment: ExperimentConfig = AB) -> SpilloverConfig:
    return parse_config({**base.model_dump(mode="json"), "experiments": {"ab": experiment.model_dump(mode="json")}})


def test_a_variant_changes_the_settings_it_names_and_nothing_else(tmp_path: Path) -> None:
    base = config(tmp_path)
    raw = base.model_dump(mode="json")
    raw["models"].append({**raw["models"][0], "name": "big"})
    raw["routes"]["auto"] = {"routing": {"candidates": ["m", "big"], "cascade": {"checks": ["not_truncated"]}}}
    raw["routes"]["m"] = {**raw["routes"].get("m", {}), "compression": {"ratio": 2}}
    raw["experiments"] = {
        "ab": {"route": "m", "variants": {"control": {"weight": 1}, "ratio3": {"weight": 1, "settings": {"compression": {"ratio": 3}}},
                                          "off": {"weight": 1, "holdout": True}}},
        "routed": {"route": "auto", "variants": {"control": {"weight": 1}, "holdout": {"weight": 1, "holdout": True}}},
    }
    expanded, plans = with_experiment_routes(parse_config(raw))
    routes = expanded.routes
    own = routes["m"].model_dump()
    ratio3 = routes[variant_route_name("m", "ab", "ratio3")].model_dump()
    assert ratio3["compression"]["ratio"] == 3 and ratio3["local_model"] == "m"
    assert {k: v for k, v in ratio3.items() if k not in ("compression", "local_model", "aliases")} == \
        {k: v for k, v in own.items() if k not in ("compression", "local_model", "aliases")}
    off = routes[variant_route_name("m", "ab", "off")]
    assert off.compression is None and off.cache.enabled is False and off.cache.semantic is False
    routed_holdout = routes[variant_route_name("auto", "routed", "holdout")]
    assert routed_holdout.routing is None and routed_holdout.local_model == "big"  # the strongest candidate, levers off
    assert plans["m"].variant_routes["control"] == variant_route_name("m", "ab", "control")
    assert set(RouteConfig.LEVERS_OFF) <= set(RouteConfig.model_fields)


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, ScriptedEngines, sa.Engine]]:
    monkeypatch.setenv("SPILLOVER_ADMIN_KEY", ADMIN)
    engines = ScriptedEngines()
    engines.script = [completion("answer")]
    with UvicornThread(create_app(with_experiment(config(tmp_path)), engines, keys_and_costs=True)) as app:
        yield app.base_url, engines, sa.create_engine(f"sqlite:///{tmp_path / 'spillover.db'}")


def ask(client: openai.OpenAI, text: str) -> Any:
    return client.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": text}], temperature=0,
                                                            max_tokens=4)


def rows(engine: sa.Engine, expected: int) -> list[Any]:
    def enough() -> bool:
        with engine.connect() as c:
            return c.execute(sa.select(sa.func.count()).select_from(ledger_table)).scalar() >= expected
    wait_for(enough, timeout_s=15, what=f"{expected} ledger rows")
    with engine.connect() as c:
        return list(c.execute(sa.select(ledger_table)))


def test_rows_carry_their_variant_and_the_variant_settings_apply(served: tuple[str, ScriptedEngines, sa.Engine]) -> None:
    base_url, engines, engine = served
    clients = {user: new_key(base_url, user) for user in ("u1", "u2", "u3", "u4", "u5", "u6")}
    for user, client in clients.items():
        for _ in range(2):  # the same deterministic question twice: a cache hit where the variant caches
            ask(client, f"what is {user}?")
    ledger = rows(engine, 12)
    by_user: dict[str, set[str]] = {}
    for r in ledger:
        assert r.experiment == "ab" and r.model_asked == "m" and r.prompt_hash
        by_user.setdefault(r.user_name, set()).add(r.variant)
    assert all(len(v) == 1 for v in by_user.values()), by_user  # sticky per user
    variants = {u: next(iter(v)) for u, v in by_user.items()}
    assert set(variants.values()) == {"cached", "uncached"}, "6 users should land in both halves (fixed hashes)"
    for user, variant in variants.items():
        results = sorted(r.cache_result for r in ledger if r.user_name == user)
        assert results == (["exact", "miss"] if variant == "cached" else ["bypass", "bypass"]), (user, results)
    assert all(r.finish_reason == "stop" for r in ledger if r.cache_result != "exact")


def test_feedback_lands_on_its_row_and_only_from_its_own_key(served: tuple[str, ScriptedEngines, sa.Engine]) -> None:
    base_url, _, engine = served
    ana, bob = new_key(base_url, "ana"), new_key(base_url, "bob")
    request_id = ask(ana, "hello").headers["x-request-id"]
    post = lambda client, body: httpx.post(base_url + "/v1/feedback", json=body,  # noqa: E731
                                           headers={"authorization": f"Bearer {client.api_key}"})
    stolen = post(bob, {"request_id": request_id, "thumbs": "down"})
    assert stolen.status_code == 404 and stolen.json()["error"]["code"] == "request_not_found"
    assert post(ana, {"request_id": request_id, "score": 2}).status_code == 400  # out of range
    assert post(ana, {"request_id": request_id}).status_code == 400  # neither score nor thumbs
    ok = post(ana, {"request_id": request_id, "thumbs": "up", "label": "helpful"})
    assert ok.status_code == 200 and ok.json()["score"] == 1.0
    with engine.connect() as c:
        stored = c.execute(sa.select(feedback_table)).all()
    assert [(f.request_id, f.score, f.label) for f in stored] == [(request_id, 1.0, "helpful")]
    with engine.connect() as c:
        found = outcomes(c, "ab")
    assert [o.feedback for o in found] == [1.0]
    report = experiment_report("ab", AB, found)
    assert sum(v["requests"] for v in report["variants"].values()) == 1


def test_admin_stops_and_starts_the_split_and_variant_routes_are_not_public(served: tuple[str, ScriptedEngines, sa.Engine]) -> None:
    base_url, _, engine = served
    admin = {"authorization": f"Bearer {ADMIN}"}
    client = new_key(base_url, "carol")
    listed = httpx.get(base_url + "/admin/experiments", headers=admin).json()["data"]
    assert [(e["name"], e["running"]) for e in listed] == [("ab", True)]
    assert httpx.post(base_url + "/admin/experiments/ab/stop", headers=admin).json()["running"] is False
    ask(client, "while stopped")
    assert httpx.post(base_url + "/admin/experiments/ab/start", headers=admin).json()["running"] is True
    ask(client, "while running")
    ledger = sorted(rows(engine, 2), key=lambda r: r.at)
    assert [r.experiment for r in ledger] == [None, "ab"]
    assert httpx.post(base_url + "/admin/experiments/nope/stop", headers=admin).status_code == 404
    assert httpx.post(base_url + "/admin/experiments/ab/stop", headers={"authorization": f"Bearer {client.api_key}"}).status_code == 403
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=variant_route_name("m", "ab", "cached"), messages=[{"role": "user", "content": "x"}])
    assert all("~" not in m.id for m in client.models.list())
    report = httpx.get(base_url + "/admin/experiments/ab/report", headers=admin).json()
    assert report["experiment"] == "ab" and sum(v["requests"] for v in report["variants"].values()) == 1
    time.sleep(0)  # the report reads the ledger as it stands


def test_a_cascade_attempt_carries_the_variant_and_its_cost_counts_for_the_request(tmp_path: Path) -> None:
    from tests.costlevers.test_routing_app import routed_config

    base = routed_config(tmp_path, {"candidates": ["m", "big"], "cascade": {"checks": ["not_truncated"]}})
    experiment = ExperimentConfig.model_validate({"route": "auto", "variants": {"cascade": {"weight": 1}, "also": {"weight": 1}}})
    engines = ScriptedEngines()
    cut = completion("cheap ans", completion_tokens=7)
    cut["choices"][0]["finish_reason"] = "length"
    engines.scripts = {"m": [cut], "big": [completion("strong answer")]}
    with UvicornThread(create_app(with_experiment(base, experiment), engines, keys_and_costs=True)) as app:
        client = openai.OpenAI(base_url=app.base_url + "/v1", api_key="none", max_retries=0)
        assert client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "Which city?"}]
                                              ).choices[0].message.content == "strong answer"
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'spillover.db'}")
        ledger = rows(engine, 2)
    served = next(r for r in ledger if r.attempt_of is None)
    attempt = next(r for r in ledger if r.attempt_of is not None)
    assert (served.experiment, attempt.experiment) == ("ab", "ab") and served.variant == attempt.variant
    assert attempt.finish_reason == "length" and served.escalations == "m:not_truncated"
    with engine.connect() as c:
        [outcome] = outcomes(c, "ab")
    assert outcome.cost_usd == pytest.approx((served.cost_micro_usd + attempt.cost_micro_usd) / 1e6) and outcome.escalated
    assert outcome.good == 0.0
