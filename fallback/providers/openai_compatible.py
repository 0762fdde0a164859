"""OpenAI's wire format: OpenAI itself, Together, Fireworks, vLLM, anything that speaks it.

The body passes through with the provider's model name (dispatch has already asked streams for
usage, so every token is accounted; the respond stage drops that chunk when the client did not
ask for it).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

from contracts.errors import UpstreamUnavailableError
from contracts.upstream import Item, UpstreamCall
from fallback.providers._errors import transport_errors
from fallback.providers._http import HttpProvider
from fallback.sse import sse_data

__all__ = ["OpenAICompatibleProvider"]

_PATHS = {"chat": "/chat/completions", "completions": "/completions"}


class OpenAICompatibleProvider(HttpProvider):
    async def generate(self, call: UpstreamCall) -> AsyncIterator[Item]:
        deadline = time.monotonic() + self.config.total_timeout_s
        payload = {**call.body, "model": self.config.upstream_model(call.model)}
        stream = bool(call.body.get("stream"))
        headers = {"x-request-id": call.request_id}
        headers |= self.config.auth_headers()
        response = await self._send(_PATHS[call.api], payload, headers)
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
