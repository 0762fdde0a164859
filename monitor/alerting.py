"""Alert state: which conditions fire, stay firing, repeat and resolve, with hysteresis.

An :class:`Observation` is one rule's reading for one subject (a team's spend against its
baseline, the error share against its own): its value, the level that fires it and the level
that resolves it (on the safe side of the first, so a value hovering at the threshold does not
flap). :class:`AlertBook` turns each evaluation's observations into transitions: ``fire`` after
``for_evaluations`` breaching readings in a row, ``repeat`` while firing every ``repeat_s``,
``resolve`` after ``resolve_evaluations`` recovered readings in a row (a subject that stops
appearing has recovered). One identity (rule, scope, subject) fires once however many
evaluations see it: that is the deduplication.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

__all__ = ["AlertBook", "Firing", "Observation", "Transition"]


@dataclass(frozen=True)
class Observation:
    rule: str
    scope: str
    subject: str
    value: float
    threshold: float
    resolve_at: float
    above: bool
    summary: str
    #: Enough data to judge (requests, spend over the rule's floor); without it nothing fires.
    eligible: bool = True

    @property
    def id(self) -> str:
        return f"{self.rule}:{self.scope}:{self.subject}"

    def breaching(self) -> bool:
        return self.eligible and (self.value >= self.threshold if self.above else self.value <= self.threshold)

    def recovered(self) -> bool:
        return not self.eligible or (self.value < self.resolve_at if self.above else self.value > self.resolve_at)


@dataclass
class Firing:
    """An alert that fired and has not resolved: what it last read and when it was last sent."""

    observation: Observation
    started_at: dt.datetime
    notified_at: dt.datetime


@dataclass(frozen=True)
class Transition:
    kind: str  # "fire", "repeat" or "resolve"
    observation: Observation
    started_at: dt.datetime
    at: dt.datetime


@dataclass
class AlertBook:
    for_evaluations: int = 1
    resolve_evaluations: int = 3
    repeat_s: float = 4 * 3600
    firing: dict[str, Firing] = field(default_factory=dict)
    _breaching: dict[str, int] = field(default_factory=dict)
    _recovering: dict[str, int] = field(default_factory=dict)

    def step(self, observations: list[Observation], now: dt.datetime) -> list[Transition]:
        """One evaluation: the transitions it causes, in a stable order."""
        seen = {o.id: o for o in observations}
        transitions = []
        for alert_id, o in sorted(seen.items()):
            if alert_id in self.firing:
                transitions += self._while_firing(alert_id, o, now)
            elif o.breaching():
                self._breaching[alert_id] = self._breaching.get(alert_id, 0) + 1
                if self._breaching[alert_id] >= self.for_evaluations:
                    self.firing[alert_id] = Firing(o, now, now)
                    self._breaching.pop(alert_id)
                    transitions.append(Transition("fire", o, now, now))
            else:
                self._breaching.pop(alert_id, None)
        for alert_id in sorted(set(self.firing) - set(seen)):  # no reading at all: recovered
            last = self.firing[alert_id].observation
            transitions += self._while_firing(alert_id, _quiet(last), now)
        for alert_id in set(self._breaching) - set(seen):
            self._breaching.pop(alert_id)
        return transitions

    def _while_firing(self, alert_id: str, o: Observation, now: dt.datetime) -> list[Transition]:
        firing = self.firing[alert_id]
        if o.recovered():
            self._recovering[alert_id] = self._recovering.get(alert_id, 0) + 1
            if self._recovering[alert_id] >= self.resolve_evaluations:
                del self.firing[alert_id]
                self._recovering.pop(alert_id)
                return [Transition("resolve", o, firing.started_at, now)]
            return []
        self._recovering.pop(alert_id, None)
        firing.observation = o
        if (now - firing.notified_at).total_seconds() >= self.repeat_s:
            firing.notified_at = now
            return [Transition("repeat", o, firing.started_at, now)]
        return []


def _quiet(last: Observation) -> Observation:
    return Observation(last.rule, last.scope, last.subject, last.value, last.threshold, last.resolve_at, last.above, last.summary,
                       eligible=False)
