"""The adapter a provider's config names: Anthropic's Messages API, or any OpenAI-compatible API."""

from __future__ import annotations

from fallback.providers.anthropic import AnthropicProvider
from fallback.providers.config import ProviderConfig
from fallback.providers.interface import Provider
from fallback.providers.openai_compatible import OpenAICompatibleProvider

__all__ = ["build_provider"]


def build_provider(config: ProviderConfig) -> Provider:
    if config.kind == "anthropic":
        return AnthropicProvider(config)
    return OpenAICompatibleProvider(config)
