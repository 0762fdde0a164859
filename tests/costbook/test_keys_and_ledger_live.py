"""Keys, the admin API and the ledger in the running ingress app: two app instances over one
SQLite store stand for two ingress replicas. The engines are scripted; the store is real."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from contracts.engine_state import ReplicaInterval, interval_start
from spillover.app import create_app
from stores.sql_schema import ledger_table, local_intervals_table
from tests.helpers import UvicornThread, wait_for
from tests.serving.scripted_engines import ScriptedEngines, completion, scripted_config

ADMIN = "sk-admin-test-7f3a"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "x"}]}


@pytest.fixture
def replicas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    monkeypatch.setenv("SPILLOVER_ADMIN_KEY", ADMIN)
    config = scripted_config({
        "SPILLOVER__AUTH__ENABLED": "true",
        "SPILLOVER__STORES__SQLITE_PATH": str(tmp_path / "spillover.db"),
        "SPILLOVER__STORES__SPOOL_DIR": str(tmp_path / "spool"),
        "SPILLOVER__AUTH__SECRET_FILE": str(tmp_path / "key-secret"),
        "SPILLOVER__COSTS__BUDGETS": "[{scope: team, name: ads, daily_usd: 2.5}]",
        "SPILLOVER__COSTS__LOCAL_INTERVAL_S": "5",
    })
    engines = ScriptedEngines()
    engines.script = [completion("ok")]
    # One replica up throughout, its engine busy 2 s in every 5.
    now = interval_start(time.time(), 5)
    engines.replica_intervals = [ReplicaInterval("m", "r1", now + t, 5.0, 2.0) for t in range(-60, 180, 5)]
    with UvicornThread(create_app(config, engines, keys_and_costs=True)) as a, \
            UvicornThread(create_app(config, engines, keys_and_costs=True)) as b:
        yield [a.base_url, b.base_url]


def admin(method: str, url: str, key: str = ADMIN, **kwargs: object) -> httpx.Response:
    return httpx.request(method, url, headers={"authorization": f"Bearer {key}"}, timeout=10, **kwargs)


def chat(base_url: str, key: str) -> openai.types.chat.ChatCompletion:
    client = openai.OpenAI(base_url=base_url + "/v1", api_key=key, max_retries=0)
    return client.chat.completions.create(**CHAT, extra_headers={"x-feature": "search"})


def test_a_created_key_works_everywhere_and_a_revocation_reaches_every_replica_within_5_s(
        replicas: list[str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    a, b = replicas
    created = admin("POST", a + "/admin/keys", json={"user": "ana", "team": "search", "budget_usd": 5, "rpm": 60})
    assert created.status_code == 201, created.text
    key, key_id = created.json()["key"], created.json()["key_id"]
    assert key.startswith("sk-sp-") and len(key) >= 6 + 43, "32 random bytes, URL-safe"
    wait_for(lambda: _works(b, key), timeout_s=5, what="the new key on the second replica")
    listed = admin("GET", a + "/admin/keys").json()["data"]
    assert [k["key_id"] for k in listed] == [key_id] and "key" not in listed[0] and "digest" not in listed[0]

    assert admin("DELETE", b + f"/admin/keys/{key_id}").json() == {"key_id": key_id, "revoked": True}
    wait_for(lambda: not _works(a, key), timeout_s=5, what="the revocation on the first replica")
    with pytest.raises(openai.AuthenticationError):
        chat(b, key)
    assert admin("DELETE", a + f"/admin/keys/{key_id}").status_code == 404
    assert key not in caplog.text and ADMIN not in caplog.text


def _works(base_url: str, key: str) -> bool:
    try:
        return bool(chat(base_url, key).choices)
    except openai.AuthenticationError:
        return False


@pytest.mark.parametrize(("key", "status"), [(None, 401), ("sk-wrong", 403), ("user", 403)])
def test_the_admin_api_refuses_everyone_but_the_admin(replicas: list[str], key: str | None, status: int) -> None:
    a, _ = replicas
    if key == "user":
        key = admin("POST", a + "/admin/keys", json={"user": "bo"}).json()["key"]
    headers = {} if key is None else {"authorization": f"Bearer {key}"}
    response = httpx.post(a + "/admin/keys", json={"user": "mallory"}, headers=headers)
    assert response.status_code == status
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_bad_admin_input_is_400_with_the_param(replicas: list[str]) -> None:
    response = admin("POST", replicas[0] + "/admin/keys", json={"user": "x", "rpm": 0})
    assert response.status_code == 400 and response.json()["error"]["param"] == "rpm"


def test_each_request_becomes_one_ledger_row_with_its_principal(replicas: list[str], tmp_path: Path) -> None:
    a, b = replicas
    key = admin("POST", a + "/admin/keys", json={"user": "cy", "team": "ads"}).json()["key"]
    wait_for(lambda: _works(b, key), timeout_s=5, what="the key on the second replica")
    ids = [chat(url, key).id for url in (a, b, a)]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'spillover.db'}")

    def rows() -> list[sa.Row]:
        with engine.connect() as connection:
            return list(connection.execute(sa.select(ledger_table).where(ledger_table.c.user_name == "cy")))

    wait_for(lambda: len(rows()) >= 4, timeout_s=5, what="the rows in the database")  # three + the probe
    found = rows()
    engine.dispose()
    assert {(r.team, r.feature, r.status, r.destination) for r in found} == {("ads", "search", "ok", "local")}
    assert len({r.request_id for r in found}) == len(found) and len(ids) == 3


def test_spend_and_team_budgets_reach_the_metrics_and_the_budget_endpoint(replicas: list[str]) -> None:
    a, _ = replicas
    key = admin("POST", a + "/admin/keys", json={"user": "di", "team": "ads", "budget_usd": 1}).json()["key"]
    wait_for(lambda: _works(a, key), timeout_s=5, what="the key")
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(a + "/metrics").text)}
    tokens = {(s.labels["team"], s.labels["feature"], s.labels["destination"], s.labels["kind"]): s.value
              for s in families["spillover_tokens"].samples if s.name.endswith("_total")}
    assert tokens[("ads", "search", "local", "completion")] > 0
    assert "spillover_cost_usd" in families, "local work is priced later; the series exists"
    budget = {(s.labels["team"], s.labels["period"]): s.value for s in families["spillover_budget_remaining_usd"].samples}
    provisional = 5 / 1e6  # 5 tokens at the $1-per-million ceiling, until the replica time is shared out
    assert budget == {("ads", "day"): pytest.approx(2.5 - provisional)}, "local work settled to its provisional cost"
    assert [s.value for s in families["spillover_budget_soft_limit"].samples] == [0.0]
    mine = httpx.get(a + "/v1/budget", headers={"authorization": f"Bearer {key}"}).json()
    assert (mine["user"], mine["team"]) == ("di", "ads")
    assert {(b["scope"], b["period"], b["limit_usd"], b["remaining_usd"]) for b in mine["budgets"]} == {
        ("key", "month", 1.0, 1.0 - provisional), ("team", "day", 2.5, 2.5 - provisional)}
    assert httpx.get(a + "/v1/budget").status_code == 401


def test_local_rows_are_priced_from_replica_time_once_and_budgets_and_metrics_follow(replicas: list[str], tmp_path: Path) -> None:
    a, b = replicas
    key = admin("POST", a + "/admin/keys", json={"user": "ed", "team": "ads"}).json()["key"]
    wait_for(lambda: _works(b, key), timeout_s=5, what="the key on the second replica")
    for url in (a, b, a, b):
        chat(url, key)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'spillover.db'}")

    def priced() -> list[sa.Row]:
        with engine.connect() as connection:
            rows = list(connection.execute(sa.select(ledger_table).where(ledger_table.c.user_name == "ed")))
        return rows if rows and all(r.price_version != "gpu:pending" for r in rows) else []

    wait_for(lambda: len(priced()) >= 5, timeout_s=40, what="the local rows priced (interval 5 s + 10 s grace)")
    rows = priced()
    with engine.connect() as connection:
        intervals = list(connection.execute(sa.select(local_intervals_table)))
        team_spend = connection.execute(sa.select(sa.func.sum(ledger_table.c.cost_micro_usd)).where(ledger_table.c.team == "ads")).scalar_one()
    engine.dispose()
    assert all(r.cost_micro_usd > 0 for r in rows), "each request took a share of the busy replica time"
    assert intervals and all(i.attributed_micro_usd + i.idle_micro_usd == i.cost_micro_usd for i in intervals)
    assert sum(i.cost_micro_usd for i in intervals) == sum(round(i.up_s * 0.04 / 3600 * 1e6) for i in intervals), "1 CPU at $0.04/hour"
    scraped = [httpx.get(url + "/metrics").text for url in (a, b)]
    local_cost = sum(s.value for text in scraped for f in text_string_to_metric_families(text) if f.name == "spillover_cost_usd"
                     for s in f.samples if s.name.endswith("_total") and s.labels["destination"] == "local")
    idle = sum(s.value for text in scraped for f in text_string_to_metric_families(text) if f.name == "spillover_local_idle_cost_usd"
               for s in f.samples if s.name.endswith("_total"))
    assert local_cost > 0 and idle > 0
    # Without Redis each replica counts in process: together they hold the team's spend.
    spent = sum(b["spent_usd"] for url in (a, b) for b in httpx.get(url + "/v1/budget", headers={"authorization": f"Bearer {key}"}).json()["budgets"]
                if b["scope"] == "team")
    assert spent == pytest.approx(team_spend / 1e6, abs=1e-9), "the team's budget counters follow the priced ledger"
