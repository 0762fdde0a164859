"""OpenAI's wire format: OpenAI itself, Together, Fireworks, vLLM, anything that speaks it.

The body passes through with the provider's model name; streams always ask for usage
(``stream_options.include_usage``) so every token is accounted, and the respond stage drops
that chunk when the client did not ask for it.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fallback.providers._errors import transport_errors
from fallback.providers._http import HttpProvider
from fallback.sse import sse_data
from serving.errors import UpstreamUnavailableError

__all__ = ["OpenAICompatibleProvider"]

_PATHS = {"chat": "/chat/completions", "completions": "/completions"}


class OpenAICompatibleProvider(HttpProvider):
    async def generate(self, api: str, body: dict[str, Any], public_model: str, request_id: str) -> AsyncIterator[Any]:
        deadline = time.monotonic() + self.config.total_timeout_s
        payload = {**body, "model": self.config.upstream_model(public_model)}
        stream = bool(body.get("stream"))
        if stream:
            payload["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        headers = {"x-request-id": request_id}
        headers |= self.config.auth_headers()
        response = await self._send(_PATHS[api], payload, headers)
        try:
            if not stream:
                with transport_errors(self.name):
                    yield json.loads(await response.aread())
                return
            with transport_errors(self.name):
                async for data in sse_data(response.aiter_lines()):
                    self._check_deadline(deadline)
                    if data.startswith("{") and '"error"' in data[:20]:
                        raise UpstreamUnavailableError(f"{self.name} reported an error mid-stream.")
                    yield [f"data: {data}\n\n"]
        finally:
            await response.aclose()
