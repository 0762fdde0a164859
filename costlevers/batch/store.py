"""Files, batches and lines in the shared SQL database (SQLite by default, PostgreSQL when
configured): what a restart needs to carry every batch on where it stopped.

Every call is a short synchronous transaction; the async callers run them in a thread. A line's
result is written with ``state = 'pending'`` as its condition, so a line that two workers (or one
before and after a restart) finished is counted once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa

from stores.sql import Database
from stores.sql_schema import batch_files_table as files
from stores.sql_schema import batch_lines_table as lines
from stores.sql_schema import batches_table as batches

__all__ = ["ACTIVE", "BatchStore", "TERMINAL"]

#: The statuses a worker still has work for.
ACTIVE = ("in_progress", "finalizing", "cancelling")
TERMINAL = ("completed", "failed", "expired", "cancelled")


class BatchStore:
    def __init__(self, database: Database) -> None:
        self._database = database
        self.engine = database.engine

    # files

    def add_file(self, row: dict[str, Any]) -> None:
        """Record a file; one whose id is already there is kept (two workers finalizing one batch
        write the same output file)."""
        with self.engine.begin() as c:
            c.execute(self._database.insert_if_absent(files, ["id"]).values(**row, deleted=False))

    def file(self, file_id: str, key_id: str | None) -> dict[str, Any] | None:
        query = sa.select(files).where(files.c.id == file_id, files.c.deleted.is_(False))
        if key_id is not None:
            query = query.where(files.c.key_id == key_id)
        with self.engine.connect() as c:
            row = c.execute(query).mappings().first()
        return None if row is None else dict(row)

    def files_of(self, key_id: str, *, after: str | None, limit: int, purpose: str | None) -> list[dict[str, Any]]:
        query = sa.select(files).where(files.c.key_id == key_id, files.c.deleted.is_(False))
        if purpose:
            query = query.where(files.c.purpose == purpose)
        return self._page(query, files, after, limit)

    def delete_file(self, file_id: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.update(files).where(files.c.id == file_id).values(deleted=True))

    # batches

    def create_batch(self, row: dict[str, Any], inputs: Sequence[tuple[int, str, dict[str, Any]]], reserved: Sequence[int] = ()) -> None:
        """The batch and all its lines in one transaction: a batch is never half there.
        ``reserved``: each line's budget hold (none: nothing held)."""
        holds = list(reserved) or [0] * len(inputs)
        with self.engine.begin() as c:
            c.execute(sa.insert(batches).values(**row))
            if inputs:
                c.execute(sa.insert(lines), [{"batch_id": row["id"], "line": n, "custom_id": cid, "body": json.dumps(body),
                                              "state": "pending", "reserved_micro_usd": hold}
                                             for (n, cid, body), hold in zip(inputs, holds, strict=True)])

    def batch(self, batch_id: str, key_id: str | None = None) -> dict[str, Any] | None:
        query = sa.select(batches).where(batches.c.id == batch_id)
        if key_id is not None:
            query = query.where(batches.c.key_id == key_id)
        with self.engine.connect() as c:
            row = c.execute(query).mappings().first()
        return None if row is None else dict(row)

    def batches_of(self, key_id: str, *, after: str | None, limit: int) -> list[dict[str, Any]]:
        return self._page(sa.select(batches).where(batches.c.key_id == key_id), batches, after, limit)

    def active(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(sa.select(batches).where(batches.c.status.in_(ACTIVE)).order_by(batches.c.created_at))
                    .mappings()]

    def move(self, batch_id: str, status: str, *, only_from: Collection[str], **fields: Any) -> bool:
        """Set the batch's status (and its ``<status>_at`` stamp) if it is in one of ``only_from``."""
        values = {"status": status, f"{status}_at": int(time.time()), **fields}
        with self.engine.begin() as c:
            moved = c.execute(sa.update(batches).where(batches.c.id == batch_id, batches.c.status.in_(only_from)).values(**values))
        return moved.rowcount == 1

    # lines

    def pending(self, batch_id: str, *, skip: Collection[int], limit: int, worker: str | None = None,
                now: float | None = None) -> list[dict[str, Any]]:
        """Pending lines no other worker holds a live claim on (``worker``'s own claims count as free)."""
        query = sa.select(lines).where(lines.c.batch_id == batch_id, lines.c.state == "pending")
        if worker is not None and now is not None:
            query = query.where(sa.or_(lines.c.claimed_until.is_(None), lines.c.claimed_until < now, lines.c.claimed_by == worker))
        query = query.order_by(lines.c.line).limit(limit + len(skip))
        with self.engine.connect() as c:
            rows = [dict(r) for r in c.execute(query).mappings() if r["line"] not in skip]
        return rows[:limit]

    def claim(self, batch_id: str, line: int, worker: str, until: float, now: float) -> bool:
        """Claim a pending line for ``worker`` until ``until``: False when another worker holds it."""
        with self.engine.begin() as c:
            done = c.execute(sa.update(lines).where(
                lines.c.batch_id == batch_id, lines.c.line == line, lines.c.state == "pending",
                sa.or_(lines.c.claimed_until.is_(None), lines.c.claimed_until < now, lines.c.claimed_by == worker),
            ).values(claimed_by=worker, claimed_until=until))
        return done.rowcount == 1

    def renew(self, worker: str, keys: Collection[tuple[str, int]], until: float) -> None:
        """Extend ``worker``'s claims on the lines it still runs."""
        if not keys:
            return
        with self.engine.begin() as c:
            for batch_id, line in keys:
                c.execute(sa.update(lines).where(lines.c.batch_id == batch_id, lines.c.line == line, lines.c.claimed_by == worker)
                          .values(claimed_until=until))

    def release(self, worker: str) -> None:
        """Drop ``worker``'s claims on lines it did not finish (it is stopping): others may run them at once."""
        with self.engine.begin() as c:
            c.execute(sa.update(lines).where(lines.c.claimed_by == worker, lines.c.state == "pending")
                      .values(claimed_by=None, claimed_until=None))

    def finish_line(self, batch_id: str, line: int, state: str, result: dict[str, Any], *, was: str = "pending") -> bool:
        with self.engine.begin() as c:
            done = c.execute(sa.update(lines).where(lines.c.batch_id == batch_id, lines.c.line == line, lines.c.state == was)
                             .values(state=state, result=json.dumps(result), finished_at=int(time.time())))
        return done.rowcount == 1

    def hand_off(self, batch_id: str, line_numbers: Collection[int], hosted_batch_id: str) -> None:
        """The lines, still pending, now wait for the hosted batch; the batch remembers it."""
        with self.engine.begin() as c:
            c.execute(sa.update(lines).where(lines.c.batch_id == batch_id, lines.c.line.in_(list(line_numbers)), lines.c.state == "pending")
                      .values(state="hosted"))
            c.execute(sa.update(batches).where(batches.c.id == batch_id).values(hosted_batch_id=hosted_batch_id))

    def in_state(self, batch_id: str, state: str) -> list[dict[str, Any]]:
        query = sa.select(lines).where(lines.c.batch_id == batch_id, lines.c.state == state).order_by(lines.c.line)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(query).mappings()]

    def unfinished_hold(self, batch_id: str) -> int:
        """What the lines still ``pending`` or ``hosted`` hold in budgets (given back when the batch ends)."""
        query = sa.select(sa.func.coalesce(sa.func.sum(lines.c.reserved_micro_usd), 0)).where(
            lines.c.batch_id == batch_id, lines.c.state.in_(("pending", "hosted")))
        with self.engine.connect() as c:
            return int(c.execute(query).scalar_one())

    def counts(self, batch_id: str) -> dict[str, int]:
        query = sa.select(lines.c.state, sa.func.count()).where(lines.c.batch_id == batch_id).group_by(lines.c.state)
        with self.engine.connect() as c:
            by_state = {state: n for state, n in c.execute(query)}
        return {"total": sum(by_state.values()), "completed": by_state.get("done", 0), "failed": by_state.get("failed", 0),
                "pending": by_state.get("pending", 0), "hosted": by_state.get("hosted", 0)}

    def results(self, batch_id: str) -> list[dict[str, Any]]:
        query = sa.select(lines).where(lines.c.batch_id == batch_id, lines.c.state.in_(("done", "failed"))).order_by(lines.c.line)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(query).mappings()]

    def _page(self, query: sa.Select, table: sa.Table, after: str | None, limit: int) -> list[dict[str, Any]]:
        """Newest first; ``after`` is the id of the last item of the previous page."""
        if after:
            with self.engine.connect() as c:
                anchor = c.execute(sa.select(table.c.created_at).where(table.c.id == after)).scalar()
            if anchor is not None:
                query = query.where(sa.or_(table.c.created_at < anchor, sa.and_(table.c.created_at == anchor, table.c.id < after)))
        query = query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit + 1)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(query).mappings()]
