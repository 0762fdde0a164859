"""``spillover costs report`` over real ledger rows, on both stores."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from contracts.batch import BatchLine
from contracts.context import Api, RequestContext, Status, Usage
from contracts.engine_state import ReplicaInterval
from contracts.spill import LOCAL
from costbook.ledger import Pricer
from costbook.local_cost import LocalCostAllocator
from costbook.prices import DEFAULT_PRICES, PriceTable
from costbook.report import parse_since, render, report_rows
from spillover.cli import main
from tests.costbook.rows import open_ledger
from tests.costbook.rows import row


def rows() -> list:
    local = dataclasses.replace(row("l1", cost=0, team="t2"), destination="local", model_served="m", spill_reason="local_ok")
    cancelled = dataclasses.replace(row("h3", cost=40), status="cancelled")
    failed = dataclasses.replace(row("h4", cost=0, team="t2"), status="error", destination=None)
    hit = dataclasses.replace(row("c1", cost=0), cache_result="exact")
    old = dataclasses.replace(row("old", cost=10**9), at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    return [row("h1", cost=1_500_000), row("h2", cost=250), cancelled, local, failed, hit, old]


def test_groups_costs_tokens_spill_and_waste(ledger_url: str) -> None:
    store = open_ledger(ledger_url)
    try:
        store.insert(rows())
        allocator = LocalCostAllocator(store.engine, {"m": Decimal("3.6")}, "v-test", interval_s=60)
        start = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC).timestamp()
        allocator.allocate([ReplicaInterval("m", "r1", start, 60.0, 0.0)], start + 120)  # $0.06, all idle
        with store.engine.connect() as connection:
            by_team = {r["team"]: r for r in report_rows(connection, "team", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))}
            by_model = {r["model"]: r for r in report_rows(connection, "model", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))}
    finally:
        store.engine.dispose()
    idle = by_team.pop("(idle local capacity)")
    assert (idle["requests"], idle["cost_usd"], idle["waste_usd"]) == (0, 0.06, 0.06)
    assert by_model["m (idle local capacity)"]["cost_usd"] == 0.06
    assert set(by_team) == {"t1", "t2"}, "rows before --since are left out"
    t1, t2 = by_team["t1"], by_team["t2"]
    assert (t1["requests"], t1["cost_usd"], t1["cache_hits"], t1["cancelled"], t1["waste_usd"]) == (4, 1.50029, 1, 1, 0.00004)
    assert t1["spilled_share"] == 0.75, "three hosted misses of four; the cache hit is not a spill"
    assert (t2["requests"], t2["failed"], t2["spilled_share"]) == (2, 1, 0.0)
    assert json.loads(render([t1], "team", "json"))[0]["cost_usd"] == 1.50029
    assert render([t1], "team", "csv").splitlines()[0].startswith("team,requests,cost_usd")


def test_since_takes_an_age_or_a_date() -> None:
    now = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)
    assert parse_since("7d", now) == dt.datetime(2026, 11, 21, 12, tzinfo=dt.UTC)
    assert parse_since("36h", now) == dt.datetime(2026, 11, 27, 0, tzinfo=dt.UTC)
    assert parse_since("2026-11-01", now) == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def test_the_command_reads_the_configured_store(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "ledger.db"
    store = open_ledger(f"sqlite:///{db}")
    store.insert(rows())
    store.engine.dispose()
    monkeypatch.setenv("SPILLOVER__STORES__SQLITE_PATH", str(db))
    assert main(["costs", "report", "--by", "destination", "--since", "2026-01-01", "--format", "json"]) == 0
    by_destination = {r["destination"]: r["requests"] for r in json.loads(capsys.readouterr().out)}
    assert by_destination == {"openai": 4, "local": 1, "(none)": 1}


def test_batch_lines_are_priced_against_sync_and_the_report_shows_the_saving(ledger_url: str) -> None:
    pricer = Pricer(PriceTable.load(DEFAULT_PRICES), local_usd_per_mtok=Decimal(1), sync_models={"r": ["gpt-4o-mini"]})
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)

    def line(destination: str, via_hosted_batch: bool) -> RequestContext:
        ctx = RequestContext(f"b-{destination}", Api.CHAT, "r", {}, False, {})
        ctx.put(BatchLine("batch-1", 1, via_hosted_batch=via_hosted_batch))
        ctx.destination, ctx.model_served, ctx.usage, ctx.status = destination, "gpt-4o-mini", usage, Status.OK
        return ctx

    hosted, local = pricer.row(line("openai", True)), pricer.row(line(LOCAL, False))
    assert (hosted.cost_micro_usd, hosted.sync_cost_micro_usd) == (375_000, 750_000), "batch price, against the regular price"
    assert (local.cost_micro_usd, local.sync_cost_micro_usd) == (2_000_000, 750_000), "$1/M local ceiling, against the route's hosted model"
    assert pricer.row(dataclasses.replace(line("openai", False), request_id="x")).sync_cost_micro_usd == 750_000
    store = open_ledger(ledger_url)
    try:
        store.insert([hosted, local, row("h1", cost=10)])
        with store.engine.connect() as connection:
            by_batch = {r["batch"]: r for r in report_rows(connection, "batch", dt.datetime(2020, 1, 1, tzinfo=dt.UTC))}
    finally:
        store.engine.dispose()
    assert by_batch["batch-1"]["sync_usd"] == 1.5 and by_batch["batch-1"]["saving_vs_sync"] == round(1 - 2.375 / 1.5, 4), "a negative saving shows too"
    assert by_batch["(none)"]["saving_vs_sync"] is None
