"""The shadow checks' judge: structured answers as data, short ones exactly, long ones by embedding."""

from __future__ import annotations

import numpy as np

from costlevers.cache.agreement import AnswerJudge, normalise


async def _never(text: str) -> np.ndarray:
    raise AssertionError("no embedding needed for this pair")


def judge(embed=_never) -> AnswerJudge:  # type: ignore[no-untyped-def]
    return AnswerJudge(embed, agree_cosine=0.8)


async def test_structured_answers_compare_as_data() -> None:
    assert await judge().agree('{"city": "Paris", "n": 1}', '```json\n{"n": 1,  "city": "Paris"}\n```') is True
    assert await judge().agree('{"city": "Paris", "n": 1}', '{"city": "Paris", "n": 2}') is False
    assert await judge().agree('{"city": "Paris"}', "Paris") is False


async def test_short_answers_must_match_once_normalised() -> None:
    assert normalise("The answer: Paris!") == "answer paris"
    assert await judge().agree("Paris.", "paris") is True and await judge().agree("Paris", "Lyon") is False
    assert await judge().agree("It costs 1,200 dollars.", "It costs 1,500 dollars.") is False


async def test_long_answers_go_by_embedding_and_empty_ones_give_no_verdict() -> None:
    vectors = {"a": np.array([1.0, 0.0]), "b": np.array([0.9, np.sqrt(1 - 0.81)]), "c": np.array([0.0, 1.0])}

    async def embed(text: str) -> np.ndarray:
        return vectors[text.split()[0]]

    long_a = "a " + "word " * 20
    assert await judge(embed).agree(long_a, "b " + "other " * 20) is True
    assert await judge(embed).agree(long_a, "c " + "other " * 20) is False
    assert await judge().agree("", "Paris") is None and await judge().agree("Paris", "   ") is None
