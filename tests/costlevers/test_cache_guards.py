"""The text guards flag the differences an embedding glosses over, and stay quiet on paraphrases."""

from __future__ import annotations

import pytest

from costlevers.cache.guards import GUARD_NAMES, guards, profile


@pytest.mark.parametrize(
    ("a", "b", "flag"),
    [
        ("How do I lose weight fast?", "How do I not lose weight fast?", "negation_mismatch"),
        ("Why can't I sleep at night?", "Why can I sleep at night?", "negation_mismatch"),
        ("What is the best phone under 10000?", "What is the best phone under 20000?", "number_mismatch"),
        ("How do I make two friends?", "How do I make three friends?", "number_mismatch"),
        ("Who is the president of India?", "Who is the president of France?", "entity_mismatch"),
        ("Is the iPhone better than a Pixel?", "Is the iPhone better than a Galaxy?", "entity_mismatch"),
        ("Which movies came out in 2016?", "Which movies came out in 2017?", "date_mismatch"),
        ("What happened on Monday?", "What happened on Friday?", "date_mismatch"),
        ("Why is the sky blue?", "When is the sky blue?", "question_word_mismatch"),
        ("What are the best books on history?", "What are the worst books on history?", "antonym"),
        ("How do I convert USD to INR?", "How do I convert INR to USD?", "direction_reversed"),
        ("Is Python better than Java?", "Is Java better than Python?", "order_reversed"),
        ("Who is your favorite singer?", "Who are your favorite singers?", "plural_mismatch"),
        ("How do I solve this circuit?", "How do I solve this circuit problem?", "context_reference"),
    ],
)
def test_guard_flags_a_crafted_difference(a: str, b: str, flag: str) -> None:
    values = guards(a, b)
    assert values[flag] > 0, values
    assert guards(b, a) == values  # symmetric: the cache may hold either text


def test_paraphrase_trips_no_guard() -> None:
    values = guards("How can I learn Python quickly?", "How do I learn python fast?")
    assert values == dict.fromkeys(GUARD_NAMES, 0.0)


def test_contractions_are_expanded_before_comparing() -> None:
    """"What's" is "what is"; "don't" is a negation like "do not"."""
    assert guards("What is the meaning of life?", "What's the meaning of life?") == dict.fromkeys(GUARD_NAMES, 0.0)
    assert guards("Why do I not sleep?", "Why don't I sleep?")["negation_mismatch"] == 0


def test_entity_in_lower_case_still_counts_as_shared() -> None:
    """Users type names in lower case; that is not a different entity."""
    assert guards("What does Donald Trump think of NASA?", "what does donald trump think of nasa?")["entity_extra"] == 0


def test_profile_reads_numbers_words_and_sentence_starts() -> None:
    p = profile("Where is London? Paris has 2 million people, three museums and the BBC.")
    assert {"2", "1e6", "3"} <= p.numbers
    assert {"london", "bbc"} <= p.entities  # capitalised inside a sentence; an acronym
    assert not {"where", "paris"} & p.entities  # sentence starts are capitalised anyway
    assert p.question_word == "where"
