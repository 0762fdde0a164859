"""Ledger rows for tests."""

from __future__ import annotations

import datetime as dt

from costbook.ledger import LedgerRow


def row(request_id: str, cost: int = 100, team: str = "t1") -> LedgerRow:
    return LedgerRow(
        request_id=request_id, at=dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC), key_id="k1", user_name="u1", team=team,
        feature=None, api="chat", model_asked="m", model_served="gpt-4o", destination="openai", prompt_tokens=10,
        cached_tokens=0, cache_write_tokens=0, completion_tokens=5, reasoning_tokens=0, cost_micro_usd=cost,
        price_version="v1", cache_result="miss", ttft_ms=12.5, total_ms=40.0, status="ok", spill_reason="predicted_wait",
    )
