"""Ledger rows made durable before the response's last byte, then moved into the database.

A database round trip per request would sit on every response's tail, and a database outage
would stall serving. Instead each finished request's row is appended to a local file and
fsync'd, with group commit: the first append starts a write at once, appends that arrive while
it is on its way share the next one, so no row waits more than about one fsync and under load
many rows share each. ``append`` returns only once its row is on disk. A mover seals the file now and then and inserts the
sealed rows into the database, idempotent on request id, then deletes the file.

Each ingress process owns one spool directory, held by an advisory lock. A process killed with
SIGKILL leaves its directory unlocked; any mover sharing the base directory adopts it and moves
its rows, so no finished request's row is lost. A row whose append never returned (torn at the
kill) belongs to a response whose last byte was never sent; a torn trailing line is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from contracts.background import run_every
from contracts.ledger_row import LedgerRow

__all__ = ["LedgerMover", "Spool", "read_rows"]

logger = logging.getLogger(__name__)
CURRENT = "current.jsonl"


class Spool:
    def __init__(self, base: Path, *, window_s: float = 0.0) -> None:
        self.directory = base / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / ".lock", os.O_CREAT | os.O_RDWR)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._window_s = window_s
        self._file = (self.directory / CURRENT).open("ab")
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None
        #: Held while writing or sealing, so a seal never splits a batch.
        self.io_lock = asyncio.Lock()

    async def append(self, row: LedgerRow) -> None:
        """Return once ``row`` is on disk."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((json.dumps(row.to_json(), separators=(",", ":")).encode() + b"\n", done))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush_after_window())
        await asyncio.shield(done)

    async def _flush_after_window(self) -> None:
        await asyncio.sleep(self._window_s)
        async with self.io_lock:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self._write, b"".join(line for line, _ in batch))
            except Exception as exc:
                for _, done in batch:
                    done.set_exception(exc)
                return
        for _, done in batch:
            done.set_result(None)
        if self._pending:  # arrived while writing
            self._flushing = asyncio.create_task(self._flush_after_window())

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())

    async def seal(self) -> None:
        """Close the current file under a sealed name (if it holds rows) and start a new one."""
        async with self.io_lock:
            if self._file.tell() == 0:
                return
            self._file.close()
            os.replace(self.directory / CURRENT, self.directory / f"sealed-{time.time_ns()}.jsonl")
            self._file = (self.directory / CURRENT).open("ab")

    def close(self) -> None:
        self._file.close()
        os.close(self._lock_fd)


def read_rows(path: Path) -> list[LedgerRow]:
    rows = []
    for line in path.read_bytes().splitlines():
        try:
            rows.append(LedgerRow.from_json(json.loads(line)))
        except (ValueError, TypeError, KeyError):
            logger.warning("skipping a torn ledger spool line in %s", path.name)
    return rows


def _try_lock(directory: Path) -> int | None:
    """Take ``directory``'s lock if no live process holds it (its owner exited or was killed)."""
    try:
        fd = os.open(directory / ".lock", os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class LedgerMover:
    """Moves sealed spool files into the database: this process's, and those of dead ones."""

    def __init__(self, spool: Spool, insert: Callable[[Sequence[LedgerRow]], None], *, period_s: float = 0.5) -> None:
        self._spool = spool
        self._insert = insert
        self._period_s = period_s

    def start(self) -> asyncio.Task[None]:
        """Move rows every period; while the database is down they wait on disk and serving goes on."""
        return run_every(self._period_s, self.move_once, logger=logger, what="moving ledger rows", first_at_once=True)

    async def move_once(self) -> int:
        await self._spool.seal()
        moved = 0
        for path in sorted(self._spool.directory.glob("sealed-*.jsonl")):
            moved += await self._move(path)
        for orphan in self._spool.directory.parent.iterdir():
            if orphan == self._spool.directory or not orphan.is_dir():
                continue
            fd = _try_lock(orphan)
            if fd is None:
                continue
            try:
                for path in sorted([*orphan.glob("sealed-*.jsonl"), *orphan.glob(CURRENT)]):
                    moved += await self._move(path)
                with contextlib.suppress(OSError):
                    (orphan / ".lock").unlink()
                    orphan.rmdir()
            finally:
                os.close(fd)
        return moved

    async def _move(self, path: Path) -> int:
        rows = read_rows(path)
        if rows:
            await asyncio.to_thread(self._insert, rows)
        path.unlink(missing_ok=True)
        return len(rows)
