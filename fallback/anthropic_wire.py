"""OpenAI chat completions <-> Anthropic Messages, both ways, streaming included.

Pure functions: no I/O, so every shape is unit-tested on examples from Anthropic's API
reference, including fields vLLM's Messages endpoint never emits (cache read/write usage,
thinking blocks).

Requests: system and developer messages become ``system``; tool results (OpenAI ``tool``
messages) become ``tool_result`` blocks in a user turn; assistant ``tool_calls`` become
``tool_use`` blocks; consecutive turns of one role merge (Anthropic requires alternation);
``stop`` becomes ``stop_sequences``; ``tool_choice`` maps auto/required/none/named to
auto/any/none/tool. Responses: text and tool_use blocks become ``content`` and ``tool_calls``,
``stop_reason`` becomes ``finish_reason``, and usage keeps Anthropic's cache counts apart
(:class:`~contracts.context.Usage`: its ``input_tokens`` exclude cache reads and writes).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from contracts.context import Usage
from contracts.errors import InvalidRequestError

__all__ = ["to_messages_request", "from_messages_response", "StreamTranslator", "usage_from_anthropic", "DEFAULT_MAX_TOKENS"]

#: Anthropic requires ``max_tokens``; OpenAI callers may leave it out.
DEFAULT_MAX_TOKENS = 4096

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}


def to_messages_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """An OpenAI chat-completions body as an Anthropic Messages request for ``model``."""
    if int(body.get("n") or 1) != 1:
        raise InvalidRequestError("This hosted model returns one choice per request; n must be 1.", param="n")
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in body["messages"]:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text_of(message.get("content")))
        elif role == "tool":
            block = {"type": "tool_result", "tool_use_id": message.get("tool_call_id"), "content": _text_of(message.get("content"))}
            _append(turns, "user", [block])
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(message))
        else:
            _append(turns, "user", _user_blocks(message.get("content")))
    request: dict[str, Any] = {
        "model": model,
        "messages": turns,
        "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS,
    }
    if system:
        request["system"] = "\n\n".join(system)
    for name in ("temperature", "top_p", "stream"):
        if body.get(name) is not None:
            request[name] = body[name]
    stop = body.get("stop")
    if stop:
        request["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("user"):
        request["metadata"] = {"user_id": str(body["user"])}
    if body.get("tools"):
        request["tools"] = [_tool(t) for t in body["tools"]]
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            request["tool_choice"] = choice
    return request


def usage_from_anthropic(usage: dict[str, Any] | None) -> Usage:
    """Anthropic's usage as the normalised record: prompt tokens include cache reads and writes."""
    usage = usage or {}
    reads = int(usage.get("cache_read_input_tokens") or 0)
    writes = int(usage.get("cache_creation_input_tokens") or 0)
    return Usage(
        prompt_tokens=int(usage.get("input_tokens") or 0) + reads + writes,
        cached_read_tokens=reads,
        cache_write_tokens=writes,
        completion_tokens=int(usage.get("output_tokens") or 0),
    )


def openai_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_read_tokens, "cache_write_tokens": usage.cache_write_tokens},
    }


def from_messages_response(response: dict[str, Any], public_model: str) -> tuple[dict[str, Any], Usage]:
    """An Anthropic Messages response as an OpenAI chat completion, and its usage."""
    texts, tool_calls, thinking = [], [], []
    for block in response.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            tool_calls.append(_tool_call(block, len(tool_calls)))
        elif kind == "thinking":
            thinking.append(block.get("thinking", ""))
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if tool_calls:
        message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in tool_calls]
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    usage = usage_from_anthropic(response.get("usage"))
    body = {
        "id": f"chatcmpl-{response.get('id', '')}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": public_model,
        "choices": [{"index": 0, "message": message, "finish_reason": _FINISH.get(response.get("stop_reason") or "", "stop"), "logprobs": None}],
        "usage": openai_usage(usage),
    }
    return body, usage


