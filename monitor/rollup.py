"""The ledger summed per hour (``spillover_ledger_hourly``), kept current by re-aggregating.

A dashboard over 30 days of a busy ledger (a million rows) cannot group raw rows on every view
and answer within a second; the rollup holds one row per hour and per combination of who (team,
user, feature), what (model asked), where (destination, spill reason, cache result) and how it
ended (status), so the views and the spend alerts read a few thousand rows instead.

Refreshing is a replace, not an increment: each pass deletes the trailing ``recompute_h`` hours
and aggregates them again from the ledger in one transaction, so rows written late (a spooled
write replayed after a database outage, a stream that finished in the next hour) land in their
hour, and a pass that dies half-way leaves nothing half-counted. The first pass on a ledger with
history backfills it a day at a time.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from stores.sql_schema import ledger_hourly_table as hourly
from stores.sql_schema import ledger_table as ledger

__all__ = ["as_utc", "floor_hour", "hour_bucket", "refresh_rollup"]

_DIMENSIONS = ("team", "user_name", "feature", "model_asked", "destination", "spill_reason", "cache_result", "status")


def floor_hour(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def hour_bucket(column: sa.ColumnElement, dialect: str) -> sa.ColumnElement:
    """``column`` truncated to its UTC hour, in the dialect's own terms."""
    if dialect == "postgresql":
        utc = sa.func.timezone("UTC", column)
        return sa.func.timezone("UTC", sa.func.date_trunc("hour", utc))
    # SQLite keeps DateTime as ISO text in UTC: the hour is the text up to the hour, then zeros.
    return sa.func.strftime("%Y-%m-%d %H:00:00.000000", column)


def refresh_rollup(engine: sa.Engine, now: dt.datetime, recompute_h: int, *, backfill_chunk: dt.timedelta = dt.timedelta(days=1)) -> int:
    """Re-aggregate the trailing ``recompute_h`` hours (and, on a first pass or after a gap, every
    hour since the rollup's last); returns how many hourly rows were written."""
    recent = floor_hour(now) - dt.timedelta(hours=recompute_h - 1)
    with engine.connect() as connection:
        last = connection.execute(sa.select(sa.func.max(hourly.c.hour))).scalar()
        first = connection.execute(sa.select(sa.func.min(ledger.c.at))).scalar() if last is None else None
    start = recent
    if last is not None:
        start = min(recent, as_utc(last))
    elif first is not None:
        start = min(recent, floor_hour(as_utc(first)))
    written = 0
    while start + backfill_chunk <= recent:
        written += _aggregate(engine, start, start + backfill_chunk)
        start += backfill_chunk
    return written + _aggregate(engine, start, None)


def _aggregate(engine: sa.Engine, start: dt.datetime, end: dt.datetime | None) -> int:
    """Replace the rollup's hours in [start, end) (to the newest when ``end`` is None)."""
    with engine.begin() as connection:
        bucket = hour_bucket(ledger.c.at, engine.dialect.name).label("hour")
        dims = [sa.func.coalesce(ledger.c[name], "").label(name) for name in _DIMENSIONS]
        select = sa.select(
            bucket, *dims,
            sa.func.count().label("requests"),
            sa.func.coalesce(sa.func.sum(ledger.c.cost_micro_usd), 0),
            sa.func.coalesce(sa.func.sum(ledger.c.prompt_tokens), 0),
            sa.func.coalesce(sa.func.sum(ledger.c.completion_tokens), 0),
            sa.func.coalesce(sa.func.sum(ledger.c.cached_tokens), 0),
            sa.func.coalesce(sa.func.sum(ledger.c.compression_saved_micro_usd), 0),
        ).where(ledger.c.at >= start)
        delete = hourly.delete().where(hourly.c.hour >= start)
        if end is not None:
            select = select.where(ledger.c.at < end)
            delete = delete.where(hourly.c.hour < end)
        select = select.group_by(bucket, *dims)
        connection.execute(delete)
        columns = ["hour", *_DIMENSIONS, "requests", "cost_micro_usd", "prompt_tokens", "completion_tokens", "cached_tokens",
                   "compression_saved_micro_usd"]
        connection.execute(hourly.insert().from_select(columns, select))
        # Counted, not taken from the insert's rowcount: psycopg reports none for INSERT ... SELECT.
        written = sa.select(sa.func.count()).select_from(hourly).where(hourly.c.hour >= start)
        return int(connection.execute(written if end is None else written.where(hourly.c.hour < end)).scalar() or 0)


def as_utc(at: dt.datetime | str) -> dt.datetime:
    """A time read back from the database, in UTC: SQLite hands datetimes back naive (they were
    written in UTC), and a rolled-up hour as the text it was written as."""
    if isinstance(at, str):
        at = dt.datetime.fromisoformat(at)
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
