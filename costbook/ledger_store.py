"""Ledger rows into the shared SQL database (:class:`contracts.stores.LedgerStore` over SQLAlchemy)."""

from __future__ import annotations

from collections.abc import Sequence

from contracts.ledger_row import LedgerRow
from stores.sql import Database
from stores.sql_schema import ledger_table

__all__ = ["SqlLedgerStore"]


class SqlLedgerStore:
    def __init__(self, database: Database) -> None:
        self.engine = database.engine

    def insert(self, rows: Sequence[LedgerRow]) -> None:
        """Insert rows; a request id already present is left as it is (moves are retried)."""
        if not rows:
            return
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            raise ValueError(f"unsupported ledger database {dialect!r}")
        statement = insert(ledger_table).on_conflict_do_nothing(index_elements=["request_id"])
        with self.engine.begin() as connection:
            connection.execute(statement, [vars(r) for r in rows])
