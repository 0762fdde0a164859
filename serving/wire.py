"""Reading OpenAI request bodies at the ingress: size limit, JSON, and the fields we act on.

The ingress checks only what it needs to act (model, messages, stream, token limits) and what
must fail as 400 rather than deeper in the engine; the engine's own OpenAI models validate the
rest. Unknown fields pass through to the engine, and their names are logged at debug level.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request

from serving.errors import InvalidRequestError, PayloadTooLargeError

__all__ = ["ChatCompletionBody", "read_json_body", "parse_chat_body", "estimate_prompt_tokens"]

logger = logging.getLogger(__name__)


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionBody(BaseModel):
    """The fields of ``POST /v1/chat/completions`` the ingress reads; the rest passes through."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    messages: Annotated[list[_Message], Field(min_length=1)]
    stream: bool = False
    stream_options: _StreamOptions | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None

    def output_limit(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default

    def wants_usage_chunk(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


async def read_json_body(request: Request, max_bytes: int) -> dict[str, Any]:
    """Read at most ``max_bytes`` of body (413 past that) and parse a JSON object (400 if not)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLargeError(f"Request body of {declared} bytes exceeds the limit of {max_bytes} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLargeError(f"Request body exceeds the limit of {max_bytes} bytes.")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequestError(f"We could not parse the JSON body of your request: {exc}.") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    return body


def parse_chat_body(body: dict[str, Any]) -> ChatCompletionBody:
    try:
        parsed = ChatCompletionBody.model_validate(body)
    except ValidationError as exc:
        raise _invalid(exc) from None
    if parsed.model_extra and logger.isEnabledFor(logging.DEBUG):
        logger.debug("passing through fields the ingress does not read: %s", sorted(parsed.model_extra))
    return parsed


def estimate_prompt_tokens(body: ChatCompletionBody) -> int:
    """A tokenizer-free estimate (about four characters a token) for the spill decision."""
    chars = 0
    for message in body.messages:
        if isinstance(message.content, str):
            chars += len(message.content)
        elif message.content:
            chars += sum(len(str(part.get("text", ""))) for part in message.content)
    return max(1, chars // 4 + 4 * len(body.messages))


def _invalid(exc: ValidationError) -> InvalidRequestError:
    first = exc.errors()[0]
    loc = first["loc"]
    param = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or None
    if first["type"] == "missing":
        message = f"Missing required parameter: '{param}'."
    elif first["type"] == "too_short" and param == "messages":
        message = "'messages' must contain at least one message."
    else:
        message = f"Invalid value for '{param}': {first['msg']}."
    return InvalidRequestError(message, param=param, code="missing_required_parameter" if first["type"] == "missing" else "invalid_value")
