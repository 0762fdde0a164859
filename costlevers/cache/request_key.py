"""What makes two requests the same question: the exact key and the semantic partition.

The exact key is the SHA-256 of the canonical request: every body field that can change the
answer (model, messages, tools, response_format, every sampling parameter, and any engine
extra), sorted and compact, with the fields that never do (``stream``, ``user``,
``metadata``...) left out. It lives in a namespace of route, model version, prompt version
and scope: bumping either version makes every older entry unreachable.

The semantic partition is the same canonical request without the last user turn's text:
system prompt, tools, sampling parameters and the conversation before that turn all have to
match before two questions are compared at all, so a multi-turn hit needs the same context.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

__all__ = ["CacheKeys", "deterministic", "model_version_of", "request_keys"]

#: Body fields that never change the answer (transport, accounting, tracing).
_NOT_IN_KEY = frozenset({"stream", "stream_options", "user", "metadata", "store", "service_tier", "request_id"})


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _digest(value: Any) -> str:
    return hashlib.sha256(_canonical(value)).hexdigest()


def deterministic(body: dict[str, Any]) -> bool:
    """Greedy decoding or a fixed seed: the same request gives the same answer, so caching it
    changes nothing a client could tell (OpenAI's default temperature is 1)."""
    return body.get("temperature") == 0 or body.get("seed") is not None


def model_version_of(route_config: Any) -> str:
    """A route's default model version: a hash of the models it may be served by and their config."""
    return _digest(route_config)[:12]


def _last_user_text(messages: list[Any]) -> str | None:
    if not messages or not isinstance(messages[-1], dict) or messages[-1].get("role") != "user":
        return None
    content = messages[-1].get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "\n".join(str(p.get("text", "")) for p in content)
    return None  # images or audio: no semantic match


@dataclass(frozen=True)
class CacheKeys:
    #: route, model version, prompt version, scope: each URL-quoted, joined by ':' (purge matches on them).
    namespace: str
    exact: str
    partition: str
    #: The last user turn, embedded for the semantic cache (None: not a text question).
    query_text: str | None


def namespace_of(route: str, model_version: str, prompt_version: str, scope: str) -> str:
    return ":".join(quote(part, safe="") for part in (route, model_version, prompt_version, scope))


def request_keys(body: dict[str, Any], *, route: str, model_version: str, prompt_version: str, scope: str) -> CacheKeys:
    keyed = {k: v for k, v in body.items() if k not in _NOT_IN_KEY}
    namespace = namespace_of(route, model_version, prompt_version, scope)
    messages = keyed.get("messages")
    query = _last_user_text(messages) if isinstance(messages, list) else None
    context = {**keyed, "messages": [*messages[:-1], {"role": "user"}]} if query is not None else keyed
    return CacheKeys(namespace, f"{namespace}:{_digest(keyed)}", f"{namespace}:{_digest(context)}", query)
