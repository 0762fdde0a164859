"""Alert state: fire, deduplicate, repeat, resolve with hysteresis."""

from __future__ import annotations

import datetime as dt

from monitor.alerting import AlertBook, Observation

T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def spend(value: float, subject: str = "a", eligible: bool = True) -> Observation:
    return Observation("spend_spike", "team", subject, value, threshold=2.0, resolve_at=1.5, above=True, summary=f"{value}", eligible=eligible)


def minutes(n: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


def kinds(book: AlertBook, values: list[float]) -> list[str]:
    out = []
    for i, value in enumerate(values):
        out += [f"{i}:{t.kind}" for t in book.step([spend(value)], minutes(i))]
    return out


def test_fires_once_then_resolves_only_below_the_resolve_level() -> None:
    book = AlertBook(for_evaluations=1, resolve_evaluations=2, repeat_s=3600)
    # 1.8 sits between the levels: it neither fires a quiet alert nor resolves a firing one.
    assert kinds(book, [1.0, 1.8, 2.5, 3.0, 1.8, 1.4, 1.8, 1.4, 1.4, 2.5]) == ["2:fire", "8:resolve", "9:fire"]


def test_for_evaluations_needs_consecutive_breaches() -> None:
    book = AlertBook(for_evaluations=3, resolve_evaluations=1)
    assert kinds(book, [2.5, 2.5, 1.0, 2.5, 2.5, 2.5, 2.5]) == ["5:fire"]


def test_a_still_firing_alert_repeats_after_repeat_s() -> None:
    book = AlertBook(repeat_s=120)
    assert kinds(book, [3.0, 3.0, 3.0, 3.0, 3.0]) == ["0:fire", "2:repeat", "4:repeat"]


def test_ineligible_readings_never_fire_and_a_vanished_subject_resolves() -> None:
    book = AlertBook(resolve_evaluations=2)
    assert book.step([spend(9.0, eligible=False)], minutes(0)) == []
    assert [t.kind for t in book.step([spend(9.0), spend(9.0, "b")], minutes(1))] == ["fire", "fire"]
    assert book.step([spend(9.0)], minutes(2)) == []
    resolved = book.step([spend(9.0)], minutes(3))
    assert [(t.kind, t.observation.subject, t.started_at) for t in resolved] == [("resolve", "b", minutes(1))]
    assert set(book.firing) == {"spend_spike:team:a"}


def test_below_rules_fire_under_their_threshold() -> None:
    book = AlertBook(resolve_evaluations=1)
    drop = Observation("cache_hit_drop", "global", "", 0.2, threshold=0.28, resolve_at=0.34, above=False, summary="")
    back = Observation("cache_hit_drop", "global", "", 0.4, threshold=0.28, resolve_at=0.34, above=False, summary="")
    assert [t.kind for t in book.step([drop], minutes(0))] == ["fire"]
    assert [t.kind for t in book.step([back], minutes(1))] == ["resolve"]
