"""What dispatch knows of a hosted provider: an :class:`contracts.upstream.Upstream` with a name
and its config (the config maps public model names to the provider's own, which the ledger
prices). Apart from the adapters, so holding a provider never imports httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from contracts.upstream import Item, UpstreamCall
from fallback.providers.config import ProviderConfig

__all__ = ["Provider"]


class Provider(Protocol):
    name: str
    config: ProviderConfig

    def generate(self, call: UpstreamCall) -> AsyncIterator[Item]: ...

    async def aclose(self) -> None: ...
