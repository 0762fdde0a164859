"""Where spillover keeps state: SQLite or PostgreSQL, Redis, and the ledger spool."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["StoresConfig"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoresConfig(_Strict):
    sqlite_path: str = Field("~/.cache/spillover/spillover.db", description="Default store.")
    redis_url: str | None = None
    redis_prefix: str = Field("spillover:", description="Every Redis key spillover writes starts with this.")
    postgres_dsn: str | None = None
    spool_dir: str = Field(
        "~/.cache/spillover/ledger-spool",
        description="Where finished requests' ledger rows are fsync'd before they move to the database; "
        "ingress replicas on one machine share it, and each adopts the rows of a dead one.",
    )
