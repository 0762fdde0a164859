"""The one SQL database: SQLite by default, PostgreSQL with a DSN; schema by Alembic migrations.

The ledger and the API keys share it. Every side that opens it (the ingress, the CLI's key and
report commands) goes through :meth:`Database.open`, so the URL rules and the migration step
live in one place.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from stores.config import StoresConfig

__all__ = ["Database", "database_url"]

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


class Database:
    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, pool_pre_ping=True)

    @classmethod
    def open(cls, stores: StoresConfig, *, migrate: bool = True) -> Database:
        """The configured database, its schema brought to the newest migration."""
        database = cls(database_url(stores.postgres_dsn, stores.sqlite_path))
        if migrate:
            database.migrate()
        return database

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

    def insert_if_absent(self, table: sa.Table, keys: list[str]) -> sa.Insert:
        """An INSERT that leaves a row whose ``keys`` are already present as it is: writers that
        may repeat (a retried move, two replicas finalizing one batch) need no read-then-write."""
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            raise ValueError(f"unsupported database {dialect!r}")
        return insert(table).on_conflict_do_nothing(index_elements=keys)

    def dispose(self) -> None:
        self.engine.dispose()
