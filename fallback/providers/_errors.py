"""Transport and HTTP failures of a hosted provider, as spillover's upstream errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from contracts.errors import (
    ClientError,
    InvalidRequestError,
    NotFoundError,
    SpilloverError,
    UpstreamError,
    UpstreamRateLimitError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from fallback.retry import retry_after_s

__all__ = ["status_error", "transport_errors"]


@contextmanager
def transport_errors(provider: str) -> Iterator[None]:
    """Map httpx's exceptions; the message names the provider, never the key or the body."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise UpstreamTimeoutError(f"{provider} timed out ({type(exc).__name__}).") from None
    except httpx.TransportError as exc:
        raise UpstreamUnavailableError(f"{provider} is unreachable ({type(exc).__name__}).") from None


def status_error(provider: str, status: int, headers: httpx.Headers, body: bytes) -> SpilloverError:
    message = _message(body) or f"HTTP {status}"
    if status == 429:
        return UpstreamRateLimitError(f"{provider} rate-limited the request: {message}", retry_after_s=retry_after_s(headers))
    if status in (500, 502, 503, 504, 529) or status >= 500:
        return UpstreamUnavailableError(f"{provider} failed with {status}: {message}", retry_after_s=retry_after_s(headers))
    if status in (401, 403):
        # Our key, not the caller's: a misconfiguration the breaker should see, not a 401 to the client.
        return UpstreamError(f"{provider} refused spillover's credentials ({status}).")
    if status == 404:
        return NotFoundError(f"{provider}: {message}", param="model", code="model_not_found")
    if status in (400, 413, 422):
        return InvalidRequestError(f"{provider}: {message}")
    return ClientError(f"{provider} answered {status}: {message}")


def _message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body[:200].decode(errors="replace")
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", ""))[:500]
    if isinstance(error, str):
        return error[:500]
    return str(data.get("message", ""))[:500] if isinstance(data, dict) else ""
