"""The savings report: per-lever parts that add up to the whole saving against the strongest model."""

from __future__ import annotations

from decimal import Decimal

import pytest

from costbook.prices import ModelPrice
from costbook.savings import SavingsRow, savings_from_rows

STRONG = ModelPrice(input=Decimal(10), output=Decimal(30))  # per million tokens
CHEAP = ModelPrice(input=Decimal(1), output=Decimal(2))


def row(**fields: object) -> SavingsRow:
    base = {"model_asked": "auto", "model_served": None, "destination": "local", "cache_result": "miss", "prompt_tokens": 1000,
            "prompt_tokens_original": None, "completion_tokens": 100, "cost_micro_usd": 0, "route_reason": None, "attempt_of": None,
            "sync_cost_micro_usd": None}
    return SavingsRow(**{**base, **fields})


def test_each_lever_gets_its_part_and_the_parts_add_up() -> None:
    whole = 1000 * 10 + 100 * 30  # micro-dollars at the strongest price: 13,000
    rows = [
        row(cache_result="exact", destination="cache"),  # cache: the whole 13,000
        row(prompt_tokens=500, prompt_tokens_original=1000, destination="gpt-big", model_served="big", cost_micro_usd=500 * 10 + 3000),
        row(route_reason="router", destination="cheap-api", model_served="cheap", cost_micro_usd=1000 * 1 + 100 * 2),
        row(attempt_of="req-x", cost_micro_usd=700, destination="cheap-api", model_served="cheap"),  # an abandoned attempt
        row(cost_micro_usd=900),  # served locally
    ]
    listed = {"cheap": CHEAP, "big": STRONG}.get
    result = savings_from_rows(rows, {"auto": STRONG}, listed, idle_usd=Decimal("0.0005"))
    lever = {k: v["usd"] for k, v in result["by_lever"].items()}
    assert lever["cache"] == pytest.approx(whole / 1e6)
    assert lever["compression"] == pytest.approx(500 * 10 / 1e6)
    assert lever["routing"] == pytest.approx((whole - 1200 - 700) / 1e6)
    assert lever["self_hosting_and_spillover"] == pytest.approx((whole - 900) / 1e6 - 0.0005)
    assert result["requests"] == 4 and result["strongest_usd"] == pytest.approx(4 * whole / 1e6)
    assert sum(lever.values()) == pytest.approx(result["saving_usd"])
    assert result["total_share"] == pytest.approx(result["saving_usd"] / result["strongest_usd"], abs=1e-4)


def test_a_route_without_a_hosted_price_claims_no_saving() -> None:
    result = savings_from_rows([row(model_asked="private", cost_micro_usd=1234)], {"private": None}, {}.get)
    assert result["saving_usd"] == 0 and result["routes_without_hosted_price"] == ["private"]
