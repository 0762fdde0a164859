"""``spillover experiments`` and ``spillover costs savings`` on a ledger the CLI did not write."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
import yaml

from costbook.ledger_store import SqlLedgerStore
from spillover.cli import main
from stores.sql import Database, database_url
from tests.costbook.rows import row

MODEL = "smollm2-135m-instruct"


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "spillover.yaml"
    path.write_text(yaml.safe_dump({
        "models": [{"name": MODEL, "source": f"builtin:{MODEL}"}],
        "stores": {"sqlite_path": str(tmp_path / "spillover.db"), "spool_dir": str(tmp_path / "spool")},
        "providers": [{"name": "openai", "base_url": "http://127.0.0.1:9/v1", "models": {MODEL: "gpt-4o"}}],
        "routes": {MODEL: {"hosted": [{"provider": "openai"}]}},
        "experiments": {"ab": {"route": MODEL, "variants": {"control": {"weight": 1}, "off": {"weight": 1, "holdout": True}}}},
    }))
    return path


def seed(tmp_path: Path) -> None:
    database = Database(database_url(None, str(tmp_path / "spillover.db")))
    database.migrate()
    now = dt.datetime.now(dt.UTC)
    rows = [dataclasses.replace(row(f"r{i}", cost=(100 if i % 2 else 0)), at=now - dt.timedelta(days=3, minutes=i), model_asked=MODEL,
                                experiment="ab", variant=("control", "off")[i % 2], destination="local", model_served=MODEL,
                                user_name=f"u{i}", prompt_tokens=1000, completion_tokens=100) for i in range(40)]
    SqlLedgerStore(database).insert(rows)
    database.dispose()


def test_experiments_report_and_switches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    seed(tmp_path)
    assert main(["experiments", "--config", str(config), "report", "ab", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {v: report["variants"][v]["requests"] for v in ("control", "off")} == {"control": 20, "off": 20}
    assert report["variants"]["off"]["cost_usd"]["mean"] == pytest.approx(100 / 1e6)
    assert report["comparisons"]["off"]["completed_days"] >= 3 and report["sample_ratio"]["mismatch"] is False
    assert main(["experiments", "--config", str(config), "stop", "ab"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"name": "ab", "route": MODEL, "running": False}]
    assert main(["experiments", "--config", str(config), "report", "nope"]) == 1
    assert main(["experiments", "--config", str(config), "report", "ab"]) == 0
    assert "cost verdict" in capsys.readouterr().out


def test_costs_savings_prices_the_strongest_counterfactual(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    seed(tmp_path)
    assert main(["costs", "savings", "--config", str(config), "--since", "7d", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    gpt4o = 40 * (1000 * 2.5 + 100 * 10) / 1e6  # GPT-4o's list price in the shipped table
    assert result["requests"] == 40 and result["strongest_usd"] == pytest.approx(gpt4o)
    assert result["by_lever"]["self_hosting_and_spillover"]["usd"] == pytest.approx(gpt4o - 20 * 100 / 1e6)
    assert main(["costs", "savings", "--config", str(config)]) == 0
    assert "self_hosting_and_spillover" in capsys.readouterr().out
