"""The ledger table on SQLite and PostgreSQL: migrations, idempotent inserts, exact money."""

from __future__ import annotations

import sqlalchemy as sa

from costbook.ledger_store import SqlLedgerStore
from stores.sql import Database
from stores.sql_schema import ledger_table
from tests.costbook.rows import row


def test_migrations_run_twice_and_a_request_id_is_inserted_once(ledger_url: str) -> None:
    database = Database(ledger_url)
    store = SqlLedgerStore(database)
    try:
        database.migrate()
        database.migrate()
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
        database.dispose()


def test_replicas_starting_together_migrate_in_turn(ledger_url: str) -> None:
    if not ledger_url.startswith("postgresql"):
        return  # SQLite serves one machine's ingress; PostgreSQL is shared by a cluster's replicas
    import threading

    # A lock wait past 10 s is an error, so a race fails the test instead of hanging it.
    databases = [Database(ledger_url.replace("options=", "options=-clock_timeout%3D10000%20")) for _ in range(4)]
    errors: list[BaseException] = []

    def migrate(database: Database) -> None:
        try:
            database.migrate()
        except BaseException as exc:  # collected: asserted below
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(d,), daemon=True) for d in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(t.is_alive() for t in threads)
    for database in databases:
        database.dispose()
    assert errors == []
