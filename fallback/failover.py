"""Failover before the first token: try each target in order until one starts answering.

A target "starts answering" when its first item arrives (a whole body, the first stream batch)
or it raises a client error it owns, such as a 400. Until then a retryable failure (timeout, 5xx,
529, connection reset) is retried on the same target after the backoff of
:mod:`fallback.retry` (the upstream's ``Retry-After`` first), then on the next target, all under
one deadline; each outcome feeds that target's circuit breaker. A rate limit (429) moves on to
the next available target at once: a full provider's ``Retry-After`` is a second or more, which
alone misses a latency target while another provider may answer now. The last available target
that refuses is retried after its ``Retry-After`` as before. After the first token nothing
is retried: the respond stage ends such a stream with an error event.

When every target is exhausted the caller gets 429 if the last refusal was a rate limit, else
503, both with ``Retry-After`` and OpenAI's error body.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contracts.errors import (
    CapacityError,
    LocalStartTimeoutError,
    RateLimitError,
    SpilloverError,
    UpstreamError,
    UpstreamRateLimitError,
)
from fallback.breaker import CircuitBreaker
from fallback.retry import backoff_s

__all__ = ["Failover", "Started", "Target"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """One place to try: its destination name, how to open a call to it, and how long to wait
    for its first item (``None``: the target enforces its own timeouts, as providers do)."""

    name: str
    open: Callable[[], AsyncIterator[Any]]
    start_timeout_s: float | None = None


@dataclass
class Started:
    """The target that answered, its first item, and the rest of its stream."""

    target: str
    first: Any
    rest: AsyncIterator[Any]
    failures: int

    async def items(self) -> AsyncIterator[Any]:
        yield self.first
        async for item in self.rest:
            yield item


class Failover:
    def __init__(self, breakers: Mapping[str, CircuitBreaker], *, attempts_per_target: int = 2, deadline_s: float = 30.0) -> None:
        self._breakers = breakers
        self._attempts = attempts_per_target
        self._deadline_s = deadline_s

    async def start(self, targets: Sequence[Target], request_id: str) -> Started:
        deadline = time.monotonic() + self._deadline_s
        last: UpstreamError | None = None
        failures = 0
        for target in targets:
            breaker = self._breakers.get(target.name)
            for attempt in range(self._attempts):
                if breaker is not None and not breaker.allow():
                    break
                stream = target.open()
                try:
                    first = await _first_item(target, stream)
                except StopAsyncIteration:
                    error = UpstreamError(f"{target.name} closed without answering.")
                except UpstreamError as exc:
                    error = exc
                except SpilloverError:
                    # The target understood and refused (a 4xx it owns): that is its answer.
                    _record(breaker, True)
                    raise
                else:
                    _record(breaker, True)
                    return Started(target.name, first, stream, failures)
                await _close(stream)
                _record(breaker, False)
                failures += 1
                last = error
                logger.warning(
                    "upstream failed before the first token: %s (%s)", target.name, type(error).__name__,
                    extra={"request_id": request_id, "attempt": attempt},
                )
                if not error.retryable or (isinstance(error, UpstreamRateLimitError) and self._another_available(targets, target)):
                    break
                time_left = deadline - time.monotonic()
                wait = backoff_s(attempt, retry_after=error.retry_after_s, time_left_s=time_left)
                if attempt + 1 >= self._attempts or wait >= time_left:
                    break
                await asyncio.sleep(wait)
            if time.monotonic() >= deadline:
                break
        raise _exhausted(last)

    def _another_available(self, targets: Sequence[Target], current: Target) -> bool:
        """Whether a target after ``current`` may be tried now (its breaker, unclaimed, lets it)."""
        later = targets[targets.index(current) + 1:]
        return any(self._breakers.get(t.name) is None or self._breakers[t.name].available() for t in later)


async def _first_item(target: Target, stream: AsyncIterator[Any]) -> Any:
    if target.start_timeout_s is None:
        return await anext(stream)
    try:
        return await asyncio.wait_for(anext(stream), target.start_timeout_s)
    except TimeoutError:
        raise LocalStartTimeoutError(f"{target.name} sent nothing within {target.start_timeout_s:g}s.") from None


def _record(breaker: CircuitBreaker | None, success: bool) -> None:
    if breaker is not None:
        breaker.record(success)


async def _close(stream: AsyncIterator[Any]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # closing a broken stream must not hide why it broke
            logger.debug("closing a failed upstream raised", exc_info=True)


def _exhausted(last: UpstreamError | None) -> SpilloverError:
    retry_after = (last.retry_after_s if last else None) or 1.0
    if isinstance(last, UpstreamRateLimitError):
        return RateLimitError("Every target for this model is rate-limited; try again later.", retry_after_s=retry_after, code="upstream_rate_limited")
    reason = f" (last: {last.message})" if last else ""
    return CapacityError(f"No target could serve this request{reason}.", retry_after_s=retry_after, code="no_healthy_target")
