"""A circuit breaker per provider: stop sending to a target that keeps failing, probe it later.

Closed: requests flow; it opens after ``consecutive_failures`` failures in a row, or when the
failure rate over the last ``window`` outcomes reaches ``failure_rate`` (with at least
``min_samples``). Open: the target is skipped (the decision's ``breaker_open`` reason) until
``cooldown_s`` has passed. Half-open: one probe request is let through; success closes the
breaker, failure opens it again for another cool-down.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    consecutive_failures: int = 5
    failure_rate: float = 0.5
    window: int = 20
    min_samples: int = 10
    cooldown_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _outcomes: deque[bool] = field(default_factory=deque)
    _streak: int = 0
    _opened_at: float | None = None
    _probe_out: bool = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self.clock() - self._opened_at >= self.cooldown_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """Whether a request may go to this target now (claims the probe when half-open)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probe_out:
            self._probe_out = True
            return True
        return False

    def available(self) -> bool:
        """Like :meth:`allow`, without claiming anything: for the decision's health view."""
        state = self.state
        return state is BreakerState.CLOSED or (state is BreakerState.HALF_OPEN and not self._probe_out)

    def record(self, success: bool) -> None:
        if self._opened_at is not None:
            self._probe_out = False
            if success:
                self._close()
            else:
                self._opened_at = self.clock()
            return
        self._outcomes.append(success)
        if len(self._outcomes) > self.window:
            self._outcomes.popleft()
        self._streak = 0 if success else self._streak + 1
        failures = self._outcomes.count(False)
        rate_tripped = len(self._outcomes) >= self.min_samples and failures / len(self._outcomes) >= self.failure_rate
        if self._streak >= self.consecutive_failures or rate_tripped:
            self._opened_at = self.clock()

    def _close(self) -> None:
        self._opened_at = None
        self._outcomes.clear()
        self._streak = 0
