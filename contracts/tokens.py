"""Prompt-token estimation without a tokenizer: what admission and the spill-over decision use
before any engine has read the prompt.

About four characters a token, each chat message with a small overhead for its role markers;
token-array prompts (text completions) count four characters per token so they come out as
themselves. Reads the body as sent (a mapping), so the decision, the simulator and benchmarks
estimate exactly as the ingress does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["CHARS_PER_TOKEN", "estimate_prompt_tokens", "prompt_chars"]

CHARS_PER_TOKEN = 4
#: Characters counted per chat message for its role and separators.
_MESSAGE_OVERHEAD_CHARS = 16


def prompt_chars(body: Mapping[str, Any]) -> int:
    """The prompt's length in characters: chat ``messages`` or a completion's ``prompt``."""
    messages = body.get("messages")
    if isinstance(messages, list):
        return sum(_message_chars(m) for m in messages if isinstance(m, Mapping))
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return len(prompt)
    if isinstance(prompt, list):
        return sum(len(p) if isinstance(p, str) else CHARS_PER_TOKEN * (len(p) if isinstance(p, list) else 1) for p in prompt)
    return 0


def estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    return max(1, prompt_chars(body) // CHARS_PER_TOKEN)


def _message_chars(message: Mapping[str, Any]) -> int:
    content = message.get("content")
    if isinstance(content, str):
        return len(content) + _MESSAGE_OVERHEAD_CHARS
    if isinstance(content, list) and content:
        return sum(len(str(part.get("text", ""))) for part in content if isinstance(part, Mapping)) + _MESSAGE_OVERHEAD_CHARS
    return 0
