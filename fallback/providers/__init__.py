"""Hosted providers behind one small interface (one call that streams or not; close).

A provider is an :class:`contracts.upstream.Upstream`, like the local engines: the same call,
the same items (a whole OpenAI-shaped body, or batches of OpenAI SSE payloads), so the respond
stage never knows who answered. Failures raise the upstream branch of :mod:`contracts.errors`; each adapter
translates its transport's and its API's errors in one place (``_errors.py``), so nothing
outside ``fallback/`` ever sees an httpx or vendor exception.
"""

from __future__ import annotations

from fallback.providers.anthropic import AnthropicProvider
from fallback.providers.config import ProviderConfig
from fallback.providers.interface import Provider
from fallback.providers.openai_compatible import OpenAICompatibleProvider

__all__ = ["AnthropicProvider", "OpenAICompatibleProvider", "Provider", "ProviderConfig", "build_provider"]


def build_provider(config: ProviderConfig) -> Provider:
    if config.kind == "anthropic":
        return AnthropicProvider(config)
    return OpenAICompatibleProvider(config)
