"""Alerts over the ledger: detection of injected anomalies, false alerts on clean traffic, and the
dashboard's first view over 30 days of a million-row ledger.

Ledger: synthesised, seeded. Every hour replays the Azure LLM inference 2023 conversation trace's
hour (its arrival offsets within the hour and its token counts), thinned to ``--per-hour``
requests on average and shaped by an assumed day (peak at 15:00 UTC, 0.45x at 03:00) and week
(weekends 0.7x): the trace is one hour long, so the day and week shapes are assumptions, stated.
Each request gets a user (50, Zipf-weighted, each in one of 8 teams), a feature (6), and an
outcome: 40% cache hits (free), 10% spilled to gpt-4o at list price (costbook/prices.yaml), the
rest local at ``--local-usd-per-mtok``, 1% errors.

Alerting runs the evaluator's own code (:func:`monitor.evaluator.readings` and
:class:`monitor.alerting.AlertBook`, default rules, one evaluation a minute) on a SQLite ledger:

* **clean week**: days 8-14 after a week of history; every alert that fires is a false alert.
* **trials**: ``--trials`` per anomaly type at random minutes of the clean week, each injected in
  a transaction that is rolled back after: ``spend_2x`` / ``spend_3x`` (every request of 3 hours
  repeated), ``user_10x`` (one of the 10 busiest users' requests of 3 hours, 10 times),
  ``cache_drop`` (half the cache hits of 30 minutes become local answers: 40% -> 20%),
  ``error_spike`` (errors of 30 minutes from 1% to 10%). Detected: the rule and subject the
  anomaly touches fire before it ends; delay from its start.
* **dashboard first view**: 30 days at ``--view-per-hour`` (a million rows), rolled up, then the
  view's data (ledger panels over the rollup, budgets, alerts) for the default 24 h range and for
  30 days, ``--view-repeats`` times each, on SQLite and (``--postgres-dsn``) PostgreSQL.

Every trial, false alert and timing is a raw row in ``bench/results/alerts.raw.jsonl.gz``;
``--recompute`` rebuilds every figure from it.

    python bench/alerts.py [--trials 20] [--postgres-dsn postgresql://postgres@127.0.0.1/test] [--allow-dirty] [--no-record]
    python bench/alerts.py --recompute [RAW]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from autoscaler.trace import read_trace  # noqa: E402
from bench._common import (  # noqa: E402
    REPO,
    add_provenance_arguments,
    add_recompute_arguments,
    percentile,
    publish,
    recompute_if_asked,
    refuse_dirty_tree,
    table,
)
from costbook.prices import DEFAULT_PRICES, PriceTable  # noqa: E402
from monitor.alerting import AlertBook  # noqa: E402
from monitor.config import AlertsConfig  # noqa: E402
from monitor.evaluator import alert_rows, readings  # noqa: E402
from monitor.rollup import refresh_rollup  # noqa: E402
from monitor.signals import budget_status  # noqa: E402
from monitor.view import ViewRange, ledger_view  # noqa: E402
from stores.sql import Database, database_url  # noqa: E402
from stores.sql_schema import ledger_table  # noqa: E402

NAME = "alerts"
TRACE = REPO.parent / "shared" / "data" / "traces" / "azure_llm_2023_conv.csv"
START = dt.datetime(2026, 10, 5, tzinfo=dt.UTC)  # a Monday
HOSTED_MODEL = "gpt-4o"
TEAMS = 8
USERS = 50
FEATURES = ("chat", "search", "summarise", "code", "extract", "translate")
TYPES = ("spend_2x", "spend_3x", "user_10x", "cache_drop", "error_spike")
#: How long each anomaly lasts, and the evaluation step (the evaluator's default: once a minute).
LASTS = {"spend_2x": dt.timedelta(hours=3), "spend_3x": dt.timedelta(hours=3), "user_10x": dt.timedelta(hours=3),
         "cache_drop": dt.timedelta(minutes=30), "error_spike": dt.timedelta(minutes=30)}
STEP = dt.timedelta(minutes=1)
GOALS = {"detection_rate": 0.95, "false_alerts_per_clean_week": 1.0, "detect_delay_s_rates": 300.0, "dashboard_first_view_ms": 1000.0}


def day_shape(at: dt.datetime) -> float:
    """Assumed: traffic peaks at 15:00 UTC, 0.45x at 03:00; weekends 0.7x."""
    daily = 0.45 + 0.55 * (1 + math.cos(2 * math.pi * (at.hour - 15) / 24)) / 2
    return daily * (0.7 if at.weekday() >= 5 else 1.0)


def synthesise(days: int, per_hour: float, seed: int, local_usd_per_mtok: float) -> Iterator[dict[str, Any]]:
    """Ledger rows, hour by hour, as the module docstring says."""
    _, trace = read_trace(TRACE)
    rng = random.Random(seed)
    weights = [1 / (i + 1) ** 1.1 for i in range(USERS)]
    users = [f"user{i:02d}" for i in range(USERS)]
    team_of = {u: f"team{rng.randrange(TEAMS)}" for u in users}
    hosted = PriceTable.load(DEFAULT_PRICES).price(HOSTED_MODEL)
    assert hosted is not None
    keep = per_hour / len(trace)
    serial = 0
    for hour in range(days * 24):
        start = START + dt.timedelta(hours=hour)
        p = keep * day_shape(start)
        for a in trace:
            if rng.random() >= p:
                continue
            serial += 1
            user = rng.choices(users, weights)[0]
            outcome = rng.random()
            prompt, completion = a.prompt_tokens, a.output_tokens
            if outcome < 0.4:
                destination, cache, cost = "cache", "exact", 0.0
            elif outcome < 0.5:
                destination, cache = "openai", "miss"
                cost = (prompt * float(hosted.input) + completion * float(hosted.output)) / 1e6
            else:
                destination, cache, cost = "local", "miss", (prompt + completion) * local_usd_per_mtok / 1e6
            error = rng.random() < 0.01
            yield {"request_id": f"r{serial}", "at": start + dt.timedelta(seconds=a.at_s), "key_id": user, "user_name": user,
                   "team": team_of[user], "feature": rng.choice(FEATURES), "api": "chat", "model_asked": "llama-3-70b",
                   "model_served": HOSTED_MODEL if destination == "openai" else "llama-3-70b", "destination": destination,
                   "prompt_tokens": prompt, "cached_tokens": 0, "cache_write_tokens": 0, "completion_tokens": completion,
                   "reasoning_tokens": 0, "cost_micro_usd": 0 if error else round(cost * 1e6), "price_version": "bench",
                   "cache_result": cache, "status": "error" if error else "ok",
                   "spill_reason": "predicted_wait" if destination == "openai" else ("local_ok" if destination == "local" else None)}


def load(engine: sa.Engine, rows: Iterator[dict[str, Any]], batch: int = 20_000) -> int:
    count, chunk = 0, []
    for r in rows:
        chunk.append(r)
        if len(chunk) == batch:
            with engine.begin() as connection:
                connection.execute(ledger_table.insert(), chunk)
            count, chunk = count + len(chunk), []
    if chunk:
        with engine.begin() as connection:
            connection.execute(ledger_table.insert(), chunk)
    return count + len(chunk)


def open_database(url: str) -> Database:
    database = Database(url)
    database.migrate()
    return database


def evaluate(connection: sa.Connection, rules: AlertsConfig, book: AlertBook, at: dt.datetime) -> list[Any]:
    return book.step(readings(connection, rules, [], at), at)


def clean_week(engine: sa.Engine, rules: AlertsConfig) -> tuple[list[dict[str, Any]], float]:
    """Every alert fired over days 8-14, one evaluation a minute; and the seconds a pass took."""
    book = AlertBook(rules.for_evaluations, rules.resolve_evaluations, rules.repeat_s)
    fired, started = [], time.perf_counter()
    at, end = START + dt.timedelta(days=7), START + dt.timedelta(days=14)
    passes = 0
    with engine.connect() as connection:
        while at < end:
            for t in evaluate(connection, rules, book, at):
                if t.kind == "fire":
                    o = t.observation
                    fired.append({"kind": "false_alert", "rule": o.rule, "scope": o.scope, "subject": o.subject,
                                  "at": at.isoformat(), "value": o.value, "threshold": o.threshold})
            at += STEP
            passes += 1
    return fired, (time.perf_counter() - started) / passes


def busiest_users(connection: sa.Connection, start: dt.datetime, end: dt.datetime, n: int) -> list[str]:
    t = ledger_table.c
    rows = connection.execute(sa.select(t.user_name).where(t.at >= start, t.at < end).group_by(t.user_name)
                              .order_by(sa.desc(sa.func.count()), t.user_name).limit(n)).all()
    return [r[0] for r in rows]


def inject(connection: sa.Connection, kind: str, start: dt.datetime, rng: random.Random) -> tuple[str, str]:
    """Apply the anomaly inside the connection's open transaction; returns the (rule, scope:subject) it should fire."""
    t = ledger_table.c
    end = start + LASTS[kind]
    in_window = sa.and_(t.at >= start, t.at < end)
    if kind in ("spend_2x", "spend_3x", "user_10x"):
        where = in_window
        subject = ""
        if kind == "user_10x":
            subject = rng.choice(busiest_users(connection, START, START + dt.timedelta(days=7), 10))
            where = sa.and_(in_window, t.user_name == subject)
        rows = [dict(r._mapping) for r in connection.execute(sa.select(ledger_table).where(where))]
        copies = {"spend_2x": 1, "spend_3x": 2, "user_10x": 9}[kind]
        connection.execute(ledger_table.insert(), [{**r, "request_id": f"{r['request_id']}-x{c}"} for c in range(copies) for r in rows])
        return "spend_spike", f"user:{subject}" if kind == "user_10x" else "global:"
    if kind == "cache_drop":
        hits = connection.execute(sa.select(t.request_id, t.prompt_tokens, t.completion_tokens)
                                  .where(in_window, t.destination == "cache")).all()
        for request_id, prompt, completion in hits:
            if _half(request_id):
                connection.execute(ledger_table.update().where(t.request_id == request_id).values(
                    destination="local", cache_result="miss", cost_micro_usd=prompt + completion))
        return "cache_hit_drop", "global:"
    ok = connection.execute(sa.select(t.request_id).where(in_window, t.status == "ok")).scalars().all()
    flip = [r for r in ok if rng.random() < 0.091]  # 1% + 9.1% of the other 99% = 10%
    connection.execute(ledger_table.update().where(t.request_id.in_(flip)).values(status="error", cost_micro_usd=0))
    return "error_spike", "global:"


