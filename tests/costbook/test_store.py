"""The ledger table on SQLite and PostgreSQL: migrations, idempotent inserts, exact money."""

from __future__ import annotations

import sqlalchemy as sa

from costbook.schema import ledger_table
from costbook.store import LedgerStore
from tests.costbook.rows import row


def test_migrations_run_twice_and_a_request_id_is_inserted_once(ledger_url: str) -> None:
    store = LedgerStore(ledger_url)
    try:
        store.migrate()
        store.migrate()
        store.insert([row("a", 2**40), row("b", 7)])
        store.insert([row("a", 999), row("c", 1)])  # a retried move: "a" keeps its first row
        with store.engine.connect() as connection:
            rows = {r.request_id: r for r in connection.execute(sa.select(ledger_table))}
            total = connection.execute(sa.select(sa.func.sum(ledger_table.c.cost_micro_usd))).scalar_one()
        assert sorted(rows) == ["a", "b", "c"]
        assert rows["a"].cost_micro_usd == 2**40, "micro-dollars beyond 32 bits survive"
        assert total == 2**40 + 8
        assert rows["b"].at.year == 2026 and rows["b"].spill_reason == "predicted_wait"
    finally:
        store.dispose()
