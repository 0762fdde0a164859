"""The board's replica-time book: up and busy seconds per replica and interval."""

from __future__ import annotations

import pytest

from contracts.engine_state import ReplicaInterval, ReplicaState
from serving.replica_time import ReplicaTimeBook


def post(replica: str, at: float, busy_s: float, started_at: float = 0.0) -> ReplicaState:
    return ReplicaState(replica_id=replica, model="m", observed_at=at, busy_s=busy_s, started_at=started_at)


def test_a_replica_is_paid_for_from_its_start_and_busy_time_follows_its_engine() -> None:
    book = ReplicaTimeBook(10.0)
    book.observe(post("a", 1004.0, busy_s=0.0, started_at=995.0))  # loading from 995 to 1004
    book.observe(post("a", 1012.0, busy_s=4.0))  # 8 s up, 4 s busy, across the 1010 boundary
    book.observe(post("a", 1018.0, busy_s=4.0))
    closed = book.closed(0.0, 1020.0)
    assert closed == [
        ReplicaInterval("m", "a", 990.0, 5.0, 0.0),
        ReplicaInterval("m", "a", 1000.0, 10.0, pytest.approx(3.0)),  # 6 of the 8 s span fell here
        ReplicaInterval("m", "a", 1010.0, 8.0, pytest.approx(1.0)),
    ]
    assert sum(i.up_s for i in closed) == 1018.0 - 995.0


def test_only_intervals_that_ended_are_handed_out_and_old_ones_are_dropped() -> None:
    book = ReplicaTimeBook(10.0, keep_s=30.0)
    for t in range(1000, 1061, 2):
        book.observe(post("a", float(t), busy_s=0.0))
    assert [i.start for i in book.closed(1020.0, 1055.0)] == [1020.0, 1030.0, 1040.0]
    assert [i.start for i in book.closed(0.0, 1075.0)] == [1040.0, 1050.0], "kept for 30 s after they ended"


def test_a_retired_replica_adds_no_more_time_and_busy_never_exceeds_up() -> None:
    book = ReplicaTimeBook(10.0)
    book.observe(post("a", 1000.0, busy_s=0.0))
    book.observe(post("a", 1002.0, busy_s=50.0))  # a counter jump: busy is capped at the 2 s up
    book.retire("a")
    book.observe(post("b", 1005.0, busy_s=0.0))
    book.observe(post("b", 1009.0, busy_s=1.0))
    assert book.closed(0.0, 1010.0) == [ReplicaInterval("m", "a", 1000.0, 2.0, 2.0), ReplicaInterval("m", "b", 1000.0, 4.0, 1.0)]
