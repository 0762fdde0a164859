"""Which parts of a chat request may be compressed, and the request rebuilt from their cut text.

Never touched: system and developer messages (the stable prefix that engine and provider prompt
caches hit: nothing before the first compressible message changes, so the cached prefix still
matches), tool definitions and tool calls, the last ``keep_last_turns`` messages before the final
user message, anything after it, and the question itself. The question is the final user
message's last block (blank-line separated), or from a ``Question:`` line on: RAG prompts put
the documents first and the question last. Compressible: the rest of the final user message, and
older user, assistant and tool messages (chat history), their text only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Piece", "append_instruction", "compressible_pieces", "rebuild"]

_QUESTION_LINE = re.compile(r"(?im)^[ \t]*(question|q|query)\s*:")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_HISTORY_ROLES = frozenset({"user", "assistant", "tool"})


@dataclass(frozen=True)
class Piece:
    """A compressible text: where it sits (message, and content part where the content is a list)
    and the protected text after it in the same string."""

    message: int
    part: int | None
    text: str
    tail: str = ""


def _text_of(content: Any, part: int | None) -> str | None:
    if part is None:
        return content if isinstance(content, str) else None
    item = content[part]
    return item.get("text") if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str) else None


def _text_parts(content: Any) -> list[int | None]:
    if isinstance(content, str):
        return [None]
    if isinstance(content, list):
        return [i for i in range(len(content)) if _text_of(content, i) is not None]
    return []


def _split_question(text: str) -> tuple[str, str]:
    """(context, question with the separator before it); no context when there is one block."""
    marks = list(_QUESTION_LINE.finditer(text))
    if marks and marks[-1].start() > 0:
        cut = marks[-1].start()
    else:
        blanks = list(_BLANK_LINE.finditer(text.rstrip()))
        if not blanks:
            return "", text
        cut = blanks[-1].start()
    return text[:cut], text[cut:]


def compressible_pieces(messages: Sequence[Any], keep_last_turns: int) -> tuple[list[Piece], str]:
    """The compressible pieces in order, and the question; no pieces when there is no final user
    message."""
    last_user = next((i for i in range(len(messages) - 1, -1, -1) if isinstance(messages[i], dict) and messages[i].get("role") == "user"), None)
    if last_user is None:
        return [], ""
    pieces: list[Piece] = []
    for index in range(max(0, last_user - keep_last_turns)):
        message = messages[index]
        if not isinstance(message, dict) or message.get("role") not in _HISTORY_ROLES or message.get("tool_calls"):
            continue
        content = message.get("content")
        pieces.extend(Piece(index, part, text) for part in _text_parts(content) if (text := _text_of(content, part)))
    content = messages[last_user].get("content")
    parts = _text_parts(content)
    if not parts:
        return pieces, ""
    for part in parts[:-1]:
        text = _text_of(content, part)
        if text:
            pieces.append(Piece(last_user, part, text))
    context, question = _split_question(_text_of(content, parts[-1]) or "")
    if context.strip():
        pieces.append(Piece(last_user, parts[-1], context, tail=question))
    return pieces, question.strip()


def rebuild(messages: Sequence[Any], pieces: Sequence[Piece], texts: Sequence[str]) -> list[Any]:
    """A copy of ``messages`` with each piece's text replaced (its tail kept after it)."""
    out = [dict(m) if isinstance(m, dict) else m for m in messages]
    for piece, text in zip(pieces, texts, strict=True):
        message = out[piece.message]
        if piece.part is None:
            message["content"] = text + piece.tail
        else:
            content = [dict(p) if isinstance(p, dict) else p for p in message["content"]]
            content[piece.part]["text"] = text + piece.tail
            message["content"] = content
    return out


def append_instruction(messages: Sequence[Any], instruction: str) -> list[Any]:
    """``instruction`` after the final user message's text: after the stable prefix, so prompt
    caches still hit."""
    out = list(messages)
    for index in range(len(out) - 1, -1, -1):
        message = out[index]
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                out[index] = {**message, "content": f"{content}\n\n{instruction}"}
            elif isinstance(content, list):
                out[index] = {**message, "content": [*content, {"type": "text", "text": instruction}]}
            break
    return out
