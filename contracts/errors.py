"""Every error spillover raises; each knows its HTTP status, OpenAI ``type`` and ``code``, and
``spillover.api.error_envelope`` is the one place they become responses.

::

    ConfigError                      bad configuration, raised at start (never over HTTP)
    SpilloverError                   anything a request can fail with; knows its status
    ├── ClientError                  4xx: the caller can fix it
    │   ├── InvalidRequestError      400 invalid_request_error (malformed, wrong types, ...)
    │   ├── AuthenticationError      401 invalid_api_key
    │   ├── PermissionDeniedError    403
    │   ├── NotFoundError            404 (unknown model: code model_not_found)
    │   ├── PayloadTooLargeError     413
    │   └── RateLimitError           429 (rate limits, budgets) with Retry-After
    │       └── InsufficientQuotaError   (costbook.admit) a budget cannot take the worst case
    ├── CapacityError                503: we cannot serve it now, try later (Retry-After)
    │   ├── NoReplicaError           no local replica ready and nowhere to spill
    │   └── StoreUnavailableError    Redis (rate limits, budgets) unreachable: refuse, never admit unmetered
    └── UpstreamError                502/504: an engine or provider failed (``retryable`` says
        ├── UpstreamTimeoutError       whether another try or target may succeed)
        │   └── LocalStartTimeoutError   no first item from the local engines in time (not retried there)
        ├── UpstreamRateLimitError   429 from upstream, with its Retry-After
        └── UpstreamUnavailableError 5xx/529 from upstream, or the connection failed
            └── LocalEngineFailedError   a local replica died under the request (not retried there)

The body is always ``{"error": {"message", "type", "param", "code"}}``; messages never carry
keys, prompts or completions.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "CapacityError",
    "ClientError",
    "ConfigError",
    "InvalidRequestError",
    "NoReplicaError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "SpilloverError",
    "StoreUnavailableError",
    "UpstreamError",
    "LocalEngineFailedError",
    "LocalStartTimeoutError",
    "UpstreamRateLimitError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "error_body",
]


class ConfigError(Exception):
    """The configuration is invalid; the message names the field."""


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class SpilloverError(Exception):
    status_code: int = 500
    type: str = "api_error"
    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.retry_after_s = retry_after_s

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)

    def headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": str(max(1, round(self.retry_after_s)))}


class ClientError(SpilloverError):
    status_code = 400
    type = "invalid_request_error"


class InvalidRequestError(ClientError):
    pass


class AuthenticationError(ClientError):
    status_code = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(ClientError):
    status_code = 403
    type = "permission_error"


class NotFoundError(ClientError):
    status_code = 404
    type = "invalid_request_error"


class PayloadTooLargeError(ClientError):
    status_code = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimitError(ClientError):
    status_code = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class CapacityError(SpilloverError):
    status_code = 503
    type = "service_unavailable"
    default_code = "overloaded"


class NoReplicaError(CapacityError):
    default_code = "no_replica_ready"


class StoreUnavailableError(CapacityError):
    """Redis (rate limits and budgets) cannot be reached: refuse rather than admit unmetered."""

    default_code = "store_unavailable"


class UpstreamError(SpilloverError):
    status_code = 502
    type = "api_error"
    default_code = "upstream_error"
    retryable = False


class UpstreamTimeoutError(UpstreamError):
    status_code = 504
    default_code = "upstream_timeout"
    retryable = True


class UpstreamRateLimitError(UpstreamError):
    status_code = 429
    type = "rate_limit_error"
    default_code = "upstream_rate_limited"
    retryable = True


class UpstreamUnavailableError(UpstreamError):
    status_code = 503
    type = "service_unavailable"
    default_code = "upstream_unavailable"
    retryable = True


class LocalEngineFailedError(UpstreamUnavailableError):
    """A local replica died or was torn down under the request.

    Not retried on the local target: Serve sends the next call to another replica only once it
    has noticed, and with one replica there is none; the next target answers sooner.
    """

    retryable = False


class LocalStartTimeoutError(UpstreamTimeoutError):
    """No local first item within the start timeout (e.g. no replica left to queue on).

    Not retried locally: waiting again would double a wait already too long.
    """

    retryable = False