def _half(request_id: str) -> bool:
    return hashlib.sha256(request_id.encode()).digest()[0] < 128


def trial(engine: sa.Engine, rules: AlertsConfig, kind: str, number: int, start: dt.datetime, rng: random.Random) -> dict[str, Any]:
    """One injected anomaly: evaluated from a minute before it until it is caught or ends."""
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            rule, target = inject(connection, kind, start, rng)
            book = AlertBook(rules.for_evaluations, rules.resolve_evaluations, rules.repeat_s)
            evaluate(connection, rules, book, start)  # the state just before: whatever fires on clean data fires here
            at, detected_at = start + STEP, None
            while at <= start + LASTS[kind] and detected_at is None:
                if any(t.kind == "fire" and t.observation.rule == rule and f"{t.observation.scope}:{t.observation.subject}" == target
                       for t in evaluate(connection, rules, book, at)):
                    detected_at = at
                at += STEP
        finally:
            transaction.rollback()
    return {"kind": "trial", "type": kind, "trial": number, "start": start.isoformat(), "target": f"{rule}:{target}",
            "detected": detected_at is not None,
            "delay_s": (detected_at - start).total_seconds() if detected_at is not None else None}


def view_timings(url: str, store: str, per_hour: float, repeats: int, local_usd_per_mtok: float) -> list[dict[str, Any]]:
    """Load 30 days, roll them up (timed), then time the dashboard's data for 24 h and 30 days."""
    database = open_database(url)
    engine = database.engine
    rows: list[dict[str, Any]] = []
    try:
        started = time.perf_counter()
        count = load(engine, synthesise(30, per_hour, seed=7, local_usd_per_mtok=local_usd_per_mtok))
        rows.append({"kind": "load", "store": store, "rows": count, "s": round(time.perf_counter() - started, 2)})
        now = START + dt.timedelta(days=30)
        started = time.perf_counter()
        refresh_rollup(engine, now, 3)
        rows.append({"kind": "rollup_backfill", "store": store, "s": round(time.perf_counter() - started, 2)})
        started = time.perf_counter()
        refresh_rollup(engine, now + dt.timedelta(minutes=1), 3)
        rows.append({"kind": "rollup_pass", "store": store, "s": round(time.perf_counter() - started, 3)})
        for repeat in range(repeats):
            for name, span in (("24h", dt.timedelta(days=1)), ("30d", dt.timedelta(days=30))):
                started = time.perf_counter()
                ledger_view(engine, ViewRange(now - span, now))
                with engine.connect() as connection:
                    budget_status(connection, [], now)
                alert_rows(engine, now)
                rows.append({"kind": "view", "store": store, "range": name, "repeat": repeat,
                             "ms": round((time.perf_counter() - started) * 1000, 2)})
    finally:
        database.dispose()
    return rows


