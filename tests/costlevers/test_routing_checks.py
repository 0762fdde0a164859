"""The cascade's rule checks and the threshold a quality target becomes."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from costlevers.routing.checks import (
    CHECKS,
    arithmetic,
    arithmetic_slips,
    confident,
    final_answer,
    not_refusal,
    not_truncated,
    run_checks,
    valid_structure,
)
from costlevers.routing.threshold import quality_curve, threshold_for

ASK = {"messages": [{"role": "user", "content": "q"}]}


def answer(content: str | None = "ok", *, finish: str = "stop", **message: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content, **message}, "finish_reason": finish}]}


def test_truncation_and_refusals_fail() -> None:
    assert not not_truncated(ASK, answer(finish="length")).passed
    assert not_truncated(ASK, answer()).passed
    assert not not_refusal(ASK, answer("I'm sorry, but I can't help with that.")).passed
    assert not not_refusal(ASK, answer(None, refusal="no")).passed
    assert not_refusal(ASK, answer("Sorry to hear that: here is how to fix it.")).passed


def test_structure_follows_the_json_schema_and_the_tool_parameters() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    request = {**ASK, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}
    assert valid_structure(request, answer('{"n": 3}')).passed
    assert "schema" in valid_structure(request, answer('{"n": "three"}')).detail
    assert "not JSON" in valid_structure(request, answer("n is 3")).detail
    assert not valid_structure({**ASK, "response_format": {"type": "json_object"}}, answer("[1]")).passed
    tools = {**ASK, "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}]}
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": '{"n": 1}'}}
    assert valid_structure(tools, answer(None, tool_calls=[call])).passed
    bad = {**call, "function": {"name": "f", "arguments": '{"m": 1}'}}
    assert not valid_structure(tools, answer(None, tool_calls=[bad])).passed
    assert not valid_structure(tools, answer(None, tool_calls=[{**call, "function": {"name": "g", "arguments": "{}"}}])).passed
    assert valid_structure(ASK, answer("free text")).passed


def test_confidence_reads_the_mean_token_logprob() -> None:
    sure = answer()
    sure["choices"][0]["logprobs"] = {"content": [{"token": "a", "logprob": -0.1}, {"token": "b", "logprob": -0.3}]}
    check = functools.partial(confident, min_mean_logprob=-0.5)
    assert check(ASK, sure).passed
    sure["choices"][0]["logprobs"]["content"][1]["logprob"] = -3.0
    assert not check(ASK, sure).passed
    assert check(ASK, answer()).detail == "no logprobs"


def test_final_answers_and_arithmetic_are_read_from_worked_solutions() -> None:
    good = "He runs 3 x 60 = <<3*60=180>>180 meters a session, so 180 * 3 = 540 a week.\n#### 540"
    assert final_answer(good) == "540" and arithmetic_slips(good) == (3, 0) and arithmetic(ASK, answer(good)).passed
    slipped = "2 bolts and 2/2 = <<2/2=1>>1 bolt: 2 + 1 = 4 bolts.\n#### 4"
    assert arithmetic_slips(slipped) == (3, 1) and not arithmetic(ASK, answer(slipped)).passed
    assert final_answer("so the answer is 1,250.") == "1250" and final_answer("\\boxed{-3}") == "-3"
    assert final_answer("no number stated") is None
    assert arithmetic_slips("<<__import__('os')=1>>") == (1, 1), "only plain arithmetic is evaluated"


def test_a_check_that_raises_counts_as_failed() -> None:
    def broken(request: Any, response: Any) -> Any:
        raise KeyError("boom")

    verdict = run_checks([CHECKS["not_truncated"], broken], ASK, answer())
    assert verdict is not None and not verdict.passed and verdict.check == "broken"
    assert run_checks(CHECKS.values(), ASK, answer("#### 4")) is None


def test_the_threshold_meets_the_target_with_the_fewest_strong_calls() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.0])
    weak = np.array([0, 0, 1, 1, 1], dtype=bool)
    strong = np.array([1, 1, 1, 1, 1], dtype=bool)
    assert math.isclose(threshold_for(scores, weak, strong, 0.8), 0.85), "one strong call gives 4/5 = 0.8 of strong's 5/5"
    assert math.isclose(threshold_for(scores, weak, strong, 1.0), 0.75), "all five right takes both"
    assert threshold_for(scores, weak, strong, 0.6) == math.inf, "the cheap model alone reaches 60%"
    assert threshold_for(scores, np.zeros(5, bool), strong, 1.0) == -math.inf


@given(st.lists(st.tuples(st.integers(0, 5), st.booleans(), st.booleans()), min_size=1, max_size=60),
       st.floats(0.5, 1.0))
def test_a_chosen_threshold_reaches_the_target_on_its_own_items_and_never_splits_a_tie(
        items: list[tuple[int, bool, bool]], target: float) -> None:
    scores = np.array([s for s, _, _ in items], dtype=float)
    weak, strong = np.array([w for _, w, _ in items]), np.array([s for _, _, s in items])
    threshold = threshold_for(scores, weak, strong, target)
    to_strong = scores > threshold
    accuracy = np.where(to_strong, strong, weak).mean()
    if threshold != -math.inf:  # -inf: only sending everything reaches the target (or nothing does)
        assert accuracy >= target * strong.mean() - 1e-9
    assert not np.any(scores == threshold)
    _, curve, _ = quality_curve(scores, weak, strong)
    assert math.isclose(curve[0], weak.mean()) and math.isclose(curve[-1], strong.mean())
