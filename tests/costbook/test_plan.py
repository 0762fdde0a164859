"""Self-hosting vs an API: the seed's rule of thumb and the whole-replica staircase."""

from __future__ import annotations

from pathlib import Path

import pytest

from costbook.plan import Plan
from costbook.prices import DEFAULT_PRICES, PriceTable
from spillover.cli import main

GPT4O = PriceTable.load(DEFAULT_PRICES).models["gpt-4o"]


def test_the_seed_s_example_70b_on_one_a100_breaks_even_near_5_million_output_tokens_a_day() -> None:
    # $2.50/hour and ~$0.50 per million tokens at full use: 5M tokens an hour, ~1,389 a second.
    plan = Plan(1000, 1000, 1389, 1, 2.5, 1.0, GPT4O)
    assert plan.self_hosted_usd_per_mtok() == pytest.approx(0.50, abs=0.01)
    assert plan.break_even_output_tokens_per_day() == pytest.approx(5e6, rel=0.05)


def test_self_hosting_is_paid_in_whole_replicas_and_low_utilisation_moves_the_break_even() -> None:
    busy = Plan(2000, 200, 100, 4, 2.5, 1.0, GPT4O)  # a slow replica: 8.64M output tokens a day at most
    assert [busy.replicas(v) for v in (1, 8.64e6, 8.65e6, 20e6)] == [1, 1, 2, 3]
    assert busy.self_hosted_usd_per_month(8.65e6) == 2 * 4 * 2.5 * 730
    even = busy.break_even_output_tokens_per_day()
    assert busy.self_hosted_usd_per_month(even) <= busy.api_usd_per_month(even) * (1 + 1e-9)
    assert busy.self_hosted_usd_per_month(even * 0.99) > busy.api_usd_per_month(even * 0.99)
    idle = Plan(2000, 200, 100, 4, 2.5, 0.25, GPT4O)
    assert idle.break_even_output_tokens_per_day() > even


def test_the_command_prints_the_break_even_and_draws_the_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "plan.png"
    assert main(["plan", "--prompt-tokens", "1000", "--output-tokens", "1000", "--throughput", "1389",
                 "--gpu-usd-per-hour", "2.5", "--utilisation", "1", "--plot", str(plot)]) == 0
    assert "break-even against gpt-4o" in capsys.readouterr().out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
