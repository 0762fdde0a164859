"""Shape what dispatch got back into the client's response: one body or an SSE stream.

It waits for the first upstream item before answering, so status and headers are chosen once
that item is known (a refusal raised before it is still a clean 4xx; a failover before the first
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

from contracts.context import SSE_DONE, Outcome, RequestContext, Status, Usage
from contracts.errors import SpilloverError, UpstreamError, error_body
from contracts.experiments import Finish
from contracts.pipeline import Stage

__all__ = ["Respond"]

logger = logging.getLogger(__name__)


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
        ctx.timings.first_token = time.perf_counter()
        if isinstance(first, dict):
            ctx.usage = Usage.from_openai(first.get("usage"))
            if isinstance(first.get("usage"), dict):
                first = {**first, "usage": _spec_usage(first["usage"])}
            ctx.outcome = Outcome(body=first)
            choices = first.get("choices")
            if isinstance(choices, list) and choices and isinstance(choices[0], dict) and choices[0].get("finish_reason"):
                ctx.put(Finish(str(choices[0]["finish_reason"])))
            return
        ctx.outcome = Outcome(stream=_sse(ctx, first, upstream, ctx.facts.wants_usage_chunk))


async def _sse(ctx: RequestContext, first: list[str], upstream: AsyncIterator[Any], wants_usage: bool) -> AsyncIterator[str]:
    content_chunks = 0
    saw_usage = False
    batch: Any = first
    try:
        while True:
            if isinstance(batch, dict):
                raise UpstreamError("Unexpected item in stream.")
            out = []
            for payload in batch:
                if '"choices":[]' in payload and '"usage":' in payload:
                    saw_usage = True
                    chunk = json.loads(payload[len("data: ") :])
                    ctx.usage = Usage.from_openai(chunk.get("usage"))
                    if not wants_usage:
                        continue
                    if isinstance(chunk.get("usage"), dict) and None in chunk["usage"].values():
                        payload = "data: " + json.dumps({**chunk, "usage": _spec_usage(chunk["usage"])}, separators=(",", ":")) + "\n\n"
                elif payload != SSE_DONE:
                    content_chunks += 1
                    if _FINISH in payload and ctx.slot(Finish) is None:
                        _note_finish(ctx, payload)
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


_FINISH = '"finish_reason":"'


def _note_finish(ctx: RequestContext, payload: str) -> None:
    """The first finish reason a stream states (a chunk's ``"finish_reason":"stop"``): found
    by a substring search, since parsing every chunk would cost more than the rest of the relay."""
    start = payload.index(_FINISH) + len(_FINISH)
    end = payload.find('"', start)
    if end > start:
        ctx.put(Finish(payload[start:end]))


def _spec_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """Usage as OpenAI's spec shapes it: vLLM sends ``prompt_tokens_details: null`` (and the like)
    where the spec has an optional object, which strict clients reject; a null field is left out."""
    return {key: value for key, value in usage.items() if value is not None}


def _account_partial(ctx: RequestContext, saw_usage: bool, content_chunks: int) -> None:
    """Without a usage chunk (cut or cancelled), count one token per content chunk sent, and the
    prompt at its estimate: the provider bills a prompt it read whether or not the stream ends."""
    if saw_usage:
        return
    prompt = ctx.usage.prompt_tokens or ctx.facts.prompt_tokens
    ctx.usage = dataclasses.replace(ctx.usage, prompt_tokens=prompt, completion_tokens=max(ctx.usage.completion_tokens, content_chunks))
