"""The ledger evaluator's default rules and the PrometheusRules agree: the same traffic, as
ledger rows for one and as counter series for the other (promtool), fires or stays silent in both.

Each scenario is per-minute (rates) or per-10-minute (spend) traffic, uniform within its window
and its baseline, so Prometheus's range extrapolation and the ledger's exact counts read the
same shares. The ledger decides first; the promtool case expects exactly what it decided.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from monitor.config import AlertsConfig
from monitor.signals import rate_readings, spend_readings
from tests.costbook.rows import open_ledger, row
from tests.k8s.manifests import BASE, rule_groups, tool

RULES = BASE / "monitoring" / "spillover.rules.yaml"
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
ALERT_OF = {"error_spike": "SpilloverErrorRateIncreasing", "cache_hit_drop": "SpilloverCacheHitRateDrop",
            "spill_spike": "SpilloverSpillShareSpike", "spend_spike": "SpilloverSpendSpike"}
#: Per minute: (ok local, errors, cache hits, spilled) requests.
Minute = tuple[int, int, int, int]
RATE_MINUTES = 1450


def rate_traffic(baseline: Minute, window: Minute) -> Callable[[int], Minute]:
    """24 h of ``baseline`` traffic (one minute in every 30), then 10 minutes of ``window``."""
    def at(minute: int) -> Minute:
        if minute >= RATE_MINUTES - 10:
            return window
        return baseline if minute % 30 == 0 else (0, 0, 0, 0)
    return at


RATE_SCENARIOS = {
    "errors 1% -> 10%": rate_traffic((99, 1, 0, 0), (45, 5, 0, 0)),
    "errors 2% -> 3%": rate_traffic((98, 2, 0, 0), (97, 3, 0, 0)),
    "cache 40% -> 10%": rate_traffic((60, 0, 40, 0), (54, 0, 6, 0)),
    "cache 40% -> 35%": rate_traffic((60, 0, 40, 0), (39, 0, 21, 0)),
    "spills 10% -> 50%": rate_traffic((90, 0, 0, 10), (30, 0, 0, 30)),
    "spills 10% -> 15%": rate_traffic((90, 0, 0, 10), (51, 0, 0, 9)),
}


def rate_rows(traffic: Callable[[int], Minute]) -> tuple[list, dict[str, list[int]]]:
    rows, counters = [], {"ok": [0], "error": [0], "cache": [0], "spilled": [0]}
    for minute in range(RATE_MINUTES):
        counts = traffic(minute)
        for kind, n in zip(counters, counts, strict=True):
            counters[kind].append(counters[kind][-1] + n)
            for i in range(n):
                at = T0 + dt.timedelta(minutes=minute, seconds=i * 50 / max(n, 1) + 1)
                fields = {"ok": {"destination": "local"}, "error": {"destination": "local", "status": "error"},
                          "cache": {"destination": "cache", "cache_result": "exact"}, "spilled": {"destination": "openai"}}[kind]
                rows.append(dataclasses.replace(row(f"{minute}-{kind}-{i}"), at=at, cost_micro_usd=0, **fields))
    return rows, counters


def rate_series(counters: dict[str, list[int]]) -> list[dict[str, str]]:
    labels = {"ok": 'destination="local",reason="local_ok",status="ok"', "error": 'destination="local",reason="local_ok",status="error"',
              "cache": 'destination="cache",reason="local_ok",status="ok"', "spilled": 'destination="openai",reason="predicted_wait",status="ok"'}
    return [{"series": f'spillover_requests_total{{model="m",{labels[k]}}}', "values": " ".join(map(str, v))} for k, v in counters.items()]


def promtool_agrees(tmp_path: Path, cases: list[dict], evaluation_interval: str = "1m") -> None:
    import subprocess

    (tmp_path / "spillover.rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups(RULES)}, sort_keys=False))
    (tmp_path / "agree.test.yaml").write_text(yaml.safe_dump({"rule_files": ["spillover.rules.yaml"], "evaluation_interval": evaluation_interval,
                                                                "tests": cases}, sort_keys=False))
    result = subprocess.run([tool("promtool"), "test", "rules", "agree.test.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def expected(alertname: str, fires: bool, at: str) -> dict:
    check: dict = {"eval_time": at, "alertname": alertname}
    if fires:
        rule = next(r for g in rule_groups(RULES) for r in g["rules"] if r.get("alert") == alertname)
        check["exp_alerts"] = [{"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]}]
    return check


def test_rate_rules_agree(tmp_path: Path) -> None:
    rules = AlertsConfig()
    by_rule = {"cache_hit_drop": rules.cache_hit_drop, "error_spike": rules.error_spike, "spill_spike": rules.spill_spike}
    cases, verdicts = [], {}
    for name, traffic in RATE_SCENARIOS.items():
        rows, counters = rate_rows(traffic)
        store = open_ledger(f"sqlite:///{tmp_path / (name.replace(' ', '_').replace('%', '').replace('>', '') + '.db')}")
        try:
            store.insert(rows)
            with store.engine.connect() as connection:
                readings = {o.rule: o for o in rate_readings(connection, by_rule, T0 + dt.timedelta(minutes=RATE_MINUTES))}
        finally:
            store.engine.dispose()
        verdicts[name] = {rule: o.breaching() for rule, o in readings.items()}
        cases.append({"name": name, "interval": "1m", "input_series": rate_series(counters),
                      "alert_rule_test": [expected(ALERT_OF[rule], fires, f"{RATE_MINUTES}m") for rule, fires in verdicts[name].items()]})
    # The scenarios mean something only if the ledger saw each rule both fire and stay silent.
    assert verdicts["errors 1% -> 10%"]["error_spike"] and not verdicts["errors 2% -> 3%"]["error_spike"]
    assert verdicts["cache 40% -> 10%"]["cache_hit_drop"] and not verdicts["cache 40% -> 35%"]["cache_hit_drop"]
    assert verdicts["spills 10% -> 50%"]["spill_spike"] and not verdicts["spills 10% -> 15%"]["spill_spike"]
    promtool_agrees(tmp_path, cases)


SPEND_STEPS = 8 * 24 * 6 + 6  # ten-minute steps: a week of history, its eighth day, and the hour judged


@pytest.mark.parametrize(("name", "usual", "last_hour", "fires"), [
    ("an hour at 3x", 0.3, 0.9, True), ("an hour at 1.5x", 0.3, 0.45, False), ("under the $1 floor at 5x", 0.02, 0.1, False)])
def test_spend_rule_agrees(tmp_path: Path, name: str, usual: float, last_hour: float, fires: bool) -> None:
    """Spend per ten minutes: ``usual`` for eight days, ``last_hour`` for the last hour."""
    store = open_ledger(f"sqlite:///{tmp_path / 'spend.db'}")
    rows, total, values = [], 0.0, ["0"]
    for step in range(SPEND_STEPS):
        usd = last_hour if step >= SPEND_STEPS - 6 else usual
        rows.append(dataclasses.replace(row(f"s{step}"), at=T0 + dt.timedelta(minutes=10 * step, seconds=1), cost_micro_usd=round(usd * 1e6)))
        total += usd
        values.append(f"{total:.6f}")
    try:
        store.insert(rows)
        with store.engine.connect() as connection:
            readings = spend_readings(connection, AlertsConfig().spend.model_copy(update={"scopes": ["global"]}),
                                      T0 + dt.timedelta(minutes=10 * SPEND_STEPS))
    finally:
        store.engine.dispose()
    assert [o.breaching() for o in readings] == [fires]
    series = [{"series": 'spillover_cost_usd_total{team="t",feature="none",model="m",destination="openai"}', "values": " ".join(values)}]
    promtool_agrees(tmp_path, [{"name": name, "interval": "10m", "input_series": series,
                                "alert_rule_test": [expected("SpilloverSpendSpike", fires, f"{10 * SPEND_STEPS}m")]}], "5m")