@contextlib.contextmanager
def scratch_postgres(dsn: str) -> Iterator[str]:
    """A database of its own on the server at ``dsn``, dropped after."""
    name = f"spillover_bench_{random.randrange(16**8):08x}"
    server = sa.create_engine(database_url(dsn, ""), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield server.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def derive(header: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    trials = [r for r in rows if r["kind"] == "trial"]
    false = [r for r in rows if r["kind"] == "false_alert"]
    figures: dict[str, Any] = {"ledger_rows": header["ledger_rows"], "trials_per_type": header["trials"],
                               "detection_rate": {}, "detect_delay_s": {}, "detect_delay_p90_s": {}}
    for kind in TYPES:
        mine = [r for r in trials if r["type"] == kind]
        delays = [r["delay_s"] for r in mine if r["detected"]]
        figures["detection_rate"][kind] = round(sum(r["detected"] for r in mine) / len(mine), 4) if mine else None
        figures["detect_delay_s"][kind] = statistics.median(delays) if delays else None
        figures["detect_delay_p90_s"][kind] = percentile(delays, 0.9) if delays else None
    figures["false_alerts_per_clean_week"] = len(false)
    figures["false_alerts_by_rule"] = {rule: sum(1 for r in false if f"{r['rule']}:{r['scope']}" == rule)
                                       for rule in sorted({f"{r['rule']}:{r['scope']}" for r in false})}
    figures["evaluation_pass_ms"] = header["evaluation_pass_ms"]
    views = [r for r in rows if r["kind"] == "view"]
    figures["dashboard_view_ms"] = {f"{store}/{name}": round(statistics.median(r["ms"] for r in views if r["store"] == store and r["range"] == name), 1)
                                    for store, name in sorted({(r["store"], r["range"]) for r in views})}
    figures["dashboard_first_view_ms"] = figures["dashboard_view_ms"].get("sqlite/24h")
    figures["rollup"] = {f"{r['store']}/{r['kind']}": r["s"] for r in rows if r["kind"] in ("rollup_backfill", "rollup_pass", "load")}
    figures["view_ledger_rows"] = {r["store"]: r["rows"] for r in rows if r["kind"] == "load"}
    rates = figures["detection_rate"]
    delays = figures["detect_delay_s"]
    figures["goals_met"] = {
        "detection_rate": all(v is not None and v >= GOALS["detection_rate"] for v in rates.values()),
        "false_alerts_per_clean_week": figures["false_alerts_per_clean_week"] <= GOALS["false_alerts_per_clean_week"],
        "rates_within_one_window": all(delays[k] is not None and figures["detect_delay_p90_s"][k] <= GOALS["detect_delay_s_rates"]
                                       for k in ("cache_drop", "error_spike")),
        "dashboard_first_view": all(v <= GOALS["dashboard_first_view_ms"] for k, v in figures["dashboard_view_ms"].items() if k.endswith("/24h")),
    }
    return figures


def summary_table(figures: dict[str, Any]) -> str:
    rows = [[kind, figures["detection_rate"][kind], figures["detect_delay_s"][kind], figures["detect_delay_p90_s"][kind]] for kind in TYPES]
    text = table(["anomaly", "detected", "delay p50 (s)", "delay p90 (s)"], rows)
    text += "\n\n" + table(["figure", "value"], [
        ["false alerts in the clean week", figures["false_alerts_per_clean_week"]],
        ["false alerts by rule", figures["false_alerts_by_rule"]],
        ["one evaluation (ms)", figures["evaluation_pass_ms"]],
        *[[f"dashboard view {k} (ms)", v] for k, v in figures["dashboard_view_ms"].items()],
        ["rollup (s)", figures["rollup"]],
        ["goals met", figures["goals_met"]],
    ])
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_provenance_arguments(parser)
    add_recompute_arguments(parser)
    parser.add_argument("--per-hour", type=float, default=1200.0, help="mean requests an hour in the alerting ledger")
    parser.add_argument("--local-usd-per-mtok", type=float, default=2.0, help="what a local token costs (a 70B replica's share)")
    parser.add_argument("--trials", type=int, default=20, help="injected anomalies per type")
    # 2,090 an hour at the day and week shape's mean (about 0.66) makes about a million rows in 30 days.
    parser.add_argument("--view-per-hour", type=float, default=2090.0, help="mean requests an hour in the 30-day dashboard ledger")
    parser.add_argument("--view-repeats", type=int, default=5)
    parser.add_argument("--postgres-dsn", help="also time the dashboard on PostgreSQL (in a database of its own, dropped after)")
    parser.add_argument("--no-record", action="store_true", help="print the figures, write nothing")
    args = parser.parse_args()
    recompute_if_asked(args, NAME, derive, summary_table)
    refuse_dirty_tree(args.allow_dirty)
    rules = AlertsConfig()
    raw: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        database = open_database(database_url(None, str(Path(tmp) / "alerts.db")))
        count = load(database.engine, synthesise(14, args.per_hour, seed=1, local_usd_per_mtok=args.local_usd_per_mtok))
        print(f"ledger: {count} rows over 14 days", flush=True)
        fired, pass_s = clean_week(database.engine, rules)
        raw += fired
        print(f"clean week: {len(fired)} alerts fired, {pass_s * 1000:.1f} ms a pass", flush=True)
        rng = random.Random(2)
        for kind in TYPES:
            for number in range(args.trials):
                start = START + dt.timedelta(days=7, minutes=rng.randrange(7 * 24 * 60 - 3 * 60))
                raw.append(trial(database.engine, rules, kind, number, start, rng))
            print(f"{kind}: {sum(r['detected'] for r in raw if r.get('type') == kind)}/{args.trials} detected", flush=True)
        database.dispose()
        raw += view_timings(database_url(None, str(Path(tmp) / "view.db")), "sqlite", args.view_per_hour, args.view_repeats,
                            args.local_usd_per_mtok)
    if args.postgres_dsn:
        with scratch_postgres(args.postgres_dsn) as url:
            raw += view_timings(url, "postgresql", args.view_per_hour, args.view_repeats, args.local_usd_per_mtok)
    header = {"trace": TRACE.name, "start": START.isoformat(), "per_hour": args.per_hour, "local_usd_per_mtok": args.local_usd_per_mtok,
              "trials": args.trials, "ledger_rows": count, "evaluation_pass_ms": round(pass_s * 1000, 2),
              "rules": rules.model_dump(mode="json", exclude={"webhooks"})}
    publish(args, NAME, "Alerts over the ledger: injected anomalies, a clean week, the dashboard's first view", header, raw, derive,
            summary_table)


if __name__ == "__main__":
    main()
