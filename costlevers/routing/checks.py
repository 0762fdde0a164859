"""The cascade's checks on a cheap model's answer: each says pass or fail, never raises.

A check sees the request body and the answer body (an OpenAI ``chat.completion``) and answers
with a :class:`Verdict`. Failing any configured check escalates the request to the next
candidate; a check that errors counts as failed (:func:`run_checks`), since an answer nobody
could check is not one to keep. Every check here is a few string and JSON operations, well
under the 2 ms budget (``bench/routing.py`` times them on real answers); the second-sample
agreement and the learned verifier live in :mod:`costlevers.routing.cascade` and
:mod:`costlevers.routing.verifier`, since one calls a model and the other holds weights.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema

__all__ = ["CHECKS", "Check", "Verdict", "confident", "answer_text", "arithmetic_slips", "final_answer", "run_checks"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    check: str
    passed: bool
    detail: str = ""


Check = Callable[[Mapping[str, Any], Mapping[str, Any]], Verdict]


def _first_choice(answer: Mapping[str, Any]) -> Mapping[str, Any]:
    choices = answer.get("choices") or [{}]
    return choices[0] or {}


def answer_text(answer: Mapping[str, Any]) -> str:
    """The first choice's text (a chat message's content, or a completion's text)."""
    choice = _first_choice(answer)
    message = choice.get("message")
    if message is not None:
        return message.get("content") or ""
    return choice.get("text") or ""


def not_truncated(request: Mapping[str, Any], answer: Mapping[str, Any]) -> Verdict:
    """An answer cut at ``max_tokens`` (``finish_reason: length``) is not a whole answer."""
    reason = _first_choice(answer).get("finish_reason")
    return Verdict("not_truncated", reason != "length", f"finish_reason={reason}")


_REFUSAL = re.compile(
    r"^\s*(?:i(?:'m| am) sorry,? (?:but )?i (?:can(?:no|')t|am unable|won't)|i can(?:no|')t (?:help|assist|provide|answer)"
    r"|i(?:'m| am) (?:not able|unable) to (?:help|assist|provide|answer)|as an ai(?: language model)?,? i)",
    re.IGNORECASE,
)


def not_refusal(request: Mapping[str, Any], answer: Mapping[str, Any]) -> Verdict:
    """The model declined (OpenAI's ``refusal`` field, or an answer that opens with a refusal)."""
    message = _first_choice(answer).get("message") or {}
    if message.get("refusal"):
        return Verdict("not_refusal", False, "refusal field")
    refused = bool(_REFUSAL.match(answer_text(answer)))
    return Verdict("not_refusal", not refused, "opens with a refusal" if refused else "")


def valid_structure(request: Mapping[str, Any], answer: Mapping[str, Any]) -> Verdict:
    """The answer parses and validates against what the request asked for: ``response_format``'s
    JSON schema (or any JSON object for ``json_object``), or each tool call's parameter schema."""
    message = _first_choice(answer).get("message") or {}
    tools = {(t.get("function") or {}).get("name"): (t.get("function") or {}).get("parameters") for t in request.get("tools") or []}
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        name = function.get("name")
        if name not in tools:
            return Verdict("valid_structure", False, f"unknown tool {name!r}")
        problem = _json_problem(function.get("arguments") or "", tools[name])
        if problem:
            return Verdict("valid_structure", False, f"tool {name!r}: {problem}")
    response_format = request.get("response_format") or {}
    kind = response_format.get("type")
    if kind not in ("json_object", "json_schema") or message.get("tool_calls"):
        return Verdict("valid_structure", True)
    schema = (response_format.get("json_schema") or {}).get("schema") if kind == "json_schema" else {"type": "object"}
    problem = _json_problem(answer_text(answer), schema)
    return Verdict("valid_structure", not problem, problem)


