"""The local engines over Ray Serve: :class:`contracts.local_engines.LocalEngines` with Serve
deployment handles (one per model) and the engine-state reader.

The engine deployment's :meth:`SpilloverLLMServer.spillover_generate` yields batches of SSE
payloads, a whole body, or an error item ``{"error": {...}, "status": int}``; embedding
deployments answer one whole body or an error item. This adapter is the one place error items
become exceptions of :mod:`contracts.errors` (:func:`engine_error`), so everything past it sees
the one upstream shape.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from ray.exceptions import RayError

from contracts.engine_state import EngineState, ReplicaInterval
from contracts.errors import (
    AuthenticationError,
    ClientError,
    InvalidRequestError,
    LocalEngineFailedError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    SpilloverError,
    UpstreamError,
)
from contracts.upstream import Item, UpstreamCall
from serving.state_board import EngineStateReader
from serving.token_router import IN_FLIGHT, PROMPT_TOKENS_KWARG, REQUEST_ID_KWARG

__all__ = ["GENERATE_METHOD", "ServeEngines", "engine_error", "raise_error_items"]

#: The engine deployment's method the ingress calls (see serving.llm_deployment).
GENERATE_METHOD = "spillover_generate"


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
    """An engine's error item as our error: 4xx the engine's answer, 5xx an upstream fault."""
    info = item.get("error") or {}
    status = int(item.get("status") or info.get("code") or 500)
    cls = _BY_STATUS.get(status, ClientError if 400 <= status < 500 else UpstreamError)
    message = str(info.get("message") or "The model engine returned an error.")
    code = info.get("code") if isinstance(info.get("code"), str) else None
    param = info.get("param")
    if code is None and status == 400 and any(marker in message for marker in _CONTEXT_LENGTH):
        code, param = "context_length_exceeded", param or "messages"
    return cls(message, param=param, code=code)


async def raise_error_items(items: AsyncIterator[Any]) -> AsyncIterator[Item]:
    """``items`` with every error item raised as :func:`engine_error`."""
    async for item in items:
        if isinstance(item, dict) and "error" in item:
            raise engine_error(item)
        yield item


class ServeEngines:
    def __init__(self, handles: dict[str, Any], embedders: dict[str, Any], reader: EngineStateReader) -> None:
        # Configure streaming once: ``.options()`` builds a new handle each call.
        self._handles = {model: handle.options(stream=True) for model, handle in handles.items()}
        self._embedders = embedders
        self._reader = reader

    def models(self) -> list[str]:
        return list(self._handles)

    def embedding_models(self) -> list[str]:
        return list(self._embedders)

    def state(self, model: str) -> EngineState:
        return self._reader.state(model)

    def all_states(self) -> dict[str, EngineState]:
        return self._reader.all_states()

    def generate(self, call: UpstreamCall) -> AsyncIterator[Item]:
        return raise_error_items(self._generate(call))

    async def _generate(self, call: UpstreamCall) -> AsyncIterator[Any]:
        method = getattr(self._handles[call.model], GENERATE_METHOD)
        responses = method.remote(call.api, call.body, **{REQUEST_ID_KWARG: call.request_id, PROMPT_TOKENS_KWARG: call.prompt_tokens})
        first = True
        try:
            async for item in responses:
                if first:  # its prompt no longer waits ahead of others on that replica
                    IN_FLIGHT.started(call.request_id)
                    first = False
                yield item
        except RayError as exc:
            # A replica died or was torn down under the request: before the first token the
            # dispatch stage fails over; after it, respond ends the stream with an error event.
            raise LocalEngineFailedError(f"The local engine failed ({type(exc).__name__}).") from None
        finally:
            # Closing early (client gone, stream cut) cancels the engine's work too.
            with contextlib.suppress(Exception):
                responses.cancel()

    def embed(self, model: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        return raise_error_items(self._embed(model, body))  # type: ignore[return-value]  # embeddings answer whole bodies

    async def _embed(self, model: str, body: dict[str, Any]) -> AsyncIterator[Any]:
        yield await self._embedders[model].create.remote(body)

    async def aclose(self) -> None:
        """Nothing to close: the handles belong to Serve."""

    async def replica_time(self, after: float, before: float) -> list[ReplicaInterval]:
        return await self._reader.replica_time(after, before)
