"""Shape what dispatch got back into the client's response: one body or an SSE stream.

It waits for the first upstream item before answering, so status and headers are chosen once
that item is known (an engine refusal is still a clean 4xx; later, a failover before the first
token can still set the destination headers right). Usage is always read: from the body, or
from the usage chunk the stream was asked to end with, which is dropped when the client did
not ask for it. A failure after tokens have been sent ends the stream with an OpenAI-style
error event, never a silent truncation.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from serving.context import SSE_DONE, Outcome, RequestContext, Status, Usage
from serving.errors import (
    AuthenticationError,
    ClientError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    SpilloverError,
    UpstreamError,
    error_body,
)
from serving.pipeline import Stage
from serving.wire import estimate_prompt_tokens

__all__ = ["Respond", "engine_error"]

logger = logging.getLogger(__name__)

_BY_STATUS: dict[int, type[SpilloverError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    422: InvalidRequestError,
    429: RateLimitError,
}
#: vLLM's wordings when prompt + max_tokens exceed the window (OpenAI's code for it below).
_CONTEXT_LENGTH = ("maximum context length", "max_model_len")


def engine_error(item: dict[str, Any]) -> SpilloverError:
    """An engine's error item as our error; unknown statuses are upstream faults."""
    info = item.get("error") or {}
    status = int(item.get("status") or info.get("code") or 500)
    cls = _BY_STATUS.get(status, ClientError if 400 <= status < 500 else UpstreamError)
    message = str(info.get("message") or "The model engine returned an error.")
    code = info.get("code") if isinstance(info.get("code"), str) else None
    param = info.get("param")
    if code is None and status == 400 and any(marker in message for marker in _CONTEXT_LENGTH):
        code, param = "context_length_exceeded", param or "messages"
    return cls(message, param=param, code=code)


class Respond(Stage):
    name = "respond"

    async def process(self, ctx: RequestContext) -> None:
        if ctx.upstream is None:
            raise UpstreamError("Nothing was dispatched for this request.")
        upstream = ctx.upstream
        try:
            first = await anext(upstream)
        except StopAsyncIteration:
            raise UpstreamError("The model engine closed without answering.") from None
        if isinstance(first, dict) and "error" in first:
            await upstream.aclose()
            raise engine_error(first)
        ctx.timings.first_token = time.perf_counter()
        if isinstance(first, dict):
            ctx.usage = Usage.from_openai(first.get("usage"))
            ctx.outcome = Outcome(body=first)
            return
        wants_usage = ctx.parsed.wants_usage_chunk() if ctx.parsed is not None else False
        ctx.outcome = Outcome(stream=_sse(ctx, first, upstream, wants_usage))


async def _sse(ctx: RequestContext, first: list[str], upstream: AsyncIterator[Any], wants_usage: bool) -> AsyncIterator[str]:
    content_chunks = 0
    saw_usage = False
    batch: Any = first
    try:
        while True:
            if isinstance(batch, dict):  # an error item in the middle of a stream
                raise engine_error(batch) if "error" in batch else UpstreamError("Unexpected item in stream.")
            out = []
            if ctx.capture is not None:
                ctx.capture.extend(batch)
            for payload in batch:
                if '"choices":[]' in payload and '"usage":' in payload:
                    saw_usage = True
                    ctx.usage = Usage.from_openai(json.loads(payload[len("data: ") :]).get("usage"))
                    if not wants_usage:
                        continue
                elif payload != SSE_DONE:
                    content_chunks += 1
                out.append(payload)
            if out:
                yield "".join(out)
            try:
                batch = await anext(upstream)
            except StopAsyncIteration:
                break
    except SpilloverError as exc:
        _account_partial(ctx, saw_usage, content_chunks)
        ctx.status, ctx.error = Status.CUT, exc
        yield f"data: {json.dumps(exc.body())}\n\n"
    except Exception as exc:  # the engine died mid-stream: tell the client, never truncate silently
        logger.error("stream cut: %s", type(exc).__name__, extra={"request_id": ctx.request_id})
        _account_partial(ctx, saw_usage, content_chunks)
        ctx.status, ctx.error = Status.CUT, exc
        yield "data: " + json.dumps(error_body("The model engine failed mid-stream.", "api_error", None, "stream_cut")) + "\n\n"
    finally:
        _account_partial(ctx, saw_usage, content_chunks)
        await upstream.aclose()


def _account_partial(ctx: RequestContext, saw_usage: bool, content_chunks: int) -> None:
    """Without a usage chunk (cut or cancelled), count one token per content chunk sent, and the
    prompt at its estimate: the provider bills a prompt it read whether or not the stream ends."""
    if saw_usage:
        return
    prompt = ctx.usage.prompt_tokens or (estimate_prompt_tokens(ctx.parsed) if ctx.parsed is not None else 0)
    ctx.usage = dataclasses.replace(ctx.usage, prompt_tokens=prompt, completion_tokens=max(ctx.usage.completion_tokens, content_chunks))
