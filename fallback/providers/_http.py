"""What both wire formats share: one pooled httpx client, timeouts, and the send itself."""

from __future__ import annotations

import time
from typing import Any

import httpx

from contracts.errors import UpstreamTimeoutError
from fallback.providers._errors import status_error, transport_errors
from fallback.providers.config import ProviderConfig

__all__ = ["HttpProvider"]


class HttpProvider:
    """Base of the adapters: sends one request, raises spillover's errors for failures."""

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient | None = None) -> None:
        self.name = config.name
        self.config = config
        self._client = client or httpx.AsyncClient(
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=64),
            # Retries are ours (fallback/retry.py): the transport never retries on its own.
            transport=httpx.AsyncHTTPTransport(retries=0),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _timeout(self, stream: bool) -> httpx.Timeout:
        """``read`` bounds a stream's wait for its first byte and every gap between chunks after it.

        A non-stream answer's first byte comes only when the whole answer is generated, so there
        ``read`` is the total timeout: a first-byte bound would cut every long answer and pay for
        it twice, once here and once on the next target.
        """
        c = self.config
        read = c.first_byte_timeout_s if stream else c.total_timeout_s
        return httpx.Timeout(connect=c.connect_timeout_s, read=read, write=c.connect_timeout_s, pool=c.connect_timeout_s)

    async def _send(self, path: str, payload: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        """POST and return the response with its body unread; raise on any non-2xx."""
        url = self.config.base_url.rstrip("/") + path
        timeout = self._timeout(bool(payload.get("stream")))
        request = self._client.build_request("POST", url, json=payload, headers=headers, timeout=timeout)
        with transport_errors(self.name):
            response = await self._client.send(request, stream=True)
        if response.status_code >= 400:
            with transport_errors(self.name):
                body = await response.aread()
            await response.aclose()
            raise status_error(self.name, response.status_code, response.headers, body)
        return response

    def _check_deadline(self, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise UpstreamTimeoutError(f"{self.name} exceeded its total timeout of {self.config.total_timeout_s} s.")