@dataclass
class StreamTranslator:
    """Anthropic stream events in, OpenAI ``chat.completion.chunk`` payloads out.

    Feed each event's JSON with :meth:`feed`; it yields SSE ``data:`` payloads. ``usage`` holds
    the usage seen so far (input counts arrive first, output counts last), so a stream cut in
    the middle is still accounted.
    """

    public_model: str
    include_usage: bool = False
    usage: Usage = field(default_factory=Usage)
    _id: str = "chatcmpl-stream"
    _created: int = field(default_factory=lambda: int(time.time()))
    _tool_index: dict[int, int] = field(default_factory=dict)
    _started: bool = False
    finished: bool = False

    def feed(self, event: dict[str, Any]) -> Iterator[str]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self._id = f"chatcmpl-{message.get('id', '')}"
            self.usage = usage_from_anthropic(message.get("usage"))
            self._started = True
            yield self._chunk({"role": "assistant", "content": ""})
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = len(self._tool_index)
                self._tool_index[int(event.get("index", 0))] = index
                call = _tool_call({**block, "input": None}, index)
                call["function"]["arguments"] = ""
                yield self._chunk({"tool_calls": [call]})
            elif block.get("type") == "text" and block.get("text"):
                yield self._chunk({"content": block["text"]})
        elif kind == "content_block_delta":
            yield from self._delta(int(event.get("index", 0)), event.get("delta") or {})
        elif kind == "message_delta":
            delta = event.get("delta") or {}
            output = (event.get("usage") or {}).get("output_tokens")
            if output is not None:
                self.usage.completion_tokens = int(output)
            if delta.get("stop_reason"):
                yield self._chunk({}, finish=_FINISH.get(delta["stop_reason"], "stop"))
        elif kind == "message_stop":
            self.finished = True
            if self.include_usage:
                yield self._payload({"id": self._id, "object": "chat.completion.chunk", "created": self._created,
                                     "model": self.public_model, "choices": [], "usage": openai_usage(self.usage)})
            yield "data: [DONE]\n\n"

    def _delta(self, block_index: int, delta: dict[str, Any]) -> Iterator[str]:
        kind = delta.get("type")
        if kind == "text_delta":
            yield self._chunk({"content": delta.get("text", "")})
        elif kind == "input_json_delta" and block_index in self._tool_index:
            yield self._chunk({"tool_calls": [{"index": self._tool_index[block_index], "function": {"arguments": delta.get("partial_json", "")}}]})
        elif kind == "thinking_delta":
            yield self._chunk({"reasoning_content": delta.get("thinking", "")})

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> str:
        return self._payload({
            "id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self.public_model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        })

    @staticmethod
    def _payload(body: dict[str, Any]) -> str:
        return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": list(blocks)})


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str) or content is None:
        return [{"type": "text", "text": content or ""}]
    blocks = []
    for part in content:
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            if url.startswith("data:") and ";base64," in url:
                media, data = url[5:].split(";base64,", 1)
                blocks.append({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}})
            else:
                blocks.append({"type": "image", "source": {"type": "url", "url": url}})
        else:
            raise InvalidRequestError(f"Content part type {part.get('type')!r} cannot be sent to this hosted model.", param="messages")
    return blocks


def _assistant_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = _text_of(message.get("content"))
    if text:
        blocks.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except json.JSONDecodeError:
            raise InvalidRequestError("A tool call's arguments are not valid JSON.", param="messages") from None
        blocks.append({"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": arguments})
    return blocks


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool.get("function") or {}
    converted = {"name": function.get("name"), "input_schema": function.get("parameters") or {"type": "object", "properties": {}}}
    if function.get("description"):
        converted["description"] = function["description"]
    return converted


def _tool_choice(choice: Any, parallel: bool | None) -> dict[str, Any] | None:
    if choice is None:
        converted: dict[str, Any] = {"type": "auto"}
    elif choice == "auto":
        converted = {"type": "auto"}
    elif choice == "required":
        converted = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        converted = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    else:
        raise InvalidRequestError(f"Unsupported tool_choice {choice!r}.", param="tool_choice")
    if parallel is False:
        converted["disable_parallel_tool_use"] = True
    return converted


def _tool_call(block: dict[str, Any], index: int) -> dict[str, Any]:
    arguments = block.get("input")
    return {
        "index": index,
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name"), "arguments": json.dumps(arguments) if arguments is not None else ""},
    }