def _json_problem(text: str, schema: Mapping[str, Any] | None) -> str:
    """Why ``text`` is not a JSON document valid against ``schema`` ('' when it is)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"not JSON: {exc.msg}"
    if schema:
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(value))
        if error is not None:
            return f"schema: {error.message[:200]}"
    return ""


def confident(request: Mapping[str, Any], answer: Mapping[str, Any], *, min_mean_logprob: float) -> Verdict:
    """The engine's own token log-probabilities: a low mean says the model was guessing. An answer
    without logprobs fails (the cascade asks for them when this check is on)."""
    content = (_first_choice(answer).get("logprobs") or {}).get("content") or []
    values = [t["logprob"] for t in content if isinstance(t.get("logprob"), (int, float)) and math.isfinite(t["logprob"])]
    if not values:
        return Verdict("confident", False, "no logprobs")
    mean = sum(values) / len(values)
    return Verdict("confident", mean >= min_mean_logprob, f"mean logprob {mean:.3f}")


_FINAL = re.compile(r"(?:####|\\boxed\{|answer is:?|answer:)\s*\$?\s*(-?[\d,]*\.?\d+)", re.IGNORECASE)


def final_answer(text: str) -> str | None:
    """The number an answer states as final (``#### 42``, ``\\boxed{42}``, "the answer is 42")."""
    found = _FINAL.findall(text)
    return found[-1].replace(",", "") if found else None


def states_final_answer(request: Mapping[str, Any], answer: Mapping[str, Any]) -> Verdict:
    value = final_answer(answer_text(answer))
    return Verdict("final_answer", value is not None, "" if value is None else value)


# A calculator annotation (<<4*3+6=18>>) or a written step ("3 x 60 = 180").
_ANNOTATED = re.compile(r"<<([^<>=]+)=([^<>=]+)>>")
_WRITTEN = re.compile(r"(?<![\w.])((?:\d[\d,]*\.?\d*\s*[-+*/x×÷]\s*)+\d[\d,]*\.?\d*)\s*=\s*\$?(-?\d[\d,]*\.?\d*)(?![\d.]*\s*[-+*/x×÷]\s*\d)")
_OPS: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
}


def _evaluate(expression: str) -> float:
    """A + - * / expression of numbers, with nothing else allowed (no names, calls or powers)."""
    cleaned = expression.replace(",", "").replace("×", "*").replace("÷", "/").replace("x", "*").replace("$", "")

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        raise ValueError("not plain arithmetic")

    return walk(ast.parse(cleaned.strip(), mode="eval"))


def arithmetic_slips(text: str) -> tuple[int, int]:
    """(steps checked, steps whose stated result is wrong) over the answer's arithmetic."""
    steps = [*_ANNOTATED.findall(text), *_WRITTEN.findall(_ANNOTATED.sub(" ", text))]
    wrong = 0
    for expression, stated in steps:
        try:
            value = _evaluate(expression)
            claimed = float(stated.replace(",", "").replace("$", ""))
        except (ValueError, SyntaxError, ZeroDivisionError, RecursionError):
            wrong += 1
            continue
        if not math.isclose(value, claimed, rel_tol=1e-3, abs_tol=0.01):
            wrong += 1
    return len(steps), wrong


def arithmetic(request: Mapping[str, Any], answer: Mapping[str, Any]) -> Verdict:
    """Every calculation the answer writes down re-evaluates to what it states."""
    steps, wrong = arithmetic_slips(answer_text(answer))
    return Verdict("arithmetic", wrong == 0, f"{wrong}/{steps} steps wrong")


#: The checks a route names in ``routing.cascade.checks`` (the confidence check takes its bound).
CHECKS: dict[str, Check] = {
    "not_truncated": not_truncated,
    "not_refusal": not_refusal,
    "valid_structure": valid_structure,
    "final_answer": states_final_answer,
    "arithmetic": arithmetic,
}


def run_checks(checks: Iterable[Check], request: Mapping[str, Any], answer: Mapping[str, Any]) -> Verdict | None:
    """The first failing verdict, or None when all pass; a check that raises has failed."""
    for check in checks:
        try:
            verdict = check(request, answer)
        except Exception as exc:  # a broken check must escalate, never answer with a 500
            name = getattr(check, "__name__", repr(check))
            logger.warning("cascade check %s raised %s: escalating", name, type(exc).__name__)
            return Verdict(name, False, f"check raised {type(exc).__name__}")
        if not verdict.passed:
            return verdict
    return None
