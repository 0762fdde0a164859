"""The request router's bookkeeping: prompt tokens in flight per replica, fewest first."""

from __future__ import annotations

import threading

from serving.token_router import InFlightTokens


def test_ranks_by_tokens_in_flight_not_by_request_count() -> None:
    tokens = InFlightTokens()
    tokens.routed("a1", "A", 6000)  # one long prompt
    for i in range(3):
        tokens.routed(f"b{i}", "B", 300)  # three short ones
    assert tokens.ranked(["A", "B", "C"], key=str) == ["C", "B", "A"]
    tokens.completed("a1")
    assert tokens.ranked(["A", "B"], key=str) == ["A", "B"] and tokens.of("B") == 900


def test_a_retry_moves_its_tokens_and_a_dead_replica_is_forgotten() -> None:
    tokens = InFlightTokens()
    tokens.routed("r", "A", 500)
    tokens.routed("r", "B", 500)  # rejected by A, sent to B
    assert (tokens.of("A"), tokens.of("B")) == (0, 500)
    tokens.forget("B")
    tokens.completed("r")  # the dead replica's request completes with an error afterwards
    assert (tokens.of("A"), tokens.of("B")) == (0, 0)


def test_completions_from_other_threads_keep_the_books_balanced() -> None:
    tokens = InFlightTokens()
    ids = [f"q{i}" for i in range(2000)]
    for i, request_id in enumerate(ids):
        tokens.routed(request_id, "AB"[i % 2], 7)
    threads = [threading.Thread(target=lambda part=ids[k::4]: [tokens.completed(r) for r in part]) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tokens.of("A") == tokens.of("B") == 0
