"""The request router's bookkeeping: prompt tokens not yet started, then in flight, per replica, fewest first."""

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


def test_a_started_prompt_no_longer_counts_against_its_replica_until_it_completes() -> None:
    tokens = InFlightTokens()
    tokens.routed("i-long", "A", 6000, sender_id="long")  # decoding soon: long prefill done
    tokens.routed("i-s1", "B", 300, sender_id="s1")  # queued, not started
    assert tokens.ranked(["A", "B"], key=str) == ["B", "A"]
    tokens.started("long")
    assert tokens.ranked(["A", "B"], key=str) == ["A", "B"], "A's prompt is done; B's still waits"
    assert (tokens.unstarted_of("A"), tokens.of("A")) == (0, 6000)
    tokens.started("long")  # a second mark changes nothing
    tokens.completed("i-long")
    tokens.completed("i-s1")
    assert [tokens.of(r) + tokens.unstarted_of(r) for r in "AB"] == [0, 0]


def test_a_retry_after_start_and_an_unknown_start_keep_the_books_balanced() -> None:
    tokens = InFlightTokens()
    tokens.routed("i", "A", 500, sender_id="r")
    tokens.routed("i", "B", 500, sender_id="r")  # rejected by A before it started
    tokens.started("r")
    tokens.started("never-routed")
    assert (tokens.unstarted_of("A"), tokens.unstarted_of("B"), tokens.of("B")) == (0, 0, 500)
    tokens.completed("i")
    assert (tokens.of("A"), tokens.of("B"), tokens.unstarted_of("B")) == (0, 0, 0)
