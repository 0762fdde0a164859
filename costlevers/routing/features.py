"""What a router sees of a request before any model answers: the text it embeds and a few
numbers about its shape.

The embedding (all-MiniLM-L6-v2, the model the semantic cache already runs) carries the topic;
the shape features carry what an embedding misses about difficulty: how long the prompt is,
how much of it is numbers and symbols (arithmetic, formulas), how many turns, and whether the
answer must follow a structure (tools, ``response_format``). Offline training
(:mod:`spillover.training.router`) and serving compute them with these same functions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["SHAPE_NAMES", "prompt_text", "shape_features"]

SHAPE_NAMES = (
    "log_chars", "log_words", "digit_share", "log_numbers", "symbol_share", "log_turns", "has_tools", "has_response_format",
    "question_marks", "log_lines",
)

_NUMBER = re.compile(r"\d[\d,]*\.?\d*")
_SYMBOLS = frozenset("=+-*/^%<>()[]{}\\$|_")


def prompt_text(body: Mapping[str, Any]) -> str:
    """The text a router reads: the last user turn of a chat (what is being asked now), or a
    completion's prompt."""
    messages = body.get("messages")
    if messages is None:
        prompt = body.get("prompt") or ""
        return prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
    for message in reversed(messages):
        if message.get("role") == "user":
            return _content_text(message.get("content"))
    return _content_text(messages[-1].get("content")) if messages else ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: only the text ones count
        return " ".join(part.get("text") or "" for part in content if isinstance(part, Mapping))
    return ""


def shape_features(body: Mapping[str, Any], text: str) -> np.ndarray:
    """:data:`SHAPE_NAMES`, in order, as float32."""
    chars = max(len(text), 1)
    numbers = _NUMBER.findall(text)
    turns = sum(1 for m in body.get("messages") or [] if m.get("role") == "user") or 1
    values = (
        math.log1p(len(text)),
        math.log1p(len(text.split())),
        sum(c.isdigit() for c in text) / chars,
        math.log1p(len(numbers)),
        sum(c in _SYMBOLS for c in text) / chars,
        math.log(turns),
        float(bool(body.get("tools"))),
        float((body.get("response_format") or {}).get("type") in ("json_object", "json_schema")),
        float(text.count("?")),
        math.log1p(text.count("\n")),
    )
    return np.asarray(values, dtype=np.float32)
