"""One interface for everything that answers a model request: the local engines and every
hosted provider.

Same call, same stream items, failures raised from one error tree (:mod:`contracts.errors`):
failover, respond and the cache never ask which kind of upstream they hold. A new kind of
upstream is one adapter file (``serving/ray_engines.py`` for Ray Serve's engine deployments,
``fallback/providers/`` for hosted APIs).

Items an upstream yields:

* ``list[str]``: a batch of SSE payloads (``"data: {...}\\n\\n"``) of a stream;
* ``dict``: a whole (non-streamed) response body.

A failure before the first item is raised from ``anext`` (the upstream branch, retried or failed
over; a client branch, such as a 400 the upstream owns, is the answer); a failure after it ends
the stream with an error event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Item", "Upstream", "UpstreamCall"]

#: A whole body or a batch of SSE payloads.
Item = dict[str, Any] | list[str]


@dataclass(frozen=True)
class UpstreamCall:
    #: ``chat``, ``completions`` or ``embeddings`` (:class:`contracts.context.Api`'s values).
    api: str
    #: The body as the upstream gets it: streams always ask for usage.
    body: dict[str, Any]
    #: The model this upstream is asked for: a local model's name, or the hosted target's model
    #: (a provider may map it to its own name further).
    model: str
    request_id: str
    #: Estimated prompt tokens (the local request router ranks replicas by them).
    prompt_tokens: int = 0


class Upstream(Protocol):
    def generate(self, call: UpstreamCall) -> AsyncIterator[Item]: ...

    async def aclose(self) -> None: ...
