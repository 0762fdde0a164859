"""Anthropic's Messages API, translated both ways (fallback/anthropic_wire.py)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from contracts.errors import InvalidRequestError, UpstreamRateLimitError, UpstreamUnavailableError
from contracts.upstream import Item, UpstreamCall
from fallback.anthropic_wire import StreamTranslator, from_messages_response, to_messages_request
from fallback.providers._errors import transport_errors
from fallback.providers._http import HttpProvider
from fallback.sse import sse_data

__all__ = ["AnthropicProvider"]


class AnthropicProvider(HttpProvider):
    async def generate(self, call: UpstreamCall) -> AsyncIterator[Item]:
        public_model = call.model
        if call.api != "chat":
            raise InvalidRequestError(f"{self.name} serves chat completions only.")
        deadline = time.monotonic() + self.config.total_timeout_s
        payload = to_messages_request(call.body, self.config.upstream_model(public_model))
        headers = {"anthropic-version": self.config.anthropic_version, "x-request-id": call.request_id}
        headers |= self.config.auth_headers()
        response = await self._send("/messages", payload, headers)
        try:
            if not payload.get("stream"):
                with transport_errors(self.name):
                    yield from_messages_response(json.loads(await response.aread()), public_model)[0]
                return
            translator = StreamTranslator(public_model=public_model, include_usage=True)
            with transport_errors(self.name):
                async for data in sse_data(response.aiter_lines()):
                    self._check_deadline(deadline)
                    event = json.loads(data)
                    if event.get("type") == "error":
                        raise _stream_error(self.name, event.get("error") or {})
                    payloads = list(translator.feed(event))
                    if payloads:
                        yield payloads
            if not translator.finished:
                raise UpstreamUnavailableError(f"{self.name} ended the stream before message_stop.")
        finally:
            await response.aclose()


def _stream_error(provider: str, error: dict[str, Any]) -> Exception:
    kind = error.get("type", "api_error")
    message = f"{provider} failed mid-stream: {kind}"
    return UpstreamRateLimitError(message) if kind == "rate_limit_error" else UpstreamUnavailableError(message)
