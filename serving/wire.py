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

__all__ = [
    "ChatCompletionBody",
    "CompletionBody",
    "EmbeddingBody",
    "GenerationBody",
    "read_json_body",
    "parse_body",
    "estimate_prompt_tokens",
]

logger = logging.getLogger(__name__)


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class _GenerationFields(BaseModel):
    """What chat and text completions share, and the ingress acts on."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    stream: bool = False
    stream_options: _StreamOptions | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    n: Annotated[int, Field(ge=1, le=16)] = 1

    def output_limit(self, default: int) -> int:
        limit = getattr(self, "max_completion_tokens", None) or self.max_tokens or default
        return limit * self.n

    def wants_usage_chunk(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionBody(_GenerationFields):
    """``POST /v1/chat/completions``: the fields the ingress reads; the rest passes through."""

    messages: Annotated[list[_Message], Field(min_length=1)]
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None

    def prompt_chars(self) -> int:
        chars = 0
        for message in self.messages:
            if isinstance(message.content, str):
                chars += len(message.content) + 16
            elif message.content:
                chars += sum(len(str(part.get("text", ""))) for part in message.content) + 16
        return chars


class CompletionBody(_GenerationFields):
    """``POST /v1/completions``."""

    prompt: str | Annotated[list[str], Field(min_length=1)] | Annotated[list[int], Field(min_length=1)] | Annotated[list[list[int]], Field(min_length=1)]

    def prompt_chars(self) -> int:
        if isinstance(self.prompt, str):
            return len(self.prompt)
        return sum(len(p) if isinstance(p, str) else 4 * (len(p) if isinstance(p, list) else 1) for p in self.prompt)


GenerationBody = ChatCompletionBody | CompletionBody


class EmbeddingBody(BaseModel):
    """``POST /v1/embeddings``: text inputs (token arrays would need this model's tokenizer)."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    input: Annotated[str, Field(min_length=1)] | Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1, max_length=2048)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1)] | None = None


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


def parse_body(model: type[BaseModel], body: dict[str, Any]) -> Any:
    """Validate ``body`` against one of the wire models above; 400 with ``param`` if it fails."""
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        raise _invalid(exc) from None
    if parsed.model_extra and logger.isEnabledFor(logging.DEBUG):
        logger.debug("passing through fields the ingress does not read: %s", sorted(parsed.model_extra))
    return parsed


def estimate_prompt_tokens(body: GenerationBody) -> int:
    """A tokenizer-free estimate (about four characters a token) for the spill decision."""
    return max(1, body.prompt_chars() // 4)


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def _invalid(exc: ValidationError) -> InvalidRequestError:
    first = exc.errors()[0]
    # Union members show up in the location as type tags ("str", "list[int]"): not parameters.
    loc = [p for p in first["loc"] if isinstance(p, int) or (str(p).isidentifier() and p not in _TYPE_TAGS)]
    param = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or None
    if first["type"] == "missing":
        message = f"Missing required parameter: '{param}'."
    elif first["type"] == "too_short" and param in ("messages", "prompt", "input"):
        message = f"'{param}' must not be empty."
    else:
        message = f"Invalid value for '{param}': {first['msg']}."
    return InvalidRequestError(message, param=param, code="missing_required_parameter" if first["type"] == "missing" else "invalid_value")
