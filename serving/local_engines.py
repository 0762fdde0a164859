"""The local engines as the ingress sees them: send a request, read their state.

:class:`LocalEngines` is the interface the dispatch stage is handed; :class:`ServeEngines`
implements it with Serve deployment handles (one per model) and the engine-state reader.
Items an engine yields, as :meth:`SpilloverLLMServer.spillover_chat` produces them:

* ``list[str]``: a batch of SSE payloads (``"data: {...}\\n\\n"``) of a stream;
* ``{"error": {...}, "status": int}``: the engine refused the request;
* any other ``dict``: a whole (non-streamed) response body.

Embedding deployments answer one whole body (or an error item) per request.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

from ray.exceptions import RayError

from serving.engine_state import EngineState
from serving.engine_state_board import EngineStateReader
from serving.errors import LocalEngineFailedError
from serving.replica_time import ReplicaInterval
from serving.token_router import IN_FLIGHT, PROMPT_TOKENS_KWARG, REQUEST_ID_KWARG

__all__ = ["LocalEngines", "ServeEngines", "GENERATE_METHOD"]

#: The engine deployment's method the ingress calls (see serving.llm_deployment).
GENERATE_METHOD = "spillover_generate"


class LocalEngines(Protocol):
    def models(self) -> list[str]: ...

    def embedding_models(self) -> list[str]: ...

    def state(self, model: str) -> EngineState: ...

    def all_states(self) -> dict[str, EngineState]: ...

    def generate(self, api: str, model: str, body: dict[str, Any], request_id: str, prompt_tokens: int = 0) -> AsyncIterator[Any]: ...

    def embed(self, model: str, body: dict[str, Any]) -> AsyncIterator[Any]: ...

    async def replica_time(self, after: float, before: float) -> list[ReplicaInterval]: ...


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

    async def generate(self, api: str, model: str, body: dict[str, Any], request_id: str, prompt_tokens: int = 0) -> AsyncIterator[Any]:
        call = getattr(self._handles[model], GENERATE_METHOD)
        responses = call.remote(api, body, **{REQUEST_ID_KWARG: request_id, PROMPT_TOKENS_KWARG: prompt_tokens})
        first = True
        try:
            async for item in responses:
                if first:  # its prompt no longer waits ahead of others on that replica
                    IN_FLIGHT.started(request_id)
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

    async def embed(self, model: str, body: dict[str, Any]) -> AsyncIterator[Any]:
        yield await self._embedders[model].create.remote(body)

    async def replica_time(self, after: float, before: float) -> list[ReplicaInterval]:
        return await self._reader.replica_time(after, before)
