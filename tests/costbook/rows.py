"""Ledger rows for tests."""

from __future__ import annotations

import dataclasses
import datetime as dt

from contracts.ledger_row import LedgerRow
from costbook.ledger import LOCAL_PENDING_VERSION
from costbook.ledger_store import SqlLedgerStore
from stores.sql import Database


def row(request_id: str, cost: int = 100, team: str = "t1") -> LedgerRow:
    return LedgerRow(
        request_id=request_id, at=dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC), key_id="k1", user_name="u1", team=team,
        feature=None, api="chat", model_asked="m", model_served="gpt-4o", destination="openai", prompt_tokens=10,
        cached_tokens=0, cache_write_tokens=0, completion_tokens=5, reasoning_tokens=0, cost_micro_usd=cost,
        price_version="v1", cache_result="miss", ttft_ms=12.5, total_ms=40.0, status="ok", spill_reason="predicted_wait",
    )


def local_row(request_id: str, tokens: int, finished_at: dt.datetime, *, provisional: int = 0, team: str = "t1") -> LedgerRow:
    """A local request that finished at ``finished_at``, awaiting its share of replica time."""
    return dataclasses.replace(
        row(request_id, provisional, team), at=finished_at - dt.timedelta(seconds=1), finished_at=finished_at, model_served="m",
        destination="local", prompt_tokens=tokens - tokens // 2, completion_tokens=tokens // 2, price_version=LOCAL_PENDING_VERSION,
        spill_reason="local_ok")



def open_ledger(url: str) -> SqlLedgerStore:
    """A ledger over the database at ``url``, its schema migrated (dispose with ``.engine.dispose()``)."""
    database = Database(url)
    database.migrate()
    return SqlLedgerStore(database)
