"""Golden costs for every usage shape, in micro-dollars, and the price table's formats."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from contracts.context import Usage
from costbook.prices import DEFAULT_PRICES, ModelPrice, PriceTable, cost_micro_usd
from fallback.anthropic_wire import usage_from_anthropic

TABLE = PriceTable.load(DEFAULT_PRICES)
FIXTURE = Path(__file__).parents[1] / "fixtures" / "litellm_prices_sample.json"


def test_the_seed_s_prices_are_in_the_built_in_table() -> None:
    assert {m: (float(p.input), float(p.output)) for m, p in TABLE.models.items()} == {
        "gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6), "claude-sonnet": (3.0, 15.0), "claude-haiku": (0.25, 1.25)}
    assert TABLE.version


def test_openai_cached_tokens_are_inside_prompt_tokens_and_priced_at_the_cached_rate() -> None:
    usage = Usage.from_openai({"prompt_tokens": 2000, "completion_tokens": 300, "prompt_tokens_details": {"cached_tokens": 1500}})
    # 500 uncached x $2.50 + 1,500 cached x $1.25 + 300 x $10, per million tokens.
    assert cost_micro_usd(usage, TABLE.models["gpt-4o"]) == 500 * 2.5 + 1500 * 1.25 + 300 * 10 == 6125


def test_anthropic_input_tokens_exclude_cache_reads_and_writes_which_are_priced_on_their_own() -> None:
    usage = usage_from_anthropic({"input_tokens": 100, "cache_read_input_tokens": 4000, "cache_creation_input_tokens": 1000, "output_tokens": 200})
    assert (usage.prompt_tokens, usage.cached_read_tokens, usage.cache_write_tokens) == (5100, 4000, 1000)
    # 100 x $3 + 4,000 x $0.30 + 1,000 x $3.75 + 200 x $15.
    assert cost_micro_usd(usage, TABLE.models["claude-sonnet"]) == 300 + 1200 + 3750 + 3000


def test_reasoning_tokens_bill_as_output() -> None:
    usage = Usage.from_openai({"prompt_tokens": 10, "completion_tokens": 1000, "completion_tokens_details": {"reasoning_tokens": 900}})
    assert usage.reasoning_tokens == 900
    assert cost_micro_usd(usage, TABLE.models["gpt-4o-mini"]) == round(10 * Decimal("0.15") + 1000 * Decimal("0.6"))


def test_rounding_is_half_even_once_per_request_and_no_cached_price_means_the_input_price() -> None:
    price = ModelPrice.parse({"input": 0.5, "output": 1.5})
    assert cost_micro_usd(Usage(prompt_tokens=1, completion_tokens=0), price) == 0  # 0.5 -> 0
    assert cost_micro_usd(Usage(prompt_tokens=3, completion_tokens=0), price) == 2  # 1.5 -> 2
    assert cost_micro_usd(Usage(prompt_tokens=10, cached_read_tokens=10), price) == 5


def test_the_public_json_format_imports_per_token_prices_as_per_million() -> None:
    table = PriceTable.from_litellm_json(FIXTURE, version="litellm-sample")
    assert set(table.models) == {"gpt-4o", "claude-sonnet-4-5"}, "entries without token prices are skipped"
    sonnet = table.models["claude-sonnet-4-5"]
    assert (sonnet.input, sonnet.output, sonnet.cached_read, sonnet.cache_write) == (3, 15, Decimal("0.3"), Decimal("3.75"))
    assert table.version == "litellm-sample"


def test_a_yaml_round_trip_keeps_every_price(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(TABLE.to_yaml())
    assert PriceTable.load(path) == TABLE


def test_bad_prices_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown price"):
        ModelPrice.parse({"input": 1, "output": 1, "cached": 1})
    with pytest.raises(ValueError, match=">= 0"):
        ModelPrice.parse({"input": -1, "output": 1})
