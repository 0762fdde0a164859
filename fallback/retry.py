"""How long to wait before trying again: the upstream's own word first, then jittered backoff.

``Retry-After`` (seconds or an HTTP date) and ``retry-after-ms`` (OpenAI's and Anthropic's
millisecond hint) win over our schedule; the schedule is exponential with full jitter (AWS's
"full jitter": a random wait in [0, base * 2^attempt], capped) so retries from many ingress
replicas do not arrive together. Every wait is clipped to the time left before the deadline.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping

__all__ = ["retry_after_s", "backoff_s"]


def retry_after_s(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The upstream's requested wait in seconds, or ``None`` if it gave none (or nonsense)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - (time.time() if now is None else now))


def backoff_s(
    attempt: int,
    *,
    retry_after: float | None = None,
    base_s: float = 0.25,
    cap_s: float = 8.0,
    time_left_s: float = float("inf"),
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based), never past the deadline."""
    if retry_after is not None:
        wait = retry_after
    else:
        wait = (rng or random).uniform(0, min(cap_s, base_s * 2**attempt))
    return max(0.0, min(wait, time_left_s))
