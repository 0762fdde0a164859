"""The ledger's database: SQLite by default, PostgreSQL with a DSN; schema by Alembic migrations."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from costbook.ledger import LedgerRow
from costbook.schema import ledger_table

__all__ = ["LedgerStore", "database_url"]

MIGRATIONS = Path(__file__).with_name("migrations")
#: PostgreSQL advisory-lock key held while migrating ("spilover" in ASCII, as an int).
_MIGRATION_LOCK = 0x7370696C6F766572


def database_url(postgres_dsn: str | None, sqlite_path: str) -> str:
    """SQLAlchemy's URL for the configured store (psycopg 3 for PostgreSQL)."""
    if postgres_dsn:
        for prefix in ("postgresql://", "postgres://"):
            if postgres_dsn.startswith(prefix):
                return "postgresql+psycopg://" + postgres_dsn[len(prefix):]
        return postgres_dsn
    path = Path(sqlite_path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


class LedgerStore:
    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, pool_pre_ping=True)

    def migrate(self) -> None:
        """Bring the schema to the newest migration (safe to run on every start; on PostgreSQL
        an advisory lock makes ingress replicas starting together take turns)."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            if self.engine.dialect.name == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

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

    def dispose(self) -> None:
        self.engine.dispose()
