"""The alert rules' readings over real ledger rows (both stores), and the evaluator's pass."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from costbook.config import BudgetConfig
from monitor.alerting import AlertBook
from monitor.config import AlertsConfig, MonitorConfig, RateRule, SpendRule
from monitor.evaluator import Monitor, alert_rows
from monitor.signals import budget_readings, rate_readings, spend_readings
from tests.costbook.rows import open_ledger, row

NOW = dt.datetime(2026, 11, 28, 12, 30, tzinfo=dt.UTC)


def spent(request_id: str, ago: dt.timedelta, usd: float, **fields: object):  # noqa: ANN201
    return dataclasses.replace(row(request_id), at=NOW - ago, cost_micro_usd=round(usd * 1e6), **fields)


def history(usd_per_hour: float, team: str = "a", user: str = "ann") -> list:
    """The same hour of each of the last 7 days, spending ``usd_per_hour``."""
    return [spent(f"{team}-{user}-d{d}", dt.timedelta(days=d, minutes=30), usd_per_hour, team=team, user_name=user) for d in range(1, 8)]


def test_spend_against_the_same_hours_of_the_last_week(ledger_url: str) -> None:
    store = open_ledger(ledger_url)
    try:
        store.insert(history(1.0) + history(1.0, team="b", user="bob") + [
            spent("now-a", dt.timedelta(minutes=20), 3.0, team="a", user_name="ann"),
            spent("now-b", dt.timedelta(minutes=20), 1.1, team="b", user_name="bob"),
            spent("new", dt.timedelta(minutes=10), 0.5, team="c", user_name="cy"),  # no history, under the floor
        ])
        with store.engine.connect() as connection:
            readings = {o.id: o for o in spend_readings(connection, SpendRule(scopes=["global", "team", "user"]), NOW)}
    finally:
        store.engine.dispose()
    assert readings["spend_spike:team:a"].breaching() and readings["spend_spike:team:a"].value == 3.0
    assert readings["spend_spike:team:a"].threshold == 2.0 and "3.0x" in readings["spend_spike:team:a"].summary
    assert readings["spend_spike:user:ann"].breaching()
    assert not readings["spend_spike:team:b"].breaching()
    assert readings["spend_spike:global:"].breaching() and readings["spend_spike:global:"].value == 4.6, "4.6 against 2.0 an hour"
    assert not readings["spend_spike:team:c"].eligible and not readings["spend_spike:team:c"].breaching()


def test_error_cache_and_spill_shares_against_their_baseline(ledger_url: str) -> None:
    store = open_ledger(ledger_url)
    rows = []
    for i in range(200):  # the day before: 1% errors, 40% cache hits, 10% spilled
        rows.append(spent(f"b{i}", dt.timedelta(hours=1 + i * 0.1), 0.0, status="error" if i % 100 == 0 else "ok",
                          cache_result="exact" if i % 5 < 2 else "miss", destination="openai" if i % 10 == 0 else "local"))
    for i in range(60):  # the last 5 minutes: 10% errors, 20% cache hits, 50% spilled
        rows.append(spent(f"w{i}", dt.timedelta(seconds=5 * i + 1), 0.0, status="error" if i % 10 == 0 else "ok",
                          cache_result="exact" if i % 5 == 0 else "miss", destination="openai" if i % 2 == 0 else "local"))
    try:
        store.insert(rows)
        defaults = AlertsConfig()
        rules = {name: rule.model_copy(update={"min_requests": 50}) for name, rule in (
            ("cache_hit_drop", defaults.cache_hit_drop), ("error_spike", defaults.error_spike), ("spill_spike", defaults.spill_spike))}
        with store.engine.connect() as connection:
            readings = {o.rule: o for o in rate_readings(connection, rules, NOW)}
            strict = RateRule(direction="above", factor=3, resolve_factor=2, floor=0.05, min_requests=1000)
            too_few = rate_readings(connection, {"error_spike": strict}, NOW)[0]
    finally:
        store.engine.dispose()
    assert readings["error_spike"].breaching() and readings["error_spike"].value == 0.1
    assert readings["error_spike"].threshold == 0.05, "3x of 1% is under the 5% floor: the floor stands"
    assert readings["cache_hit_drop"].breaching() and readings["cache_hit_drop"].threshold == 0.28
    assert readings["spill_spike"].breaching() and readings["spill_spike"].value == 0.5
    assert too_few.value == 0.1 and not too_few.breaching(), "60 requests in the widest window (30 min), 1000 asked for"
    assert "over the last 30 min" in too_few.summary


def test_budget_thresholds_read_the_ledger(ledger_url: str) -> None:
    store = open_ledger(ledger_url)
    try:
        store.insert([spent("t1", dt.timedelta(hours=2), 8.5, team="a"), spent("yesterday", dt.timedelta(hours=14), 50.0, team="a")])
        with store.engine.connect() as connection:
            readings = budget_readings(connection, [BudgetConfig(scope="team", name="a", daily_usd=10.0)], [0.8, 0.9, 1.0], NOW)
    finally:
        store.engine.dispose()
    assert [(o.rule, o.subject, o.breaching()) for o in readings] == [
        ("budget_80", "a/day", True), ("budget_90", "a/day", False), ("budget_100", "a/day", False)]
    assert "$8.50 of its $10.00 day budget" in readings[0].summary


async def test_one_evaluator_among_replicas_and_the_next_one_carries_on(ledger_url: str) -> None:
    store = open_ledger(ledger_url)
    config = MonitorConfig(alerts=AlertsConfig(for_evaluations=1, spend=SpendRule(scopes=["team"])))
    try:
        store.insert(history(1.0) + [spent("now-a", dt.timedelta(minutes=20), 3.0, team="a")])
        first = Monitor(config, store.engine, [], holder="replica-1")
        second = Monitor(config, store.engine, [], holder="replica-2")
        fired = await first.run_once(NOW)
        assert [t.kind for t in fired or []] == ["fire"]
        assert await second.run_once(NOW) is None, "the lease is replica-1's"
        assert [a["state"] for a in alert_rows(store.engine, NOW)] == ["firing"]
        first._lease.release()  # replica-1 went away
        assert await second.run_once(NOW + dt.timedelta(minutes=1)) == [], "replica-2 knows the alert already fired"
    finally:
        store.engine.dispose()


def test_a_malformed_rule_fails_at_start_naming_its_field() -> None:
    from contracts.errors import ConfigError
    from spillover.config import parse_config

    with pytest.raises(ConfigError, match="monitor.alerts.spend"):
        parse_config({"models": [{"name": "m", "source": "builtin:m"}], "monitor": {"alerts": {"spend": {"factor": 2, "resolve_factor": 3}}}})
    with pytest.raises(ConfigError, match="cache_hit_drop"):
        parse_config({"models": [{"name": "m", "source": "builtin:m"}],
                      "monitor": {"alerts": {"cache_hit_drop": {"direction": "below", "factor": 0.7, "resolve_factor": 0.5}}}})
    with pytest.raises(ConfigError, match="webhooks"):
        parse_config({"models": [{"name": "m", "source": "builtin:m"}], "monitor": {"alerts": {"webhooks": [{"url": "https://x"}]}}})


def test_alert_book_defaults_follow_the_config() -> None:
    rules = AlertsConfig()
    book = AlertBook(rules.for_evaluations, rules.resolve_evaluations, rules.repeat_s)
    assert (book.for_evaluations, book.resolve_evaluations, book.repeat_s) == (2, 3, 4 * 3600)
