"""A vLLM stat-logger plugin that keeps each engine's live numbers in its own process.

vLLM calls every registered stat logger after each engine step (``vllm.stat_logger_plugins``
entry point, declared in pyproject.toml). This one keeps the scheduler's running and waiting
counts and KV-cache use, and measures prefill and decode token rates over the steps the engine
was busy, so an idle replica still reports the capacity it last showed. The engine replica
(:mod:`serving.llm_deployment`) reads :func:`latest` and publishes it to the board.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from vllm.v1.metrics.loggers import StatLoggerBase

__all__ = ["EngineStatsLogger", "EngineSnapshot", "latest"]

# A step longer than this is the engine waiting for work, not working.
_MAX_STEP_S = 1.0
# A prefill step whose decode share leaves less than this of it to prefill is not timed.
_MIN_PREFILL_SHARE = 0.25
# Exponential smoothing horizon for the token rates.
_RATE_HORIZON_S = 5.0


@dataclass(frozen=True)
class EngineSnapshot:
    running: int
    waiting: int
    kv_cache_usage: float
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    observed_at: float
    #: Seconds the engine has spent in steps with work since it started (what local cost shares out).
    busy_s: float = 0.0


_latest: EngineStatsLogger | None = None


def latest() -> EngineSnapshot | None:
    """The snapshot of the engine in this process, or ``None`` before its first step."""
    return None if _latest is None else _latest.snapshot()


class _Rate:
    """Tokens per second over busy time: a running mean, then exponential over ``_RATE_HORIZON_S``."""

    def __init__(self) -> None:
        self.value = 0.0
        self._seconds = 0.0

    def add(self, tokens: int, seconds: float) -> None:
        if seconds <= 0:
            return
        self._seconds += seconds
        weight = seconds / min(self._seconds, _RATE_HORIZON_S)
        self.value += min(1.0, weight) * (tokens / seconds - self.value)


class EngineStatsLogger(StatLoggerBase):
    def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
        global _latest
        self._running = 0
        self._waiting = 0
        self._kv = 0.0
        self._prefill = _Rate()
        self._decode = _Rate()
        self._last_step: float | None = None
        self._last_was_busy = False
        self._busy_s = 0.0
        self._observed_at = time.time()
        _latest = self

    def record(
        self,
        scheduler_stats: Any,
        iteration_stats: Any,
        mm_cache_stats: Any = None,
        engine_idx: int = 0,
    ) -> None:
        now = time.time()
        if scheduler_stats is not None:
            self._running = scheduler_stats.num_running_reqs
            self._waiting = scheduler_stats.num_waiting_reqs + getattr(
                scheduler_stats, "num_skipped_waiting_reqs", 0
            )
            self._kv = float(scheduler_stats.kv_cache_usage)
        if iteration_stats is not None:
            self._measure(iteration_stats)
            self._last_step = iteration_stats.iteration_timestamp
        self._last_was_busy = self._running > 0 or self._waiting > 0
        self._observed_at = now

    def _measure(self, stats: Any) -> None:
        """Add the step that produced ``stats`` to the rates, when its duration is known.

        Each rate is measured on the steps that did its kind of work. A pure decode step times
        decoding. A step that prefilled times prefill, less the time its decoding sequences took
        at the decode rate pure steps showed: folding them in would read the prefill rate low
        under load, exactly when the spill-over decision leans on it. A step whose prefill share
        is too small to tell from the decode estimate's error is left out of the prefill rate.

        After an idle spell the gap since the last record is idle time, not work: the first
        token's latency of the requests this step started bounds the step instead (it also
        holds any queueing, so the prefill rate errs low, on the safe side), and the step says
        nothing about decoding.
        """
        # Computed tokens only: prefix-cache hits cost no prefill time.
        prompt_tokens = stats.prompt_token_stats.computed
        # Each request whose prefill finished this step emitted its first token in it.
        decode_tokens = max(0, stats.num_generation_tokens - len(stats.time_to_first_tokens_iter))
        if self._last_step is not None and self._last_was_busy:
            step_s = stats.iteration_timestamp - self._last_step
            if 0 < step_s <= _MAX_STEP_S:
                self._busy_s += step_s
                if not prompt_tokens:
                    self._decode.add(decode_tokens, step_s)
                    return
                decode_s = decode_tokens / self._decode.value if self._decode.value > 0 else 0.0
                if step_s - decode_s >= _MIN_PREFILL_SHARE * step_s:
                    self._prefill.add(prompt_tokens, step_s - decode_s)
        elif prompt_tokens and stats.time_to_first_tokens_iter:
            # The first token's latency also holds queueing: as busy time, one step at most.
            self._busy_s += min(max(stats.time_to_first_tokens_iter), _MAX_STEP_S)
            self._prefill.add(prompt_tokens, max(stats.time_to_first_tokens_iter))

    def snapshot(self) -> EngineSnapshot:
        return EngineSnapshot(
            running=self._running,
            waiting=self._waiting,
            kv_cache_usage=self._kv,
            prefill_tokens_per_s=self._prefill.value,
            decode_tokens_per_s=self._decode.value,
            observed_at=self._observed_at,
            busy_s=self._busy_s,
        )

    def log_engine_initialized(self) -> None:
        """Nothing to log: the board announces the replica once it publishes."""
