"""One whole chat answer: a chat.completion body, however it was first delivered, replayed as a
body or as a stream (the cache replays hits with it, the cascade an accepted cheap answer).

A streamed answer is folded back into the body it stands for (content, tool calls, logprobs,
finish reason and usage per choice), so a streamed miss serves later non-streamed hits and the
other way round. A replayed stream is short (role and content in one chunk per choice, then the
finish, then usage when asked): what the SDK assembles from it equals the body.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from contracts.context import SSE_DONE, Usage

__all__ = ["ChatAnswer"]

_FINISHED = frozenset({"stop", "length"})


def _sse(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


@dataclass(frozen=True)
class ChatAnswer:
    body: dict[str, Any]

    def to_bytes(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> ChatAnswer:
        return cls(json.loads(raw))

    @property
    def usage(self) -> Usage:
        return Usage.from_openai(self.body.get("usage"))

    def cacheable(self, *, tool_calls: bool) -> bool:
        """A whole answer: every choice finished on its own (stop or length), and no tool call
        unless the route allows caching them (their effect lives outside the answer)."""
        choices = self.body.get("choices") or []
        if not choices or not self.body.get("usage"):
            return False
        for choice in choices:
            if choice.get("finish_reason") not in _FINISHED and not (tool_calls and choice.get("finish_reason") == "tool_calls"):
                return False
            if (choice.get("message") or {}).get("tool_calls") and not tool_calls:
                return False
        return True

    @classmethod
    def from_stream(cls, payloads: Iterable[str], *, usage: dict[str, Any] | None = None) -> ChatAnswer | None:
        """Fold SSE payloads (``data: {...}``) back into the chat.completion they stream;
        ``usage`` stands in when the stream carried none."""
        head: dict[str, Any] = {}
        choices: dict[int, dict[str, Any]] = {}
        for payload in payloads:
            for line in payload.splitlines():
                if not line.startswith("data: ") or line == SSE_DONE.strip():
                    continue
                chunk = json.loads(line[len("data: "):])
                if "error" in chunk:
                    return None
                head = head or {k: chunk[k] for k in ("id", "created", "model", "system_fingerprint") if k in chunk}
                usage = chunk.get("usage") or usage
                for part in chunk.get("choices") or []:
                    _fold(choices.setdefault(part["index"], {"index": part["index"], "message": {"role": "assistant", "content": None}}), part)
        if not choices:
            return None
        return cls({**head, "object": "chat.completion", "choices": [choices[i] for i in sorted(choices)], "usage": usage})

    def as_body(self, response_id: str) -> dict[str, Any]:
        return {**self.body, "id": response_id, "created": int(time.time())}

    def as_stream(self, response_id: str, *, include_usage: bool) -> list[str]:
        base = {"id": response_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": self.body.get("model")}
        out = []
        for choice in self.body["choices"]:
            message = choice.get("message") or {}
            delta = {k: v for k, v in message.items() if v is not None}
            if delta.get("tool_calls"):
                delta["tool_calls"] = [{**call, "index": i} for i, call in enumerate(delta["tool_calls"])]
            part: dict[str, Any] = {"index": choice["index"], "delta": delta, "finish_reason": None}
            if choice.get("logprobs") is not None:
                part["logprobs"] = choice["logprobs"]
            out.append(_sse({**base, "choices": [part]}))
            out.append(_sse({**base, "choices": [{"index": choice["index"], "delta": {}, "finish_reason": choice.get("finish_reason")}]}))
        if include_usage:
            out.append(_sse({**base, "choices": [], "usage": self.body.get("usage")}))
        out.append(SSE_DONE)
        return out


def _fold(choice: dict[str, Any], part: dict[str, Any]) -> None:
    """Add one streamed choice delta to the choice being rebuilt."""
    message, delta = choice["message"], part.get("delta") or {}
    if delta.get("role"):
        message["role"] = delta["role"]
    if delta.get("content"):
        message["content"] = (message["content"] or "") + delta["content"]
    for call in delta.get("tool_calls") or []:
        calls = message.setdefault("tool_calls", [])
        while len(calls) <= call.get("index", 0):
            calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
        target = calls[call.get("index", 0)]
        target["id"] = call.get("id") or target["id"]
        function = call.get("function") or {}
        target["function"]["name"] += function.get("name") or ""
        target["function"]["arguments"] += function.get("arguments") or ""
    logprobs = (part.get("logprobs") or {}).get("content")
    if logprobs:
        choice.setdefault("logprobs", {"content": []})["content"] += logprobs
    if part.get("finish_reason"):
        choice["finish_reason"] = part["finish_reason"]
