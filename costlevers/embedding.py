"""The embedding call the levers share: one text through the shared embedding deployment, a unit
vector back. The semantic cache and the router both embed the last user turn with it (once a
request: see :class:`contracts.context.PromptEmbedding`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np

from contracts.errors import UpstreamError

__all__ = ["EmbedCall", "embedder"]

#: One embeddings request (model, body) through the shared embedding deployment: its items.
EmbedCall = Callable[[str, dict[str, Any]], AsyncIterator[Any]]


def embedder(embed: EmbedCall, model: str) -> Callable[[str], Awaitable[np.ndarray]]:
    """One text through the shared embedding deployment (it batches across requests)."""

    async def one(text: str) -> np.ndarray:
        async for item in embed(model, {"model": model, "input": [text]}):
            return np.asarray(item["data"][0]["embedding"], dtype=np.float32)
        raise UpstreamError("The embedding deployment answered nothing.")

    return one
