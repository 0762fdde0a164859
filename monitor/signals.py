"""The alert rules' readings, taken from the ledger (raw rows over short, indexed time ranges).

* spend: per scope (global, team, user, feature) the spend over the last ``window_h`` against
  the mean of the same hours of day over the trailing ``baseline_days`` (one grouped query per
  day offset, all scopes at once);
* rates: the cache-hit, error and spill shares over the last ``window_s`` against their mean
  over the trailing ``baseline_h`` (before the window);
* budgets: each configured team/user budget and each key's own monthly budget, spent this
  period (UTC day or month) over its limit, one reading per threshold (80/90/100%).

Each returns :class:`monitor.alerting.Observation` values; judging them is the rule book's job.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from contracts.spill import CACHE, LOCAL
from costbook.config import BudgetConfig
from monitor.alerting import Observation
from monitor.config import RateRule, SpendRule
from monitor.rollup import as_utc
from stores.sql_schema import keys_table as keys
from stores.sql_schema import ledger_table as t

__all__ = ["budget_readings", "budget_status", "rate_readings", "spend_readings"]

MICRO = 1_000_000
_SCOPE_COLUMNS = {"team": t.c.team, "user": t.c.user_name, "feature": t.c.feature}


def spend_readings(connection: sa.Connection, rule: SpendRule, now: dt.datetime) -> list[Observation]:
    window = dt.timedelta(hours=rule.window_h)
    current = _spend_by_scope(connection, now - window, now, rule.scopes)
    past: dict[tuple[str, str], float] = defaultdict(float)
    for day in range(1, rule.baseline_days + 1):
        end = now - dt.timedelta(days=day)
        for key, usd in _spend_by_scope(connection, end - window, end, rule.scopes).items():
            past[key] += usd / rule.baseline_days
    readings = []
    for (scope, subject), usd in sorted(current.items()):
        baseline = past.get((scope, subject), 0.0)
        # A subject with no history has no baseline to be twice of: the floor alone judges it.
        threshold = rule.factor * baseline if baseline > 0 else float("inf")
        label = "all traffic" if scope == "global" else f"{scope} {subject!r}"
        readings.append(Observation(
            "spend_spike", scope, subject, round(usd, 6), round(threshold, 6), round(rule.resolve_factor * baseline, 6), True,
            f"Spend of {label} over the last {rule.window_h} h is ${usd:.2f}, {usd / baseline:.1f}x its mean for these hours over "
            f"the last {rule.baseline_days} days (${baseline:.2f})" if baseline > 0 else f"Spend of {label}: ${usd:.2f}, no history",
            eligible=usd >= rule.min_usd))
    return readings


def _spend_by_scope(connection: sa.Connection, start: dt.datetime, end: dt.datetime, scopes: Sequence[str]) -> dict[tuple[str, str], float]:
    """Micro-dollars spent in [start, end), summed per (scope, subject)."""
    columns = [_SCOPE_COLUMNS[s] for s in scopes if s in _SCOPE_COLUMNS]
    rows = connection.execute(
        sa.select(*columns, sa.func.sum(t.c.cost_micro_usd)).where(t.c.at >= start, t.c.at < end).group_by(*columns)
    ).all()
    out: dict[tuple[str, str], float] = defaultdict(float)
    for row in rows:
        usd = int(row[-1] or 0) / MICRO
        if "global" in scopes:
            out[("global", "")] += usd
        for scope, value in zip([s for s in scopes if s in _SCOPE_COLUMNS], row[:-1], strict=True):
            out[(scope, value or "(none)")] += usd
    return out


def rate_readings(connection: sa.Connection, rules: dict[str, RateRule], now: dt.datetime) -> list[Observation]:
    """The cache-hit, error and spill shares: ``rules`` by name (``cache_hit_drop``, ``error_spike``,
    ``spill_spike``), each against its own baseline."""
    readings = []
    for name, rule in rules.items():
        if not rule.enabled:
            continue
        window_start = _window_start(connection, rule, now)
        requests, hits = _share(connection, name, window_start, now)
        base_requests, base_hits = _share(connection, name, window_start - dt.timedelta(hours=rule.baseline_h), window_start)
        if base_requests == 0 or (rule.direction == "below" and base_hits == 0):
            continue  # nothing to compare with yet, or nothing to fall from
        value = hits / requests if requests else 0.0
        baseline = base_hits / base_requests
        threshold = rule.factor * baseline
        resolve_at = rule.resolve_factor * baseline
        if rule.direction == "above":
            threshold, resolve_at = max(threshold, rule.floor), max(resolve_at, rule.floor * rule.resolve_factor / rule.factor)
        what = {"cache_hit_drop": "Cache hit rate", "error_spike": "Error rate", "spill_spike": "Spill share"}.get(name, name)
        readings.append(Observation(
            name, "global", "", round(value, 4), round(threshold, 4), round(resolve_at, 4), rule.direction == "above",
            f"{what} over the last {round((now - window_start).total_seconds() / 60)} min is {value:.1%} against {baseline:.1%} over the {rule.baseline_h} h before "
            f"({requests} requests)", eligible=requests >= rule.min_requests))
    return readings


def _window_start(connection: sa.Connection, rule: RateRule, now: dt.datetime) -> dt.datetime:
    """The window's start: ``window_s`` back, or further (up to ``max_window_s``) until it holds
    ``min_requests``: a share of a handful of requests is noise (at 60 requests and a 1% error
    rate, four errors in a row happen every few hours), so a quiet hour widens its window rather
    than alerting on chance. Busy traffic keeps the 5 minutes the PrometheusRules use."""
    start = now - dt.timedelta(seconds=rule.window_s)
    nth = connection.execute(
        sa.select(t.c.at).where(t.c.at < now, t.c.at >= now - dt.timedelta(seconds=rule.max_window_s))
        .order_by(t.c.at.desc()).offset(rule.min_requests - 1).limit(1)
    ).scalar()
    if nth is None:  # fewer than min_requests in the longest window: judged ineligible over it
        return now - dt.timedelta(seconds=rule.max_window_s)
    return min(start, as_utc(nth))


def _share(connection: sa.Connection, rule: str, start: dt.datetime, end: dt.datetime) -> tuple[int, int]:
    """Requests in [start, end) and how many of them count for ``rule``."""
    counted = {
        "cache_hit_drop": t.c.cache_result.in_(("exact", "semantic")),
        "error_spike": t.c.status.in_(("error", "cut")),
        "spill_spike": sa.and_(t.c.destination.is_not(None), t.c.destination.not_in((LOCAL, CACHE))),
    }[rule]
    row = connection.execute(
        sa.select(sa.func.count(), sa.func.count().filter(counted)).where(t.c.at >= start, t.c.at < end)
    ).one()
    return int(row[0]), int(row[1])


def budget_status(connection: sa.Connection, budgets: Iterable[BudgetConfig], now: dt.datetime) -> list[dict[str, object]]:
    """Each configured team/user budget (per period it sets) and each key's own monthly budget,
    with what its subject spent this UTC period according to the ledger."""
    day = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    limits: list[tuple[str, str, str, dt.datetime, float]] = []
    for b in budgets:
        for period, start, usd in (("day", day, b.daily_usd), ("month", month, b.monthly_usd)):
            if usd:
                limits.append((b.scope, b.name, period, start, usd))
    for key_id, budget in connection.execute(
        sa.select(keys.c.key_id, keys.c.budget_micro_usd).where(keys.c.budget_micro_usd.is_not(None), keys.c.revoked_at.is_(None))
    ).all():
        if budget:
            limits.append(("key", key_id, "month", month, budget / MICRO))
    column = {"team": t.c.team, "user": t.c.user_name, "key": t.c.key_id}
    status = []
    for scope, name, period, start, limit in limits:
        spent = int(connection.execute(
            sa.select(sa.func.coalesce(sa.func.sum(t.c.cost_micro_usd), 0)).where(column[scope] == name, t.c.at >= start)
        ).scalar() or 0) / MICRO
        status.append({"scope": scope, "name": name, "period": period, "limit_usd": limit, "spent_usd": round(spent, 6),
                       "left_usd": round(max(0.0, limit - spent), 6), "used_share": round(spent / limit, 4)})
    return status


def budget_readings(connection: sa.Connection, budgets: Iterable[BudgetConfig], thresholds: Sequence[float],
                    now: dt.datetime) -> list[Observation]:
    readings = []
    for b in budget_status(connection, budgets, now):
        share = float(b["used_share"])  # type: ignore[arg-type]
        for threshold in thresholds:
            readings.append(Observation(
                f"budget_{round(threshold * 100)}", str(b["scope"]), f"{b['name']}/{b['period']}", share, threshold, threshold, True,
                f"{str(b['scope']).capitalize()} {b['name']!r} has spent ${b['spent_usd']:.2f} of its ${b['limit_usd']:.2f} "
                f"{b['period']} budget ({share:.0%})",
            ))
    return readings
