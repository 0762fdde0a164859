"""Ledger rows on disk before the response ends, and in the database after, even past a SIGKILL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from costbook.ledger_store import SqlLedgerStore
from costbook.spool import CURRENT, LedgerMover, Spool, read_rows
from stores.sql import database_url
from stores.sql_schema import ledger_table
from tests.costbook.rows import open_ledger
from tests.costbook.rows import row

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> SqlLedgerStore:
    store = open_ledger(database_url(None, str(tmp_path / "ledger.db")))
    yield store
    store.engine.dispose()


def ids_in(store: SqlLedgerStore) -> list[str]:
    with store.engine.connect() as connection:
        return sorted(r.request_id for r in connection.execute(sa.select(ledger_table.c.request_id)))


async def test_each_append_returns_once_fsynced_and_appends_close_together_share_an_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fsyncs = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd))[1])
    spool = Spool(tmp_path / "spool")
    try:
        await asyncio.gather(*(spool.append(row(f"r{i}")) for i in range(100)))
        assert len(read_rows(spool.directory / CURRENT)) == 100
        assert 1 <= len(fsyncs) <= 5, fsyncs
        await spool.append(row("late"))
        assert [r.request_id for r in read_rows(spool.directory / CURRENT)][-1] == "late"
    finally:
        spool.close()


async def test_the_mover_moves_sealed_rows_once_and_empties_the_spool(tmp_path: Path, store: SqlLedgerStore) -> None:
    spool = Spool(tmp_path / "spool")
    mover = LedgerMover(spool, store.insert)
    try:
        for i in range(3):
            await spool.append(row(f"r{i}"))
        assert await mover.move_once() == 3
        await spool.append(row("r3"))
        assert await mover.move_once() == 1
        assert await mover.move_once() == 0
        assert ids_in(store) == ["r0", "r1", "r2", "r3"]
        assert not list(spool.directory.glob("sealed-*"))
    finally:
        spool.close()


async def test_rows_of_an_ingress_killed_with_sigkill_are_adopted_and_moved(tmp_path: Path, store: SqlLedgerStore) -> None:
    base = tmp_path / "spool"
    victim = textwrap.dedent(f"""
        import asyncio, os, signal
        from pathlib import Path
        from costbook.spool import Spool
        from tests.costbook.rows import row

        async def main():
            spool = Spool(Path({str(base)!r}))
            await asyncio.gather(*(spool.append(row(f"killed-{{i}}")) for i in range(40)))
            await spool.seal()
            await spool.append(row("after-seal"))
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
    """)
    result = subprocess.run([sys.executable, "-c", victim], cwd=REPO, timeout=60)
    assert result.returncode == -9
    (orphan,) = base.iterdir()
    with (orphan / CURRENT).open("ab") as torn:
        torn.write(b'{"request_id": "never-acknowled')  # a write the kill cut short
    spool = Spool(base)
    try:
        assert await LedgerMover(spool, store.insert).move_once() == 41
        assert ids_in(store) == sorted([*(f"killed-{i}" for i in range(40)), "after-seal"])
        assert not orphan.exists()
    finally:
        spool.close()


async def test_a_live_spool_is_never_adopted(tmp_path: Path, store: SqlLedgerStore) -> None:
    base = tmp_path / "spool"
    alive, other = Spool(base), Spool(base)
    try:
        await alive.append(row("mine"))
        assert await LedgerMover(other, store.insert).move_once() == 0
        assert await LedgerMover(alive, store.insert).move_once() == 1
    finally:
        alive.close()
        other.close()
