"""The local engines as the ingress sees them: an :class:`~contracts.upstream.Upstream` for
generation, plus their state (the spill-over decision's input), the embedding deployments and
the replica time local work is priced by. ``serving/ray_engines.py`` implements it over Ray Serve.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from contracts.engine_state import EngineState, ReplicaInterval
from contracts.upstream import Item, UpstreamCall

__all__ = ["LocalEngines"]


class LocalEngines(Protocol):
    def models(self) -> list[str]: ...

    def embedding_models(self) -> list[str]: ...

    def state(self, model: str) -> EngineState: ...

    def all_states(self) -> dict[str, EngineState]: ...

    def generate(self, call: UpstreamCall) -> AsyncIterator[Item]: ...

    def embed(self, model: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """One embeddings body through the model's deployment: yields the whole answer."""

    async def replica_time(self, after: float, before: float) -> list[ReplicaInterval]: ...

    async def aclose(self) -> None: ...
