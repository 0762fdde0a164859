"""Ledger rows into the shared SQL database (:class:`contracts.stores.LedgerStore` over SQLAlchemy)."""

from __future__ import annotations

from collections.abc import Sequence

from contracts.ledger_row import LedgerRow
from stores.sql import Database
from stores.sql_schema import ledger_table

__all__ = ["SqlLedgerStore"]


class SqlLedgerStore:
    def __init__(self, database: Database) -> None:
        self._database = database
        self.engine = database.engine

    def insert(self, rows: Sequence[LedgerRow]) -> None:
        """Insert rows; a request id already present is left as it is (moves are retried)."""
        if not rows:
            return
        statement = self._database.insert_if_absent(ledger_table, ["request_id"])
        with self.engine.begin() as connection:
            connection.execute(statement, [vars(r) for r in rows])
