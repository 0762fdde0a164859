"""The monitor loop: keep the rollup current and evaluate the alert rules, on one replica.

Every ingress replica runs this loop, and each pass first takes or renews the ``monitor`` lease
(:mod:`monitor.lease`): only its holder refreshes the rollup and evaluates, so an alert is sent
once however many replicas serve, and a holder that dies is replaced within the lease's time.
It lives in the ingress rather than in the autoscaler's loop because the ingress always runs
and holds the ledger's database; the autoscaler loop is optional (``spillover autoscale``, a
Deployment of its own in a cluster) and reads Prometheus, not the ledger.

SQL runs in a worker thread; notifications go to :class:`monitor.webhooks.Notifier`'s queue, so
neither a slow database nor a slow webhook holds up a request.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from costbook.config import BudgetConfig
from monitor.alerting import AlertBook, Firing, Observation, Transition
from monitor.config import AlertsConfig, MonitorConfig
from monitor.lease import Lease
from monitor.rollup import as_utc, refresh_rollup
from monitor.signals import budget_readings, rate_readings, spend_readings
from monitor.webhooks import Notifier
from stores.sql_schema import alerts_table as alerts

__all__ = ["Monitor", "alert_rows", "readings"]

logger = logging.getLogger(__name__)


class Monitor:
    def __init__(self, config: MonitorConfig, engine: sa.Engine, budgets: Sequence[BudgetConfig], *, notifier: Notifier | None = None,
                 holder: str | None = None, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self._config, self._engine, self._budgets, self._clock = config, engine, list(budgets), clock
        rules = config.alerts
        self._book = AlertBook(rules.for_evaluations, rules.resolve_evaluations, rules.repeat_s)
        self.notifier = notifier or Notifier(rules.webhooks)
        self._lease = Lease(engine, "monitor", holder or uuid.uuid4().hex[:16], ttl_s=3 * rules.evaluate_every_s)
        self._holding = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.notifier.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="monitor")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._holding:
            await asyncio.to_thread(self._lease.release)
        await self.notifier.aclose()

    async def run_once(self, now: dt.datetime | None = None) -> list[Transition] | None:
        """One pass: ``None`` when another replica holds the lease, else the transitions sent."""
        now = now or self._clock()
        if not await asyncio.to_thread(self._lease.acquire):
            self._holding = False
            return None
        if not self._holding:  # newly the evaluator: carry on from what the last one left firing
            self._book.firing = await asyncio.to_thread(_load_firing, self._engine)
            self._holding = True
        transitions = await asyncio.to_thread(self._evaluate, now)
        for transition in transitions:
            self.notifier.notify(transition)
        return transitions

    def _evaluate(self, now: dt.datetime) -> list[Transition]:
        refresh_rollup(self._engine, now, self._config.rollup_recompute_h)
        rules = self._config.alerts
        if not rules.enabled:
            return []
        with self._engine.connect() as connection:
            observations = readings(connection, rules, self._budgets, now)
        transitions = self._book.step(observations, now)
        _store(self._engine, transitions, self._book.firing)
        return transitions

    async def _run(self) -> None:
        while True:
            try:
                transitions = await self.run_once()
                for t in transitions or ():
                    logger.warning("alert %s: %s", t.kind, t.observation.summary, extra={"alert": t.observation.id})
            except Exception:  # a bad pass (database away) must not end the loop
                logger.exception("monitor pass failed")
            await asyncio.sleep(self._config.alerts.evaluate_every_s)


def readings(connection: sa.Connection, rules: AlertsConfig, budgets: Sequence[BudgetConfig], now: dt.datetime) -> list[Observation]:
    """Every enabled rule's readings at ``now``: what one evaluation judges."""
    observations: list[Observation] = []
    if rules.spend.enabled:
        observations += spend_readings(connection, rules.spend, now)
    observations += rate_readings(connection, {"cache_hit_drop": rules.cache_hit_drop, "error_spike": rules.error_spike,
                                               "spill_spike": rules.spill_spike}, now)
    if rules.budget.enabled:
        observations += budget_readings(connection, budgets, rules.budget.thresholds, now)
    return observations


def _store(engine: sa.Engine, transitions: list[Transition], firing: dict[str, Firing]) -> None:
    """Write each transition, and the latest reading of every alert still firing."""
    with engine.begin() as connection:
        for t in transitions:
            o = t.observation
            values = {"rule": o.rule, "scope": o.scope, "subject": o.subject, "value": o.value, "threshold": o.threshold,
                      "summary": o.summary[:512]}
            if t.kind == "fire":
                connection.execute(alerts.delete().where(alerts.c.id == o.id))
                connection.execute(alerts.insert().values(id=o.id, state="firing", started_at=t.started_at, notified_at=t.at, **values))
            elif t.kind == "repeat":
                connection.execute(alerts.update().where(alerts.c.id == o.id).values(notified_at=t.at, **values))
            else:
                connection.execute(alerts.update().where(alerts.c.id == o.id).values(state="resolved", resolved_at=t.at, **values))
        for alert_id, f in firing.items():
            connection.execute(alerts.update().where(alerts.c.id == alert_id, alerts.c.state == "firing")
                               .values(value=f.observation.value, summary=f.observation.summary[:512]))


def _load_firing(engine: sa.Engine) -> dict[str, Firing]:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(alerts).where(alerts.c.state == "firing")).all()
    return {r.id: Firing(Observation(r.rule, r.scope, r.subject, r.value, r.threshold, r.threshold, True, r.summary),
                         as_utc(r.started_at), as_utc(r.notified_at or r.started_at)) for r in rows}


def alert_rows(engine: sa.Engine, now: dt.datetime, resolved_within: dt.timedelta = dt.timedelta(days=1)) -> list[dict]:
    """Alerts firing now, then those resolved within ``resolved_within``, newest first (the dashboard)."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(alerts).where(sa.or_(alerts.c.state == "firing", alerts.c.resolved_at >= now - resolved_within))
            .order_by(alerts.c.state, sa.desc(alerts.c.started_at))
        ).all()
    return [{"id": r.id, "rule": r.rule, "scope": r.scope, "subject": r.subject, "state": r.state, "value": r.value,
             "threshold": r.threshold, "summary": r.summary, "started_at": as_utc(r.started_at).isoformat(),
             "resolved_at": as_utc(r.resolved_at).isoformat() if r.resolved_at else None} for r in rows]

