"""The OpenAI request bodies as the ingress reads them: the fields we act on, and the facts
worked out from them once per request (size limit and JSON: :mod:`webio.bodies`).

The ingress checks only what it needs to act (model, messages, stream, token limits) and what
must fail as 400 rather than deeper in the engine; the engine's own OpenAI models validate the
rest. Unknown fields pass through to the engine, and their names are logged at debug level.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.context import RequestFacts
from contracts.tokens import estimate_prompt_tokens
from serving.prompt_tokens import PromptTokenCounter

__all__ = [
    "MAX_LOGIT_BIAS",
    "ChatCompletionBody",
    "CompletionBody",
    "EmbeddingBody",
    "GenerationBody",
    "request_facts",
]


#: Most ``logit_bias`` entries a request may carry.
MAX_LOGIT_BIAS = 300


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
    #: Token id -> bias. Bounded in count (a flood of entries costs the engine per step for
    #: every sequence) and in value as OpenAI documents it.
    logit_bias: Annotated[dict[Annotated[str, Field(pattern=r"^[0-9]{1,9}$")], Annotated[float, Field(ge=-100, le=100)]],
                          Field(max_length=MAX_LOGIT_BIAS)] | None = None

    def output_limit(self, default: int) -> int:
        limit = getattr(self, "max_completion_tokens", None) or self.max_tokens or default
        return limit * self.n

    def wants_usage_chunk(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionBody(_GenerationFields):
    """``POST /v1/chat/completions``: the fields the ingress reads; the rest passes through."""

    messages: Annotated[list[_Message], Field(min_length=1)]
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None


class CompletionBody(_GenerationFields):
    """``POST /v1/completions``."""

    prompt: str | Annotated[list[str], Field(min_length=1)] | Annotated[list[int], Field(min_length=1)] | Annotated[list[list[int]], Field(min_length=1)]


GenerationBody = ChatCompletionBody | CompletionBody


class EmbeddingBody(BaseModel):
    """``POST /v1/embeddings``: text inputs (token arrays would need this model's tokenizer)."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    input: Annotated[str, Field(min_length=1)] | Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1, max_length=2048)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1)] | None = None


def request_facts(parsed: GenerationBody, body: dict[str, Any], default_max_tokens: int, *,
                  count_prompt_tokens: PromptTokenCounter = estimate_prompt_tokens) -> RequestFacts:
    """What every stage may need of a generation request, worked out once.

    ``count_prompt_tokens``: the route's counter (:mod:`serving.prompt_tokens`); chars/4 by default.
    """
    return RequestFacts(
        prompt_tokens=count_prompt_tokens(body),
        max_tokens=parsed.output_limit(default_max_tokens),
        wants_usage_chunk=parsed.wants_usage_chunk(),
        has_tools=bool(body.get("tools") or body.get("functions")),
    )


