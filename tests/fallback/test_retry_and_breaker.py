import email.utils
import random

from fallback.breaker import BreakerState, CircuitBreaker
from fallback.retry import backoff_s, retry_after_s
from tests.helpers import Clock


def test_retry_after_forms() -> None:
    assert retry_after_s({"retry-after": "3"}) == 3
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    date = email.utils.formatdate(1_000_010, usegmt=True)
    assert retry_after_s({"retry-after": date}, now=1_000_000) == 10
    assert retry_after_s({}) is None
    assert retry_after_s({"retry-after": "soon"}) is None


def test_backoff_honours_the_hint_and_the_deadline() -> None:
    assert backoff_s(0, retry_after=2.0) == 2.0
    assert backoff_s(0, retry_after=2.0, time_left_s=0.5) == 0.5
    rng = random.Random(1)
    waits = [backoff_s(a, rng=rng, base_s=0.1, cap_s=1.0) for a in range(10)]
    assert all(0 <= w <= 1.0 for w in waits) and max(waits) > 0.2


def test_breaker_opens_on_a_streak_then_half_opens_and_heals() -> None:
    clock = Clock()
    breaker = CircuitBreaker(consecutive_failures=3, cooldown_s=10, clock=clock)
    for _ in range(3):
        assert breaker.allow()
        breaker.record(False)
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.now = 10
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow() and not breaker.allow(), "one probe at a time"
    breaker.record(False)
    assert breaker.state is BreakerState.OPEN
    clock.now = 20
    assert breaker.allow()
    breaker.record(True)
    assert breaker.state is BreakerState.CLOSED and breaker.allow()


def test_breaker_opens_on_a_failure_rate_without_a_streak() -> None:
    breaker = CircuitBreaker(consecutive_failures=100, failure_rate=0.5, window=10, min_samples=10, clock=Clock())
    for i in range(10):
        breaker.record(i % 2 == 0)
    assert breaker.state is BreakerState.OPEN
