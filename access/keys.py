"""API keys: created and revoked by an admin, stored only as HMAC-SHA-256 digests.

A key is 32 random bytes (URL-safe), shown once at creation. The table keeps its digest under
the server's secret: a fast keyed hash, not a slow password hash, because every request pays
for the check (~1 µs vs ~100 ms) and 256 random bits need no stretching. Each ingress replica
holds the active keys in memory and reloads them every ``refresh_s``, so a revocation reaches
every replica within that (the keys issue asks for 5 s; the default is 1 s).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from contracts.background import run_every, stop_tasks
from contracts.context import Principal
from stores.sql_schema import keys_table

__all__ = ["KEY_PREFIX", "KeyCache", "KeyRecord", "KeyStore", "load_key_secret", "new_key"]

logger = logging.getLogger(__name__)
KEY_PREFIX = "sk-sp-"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def load_key_secret(env_var: str, path: str) -> bytes:
    """The HMAC secret: from ``env_var`` (a cluster's Secret), else a file made once with 32
    random bytes, readable by its owner only (the embedded default)."""
    if os.environ.get(env_var):
        return os.environ[env_var].encode()
    file = Path(path).expanduser()
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    return file.read_text().strip().encode()


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    user: str
    team: str
    budget_micro_usd: int | None
    rpm: int | None
    tpm: int | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None

    def principal(self) -> Principal:
        return Principal(key_id=self.key_id, user=self.user, team=self.team)


class KeyStore:
    def __init__(self, engine: sa.Engine, secret: bytes) -> None:
        self._engine = engine
        self._secret = secret

    def digest(self, key: str) -> str:
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()

    def create(self, user: str, team: str, *, budget_micro_usd: int | None = None, rpm: int | None = None,
               tpm: int | None = None) -> tuple[str, KeyRecord]:
        """A new key and its record; the key is returned here and never again."""
        key = new_key()
        record = KeyRecord(f"key-{secrets.token_hex(6)}", user, team, budget_micro_usd, rpm, tpm, dt.datetime.now(dt.UTC), None)
        with self._engine.begin() as connection:
            connection.execute(keys_table.insert().values(
                key_id=record.key_id, digest=self.digest(key), user_name=user, team=team, budget_micro_usd=budget_micro_usd,
                rpm=rpm, tpm=tpm, created_at=record.created_at))
        return key, record

    def revoke(self, key_id: str) -> bool:
        with self._engine.begin() as connection:
            result = connection.execute(
                keys_table.update().where(keys_table.c.key_id == key_id, keys_table.c.revoked_at.is_(None))
                .values(revoked_at=dt.datetime.now(dt.UTC)))
        return result.rowcount > 0

    def records(self) -> list[KeyRecord]:
        with self._engine.connect() as connection:
            rows = connection.execute(sa.select(keys_table).order_by(keys_table.c.created_at))
            return [_record(r) for r in rows]

    def active(self) -> dict[str, KeyRecord]:
        """Digest -> record, for every key not revoked."""
        with self._engine.connect() as connection:
            rows = connection.execute(sa.select(keys_table).where(keys_table.c.revoked_at.is_(None)))
            return {r.digest: _record(r) for r in rows}


def _record(r: sa.Row) -> KeyRecord:
    return KeyRecord(r.key_id, r.user_name, r.team, r.budget_micro_usd, r.rpm, r.tpm, r.created_at, r.revoked_at)


class KeyCache(Mapping[str, Principal]):
    """The active keys as the authenticate stage reads them: digest -> principal, reloaded
    every ``refresh_s``. A failed reload keeps the last good set (the database may blink). A
    reload applies only if no later-started one has applied first: a slow read begun before a
    revocation never brings the revoked key back."""

    def __init__(self, store: KeyStore, *, refresh_s: float = 1.0) -> None:
        self.store = store
        self._refresh_s = refresh_s
        self._records: dict[str, KeyRecord] = {}
        self._by_id: dict[str, KeyRecord] = {}
        self._started = self._applied = 0
        self._load(store.active())
        self._task: asyncio.Task[None] | None = None

    def _load(self, records: dict[str, KeyRecord]) -> None:
        self._records, self._by_id = records, {r.key_id: r for r in records.values()}

    def __getitem__(self, digest: str) -> Principal:
        return self._records[digest].principal()

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def by_id(self, key_id: str) -> KeyRecord | None:
        return self._by_id.get(key_id)

    async def refresh(self) -> None:
        self._started += 1
        mine = self._started
        records = await asyncio.to_thread(self.store.active)
        if mine > self._applied:
            self._applied = mine
            self._load(records)

    def start(self) -> None:
        self._task = run_every(self._refresh_s, self.refresh, logger=logger, what="reloading API keys")

    async def aclose(self) -> None:
        await stop_tasks(self._task)
