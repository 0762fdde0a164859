"""An in-memory stand-in for the local engines, for unit tests of the ingress's own logic.

Its script holds exactly the item shapes the real engine deployment yields, error items
included, and they pass through the Ray adapter's own translation (serving.ray_engines), so
the ingress sees what it sees over Ray; end-to-end tests use the real engines.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from contracts.engine_state import EngineState, ReplicaInterval
from contracts.upstream import UpstreamCall
from serving.ray_engines import raise_error_items
from spillover.config import SpilloverConfig, load_config


def chunk(content: str | None = None, *, role: str | None = None, finish: str | None = None) -> str:
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


def usage_chunk(prompt: int, completion: int) -> str:
    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


def completion(text: str, prompt: int = 3, completion_tokens: int = 2) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion_tokens, "total_tokens": prompt + completion_tokens},
    }


class ScriptedEngines:
    def __init__(self, state: EngineState | None = None) -> None:
        self.script: list[Any] = []
        #: Per model, a script of its own (a routed route's candidates answer differently).
        self.scripts: dict[str, list[Any]] = {}
        #: What the embedding deployment answers (None: the script, as for generation).
        self.embedding: list[float] | None = None
        self.delay_s = 0.0
        self.bodies: list[dict[str, Any]] = []
        self.apis: list[str] = []
        self.models_called: list[str] = []
        self.closed = asyncio.Event()
        #: The replica time the engines report (what a test's replicas were up and busy).
        self.replica_intervals: list[ReplicaInterval] = []
        self._state = state or EngineState(model="m", replicas_ready=1, prefill_tokens_per_s=1000)

    def models(self) -> list[str]:
        return ["m", *self.scripts]

    def embedding_models(self) -> list[str]:
        return ["e"]

    def state(self, model: str) -> EngineState:
        return self._state

    def all_states(self) -> dict[str, EngineState]:
        return {"m": self._state}

    def embed(self, model: str, body: dict[str, Any]) -> AsyncIterator[Any]:
        self.bodies.append(body)
        if self.embedding is not None:
            return self._embedding_answer()
        return raise_error_items(self._play(self.script))

    async def _embedding_answer(self) -> AsyncIterator[Any]:
        yield {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": self.embedding}], "model": "e",
               "usage": {"prompt_tokens": 1, "total_tokens": 1}}

    async def replica_time(self, after: float, before: float) -> list[ReplicaInterval]:
        return [r for r in self.replica_intervals if after <= r.start and r.start + 5 <= before]

    def generate(self, call: UpstreamCall) -> AsyncIterator[Any]:
        self.bodies.append(call.body)
        self.apis.append(call.api)
        self.models_called.append(call.model)
        return raise_error_items(self._play(self.scripts.get(call.model, self.script), delay=True))

    async def aclose(self) -> None:
        pass

    async def _play(self, script: list[Any], *, delay: bool = False) -> AsyncIterator[Any]:
        try:
            for item in script:
                if isinstance(item, BaseException):
                    raise item
                if delay:
                    await asyncio.sleep(self.delay_s)
                yield item
        finally:
            if delay:
                self.closed.set()


def scripted_config(env: dict[str, str] | None = None) -> SpilloverConfig:
    """The embedded default (with ``env`` overrides), its models renamed to the scripted ``m`` and ``e``."""
    config = load_config(None, env=env or {})
    return config.model_copy(update={
        "models": [config.models[0].model_copy(update={"name": "m"})],
        "embeddings": [config.embeddings[0].model_copy(update={"name": "e"})],
        "routes": {"m" if name == config.models[0].name else name: route for name, route in config.routes.items()},
    })
