import time

from vllm.v1.metrics.stats import IterationStats, SchedulerStats

from contracts.engine_state import ReplicaState, sum_replicas
from serving import vllm_stats_plugin as engine_stats
from serving.state_board import replica_state_now
from serving.vllm_stats_plugin import EngineStatsLogger


def test_sum_over_fresh_replicas_of_the_model_only() -> None:
    now = time.time()
    replicas = [
        ReplicaState("a", "m", running=2, waiting=1, kv_cache_usage=0.5, prefill_tokens_per_s=300, decode_tokens_per_s=40, observed_at=now),
        ReplicaState("b", "m", running=4, waiting=3, kv_cache_usage=0.1, prefill_tokens_per_s=200, decode_tokens_per_s=60, observed_at=now - 1),
        ReplicaState("c", "m", running=9, waiting=9, observed_at=now - 10),  # stale: gone
        ReplicaState("d", "other", running=9, observed_at=now),
    ]
    state = sum_replicas("m", replicas, replicas_starting=2, now=now)
    assert (state.replicas_ready, state.replicas_starting) == (2, 2)
    assert (state.running, state.waiting) == (6, 4)
    assert abs(state.kv_cache_usage - 0.3) < 1e-9
    assert (state.prefill_tokens_per_s, state.decode_tokens_per_s) == (500, 100)
    assert state.age_s == 1


def test_no_fresh_replica_means_none_ready() -> None:
    state = sum_replicas("m", [ReplicaState("a", "m", running=1, observed_at=time.time() - 5)], replicas_starting=1)
    assert state.replicas_ready == 0 and state.running == 0 and state.replicas_starting == 1


def _scheduler(running: int, waiting: int, kv: float) -> SchedulerStats:
    return SchedulerStats(num_running_reqs=running, num_waiting_reqs=waiting, kv_cache_usage=kv)


def _iteration(at: float, prompt: int = 0, generated: int = 0, ttfts: list[float] | None = None) -> IterationStats:
    stats = IterationStats()
    stats.iteration_timestamp = at
    stats.prompt_token_stats.computed = prompt
    stats.num_generation_tokens = generated
    stats.time_to_first_tokens_iter = ttfts or []
    return stats


def test_stats_logger_measures_rates_over_busy_steps_only() -> None:
    logger = EngineStatsLogger(vllm_config=None)
    assert engine_stats.latest() is not None
    t = 1000.0
    # First step after idle: 500 prompt tokens whose first token took 0.5 s -> 1000 tokens/s.
    logger.record(_scheduler(1, 0, 0.1), _iteration(t, prompt=500, generated=1, ttfts=[0.5]))
    assert abs(logger.snapshot().prefill_tokens_per_s - 1000) < 1e-6
    # Busy decode steps, 0.05 s each with 4 sequences -> 80 tokens/s.
    for i in range(1, 40):
        logger.record(_scheduler(4, 2, 0.2), _iteration(t + 0.05 * i, generated=4))
    snap = logger.snapshot()
    assert abs(snap.decode_tokens_per_s - 80) < 5
    assert (snap.running, snap.waiting, snap.kv_cache_usage) == (4, 2, 0.2)
    # The last step finishes every request; the idle gap after it is not a step.
    logger.record(_scheduler(0, 0, 0.0), _iteration(t + 2.0, generated=4))
    finished = logger.snapshot().decode_tokens_per_s
    logger.record(_scheduler(1, 0, 0.0), _iteration(t + 60.0, generated=1))
    assert logger.snapshot().decode_tokens_per_s == finished
    assert abs(finished - 80) < 5


def test_replica_state_is_stamped_now_even_when_the_engine_is_idle() -> None:
    state = replica_state_now("r", "m", None)
    assert state.running == 0 and state.age_s() < 1


def test_a_stalled_engine_is_unhealthy_not_ready() -> None:
    now = time.time()
    hung = ReplicaState("a", "m", running=3, observed_at=now, engine_idle_s=45)
    idle = ReplicaState("b", "m", running=0, observed_at=now, engine_idle_s=600)
    state = sum_replicas("m", [hung, idle], now=now)
    assert (state.replicas_ready, state.replicas_unhealthy) == (1, 1)
    assert sum_replicas("m", [hung], now=now).replicas_ready == 0


def test_a_draining_model_has_no_ready_replica() -> None:
    now = time.time()
    serving = [ReplicaState("a", "m", running=2, observed_at=now), ReplicaState("b", "m", observed_at=now)]
    state = sum_replicas("m", serving, draining=True, now=now)
    assert (state.replicas_ready, state.replicas_draining, state.running) == (0, 2, 0)


def test_prefill_rate_leaves_out_the_decoding_in_mixed_steps() -> None:
    """Under load every prefill shares its step with decodes: timing the whole step as prefill
    reads the rate low (here 50% low), which the decision would take as a longer wait."""
    logger = EngineStatsLogger(vllm_config=None)
    t = 2000.0
    logger.record(_scheduler(8, 0, 0.1), _iteration(t, generated=8))
    # Pure decode steps: 8 sequences in 0.04 s -> 200 tokens/s, 5 ms a sequence.
    for i in range(1, 40):
        logger.record(_scheduler(8, 1, 0.1), _iteration(t + 0.04 * i, generated=8))
    decode = logger.snapshot().decode_tokens_per_s
    assert abs(decode - 200) < 1
    # Mixed steps: 8 decodes (0.04 s) plus a 200-token prefill at 5000 tokens/s (0.04 s) -> 0.08 s.
    at = t + 0.04 * 39
    for _ in range(20):
        at += 0.08
        logger.record(_scheduler(9, 1, 0.1), _iteration(at, prompt=200, generated=9, ttfts=[0.2]))
    snap = logger.snapshot()
    assert abs(snap.prefill_tokens_per_s - 5000) < 100, snap.prefill_tokens_per_s
    assert snap.decode_tokens_per_s == decode, "mixed steps do not time decoding"
