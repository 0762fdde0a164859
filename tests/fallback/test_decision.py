from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.engine_state import EngineState
from contracts.spill import LOCAL, RoutePin, SpillReason
from fallback.decision import DispatchRequest, HostedTarget, Route, alone_ttft_s, decide, predict_ttft_s

HOSTED = (HostedTarget("openai", "gpt-4o-mini"), HostedTarget("anthropic", "claude-haiku"))
ROUTE = Route(name="m", local_model="m", ttft_target_s=2.0, hosted=HOSTED)
IDLE = EngineState(model="m", replicas_ready=1, prefill_tokens_per_s=1000, decode_tokens_per_s=50)


def test_idle_local_engine_serves_locally() -> None:
    decision = decide(DispatchRequest(prompt_tokens=200, max_tokens=100), IDLE, ROUTE)
    assert (decision.destination, decision.reason) == (LOCAL, SpillReason.LOCAL_OK)
    assert decision.predicted_ttft_s is not None and decision.predicted_ttft_s < 1
    assert decision.fallbacks == HOSTED


def test_a_full_batch_makes_a_request_wait_for_a_slot() -> None:
    free = EngineState(model="m", replicas_ready=1, running=2, waiting=0, prefill_tokens_per_s=1000, decode_tokens_per_s=40)
    full = EngineState(model="m", replicas_ready=1, running=2, waiting=1, prefill_tokens_per_s=1000, decode_tokens_per_s=40)
    request = DispatchRequest(prompt_tokens=10, max_tokens=64)
    assert predict_ttft_s(request, free, ROUTE) < 0.1
    # Two slot turnovers (the one ahead and its own) at 40 tokens/s for 64-token requests.
    assert abs(predict_ttft_s(request, full, ROUTE) - (0.02 + 2 * 64 / 40)) < 1e-9
    assert decide(request, full, ROUTE).reason is SpillReason.PREDICTED_WAIT


def test_a_long_queue_spills_before_dispatch() -> None:
    busy = EngineState(model="m", replicas_ready=1, waiting=20, running=8, prefill_tokens_per_s=1000)
    decision = decide(DispatchRequest(prompt_tokens=500, max_tokens=100), busy, ROUTE)
    assert (decision.destination, decision.reason) == ("openai", SpillReason.PREDICTED_WAIT)
    assert decision.predicted_ttft_s > ROUTE.ttft_target_s
    assert decision.fallbacks == HOSTED[1:]


def test_no_replica_cold_start_and_unhealthy_targets() -> None:
    starting = EngineState(model="m", replicas_starting=1)
    assert decide(DispatchRequest(10, 10), starting, ROUTE).reason is SpillReason.COLD_START
    assert decide(DispatchRequest(10, 10), EngineState(model="m"), ROUTE).reason is SpillReason.NO_READY_REPLICA
    assert decide(DispatchRequest(10, 10), EngineState(model="m", replicas_unhealthy=1), ROUTE).reason is SpillReason.UNHEALTHY
    assert decide(DispatchRequest(10, 10), EngineState(model="m", replicas_draining=1), ROUTE).reason is SpillReason.DRAINING
    back_up = EngineState(model="m", replicas_draining=1, replicas_starting=1)
    assert decide(DispatchRequest(10, 10), back_up, ROUTE).reason is SpillReason.COLD_START
    unhealthy = Route("m", "m", 2.0, hosted=(HostedTarget("openai", "x", healthy=False), HostedTarget("together", "y")))
    assert decide(DispatchRequest(10, 10), None, unhealthy).destination == "together"
    assert decide(DispatchRequest(10, 10), None, Route("m", "m", 2.0)).destination is None


def test_a_predicted_miss_with_every_breaker_open_stays_local_and_says_why() -> None:
    busy = EngineState(model="m", replicas_ready=1, waiting=20, running=8, prefill_tokens_per_s=1000)
    broken = Route("m", "m", 2.0, hosted=tuple(HostedTarget(t.provider, t.model, healthy=False) for t in HOSTED))
    decision = decide(DispatchRequest(prompt_tokens=500, max_tokens=100), busy, broken)
    assert (decision.destination, decision.reason, decision.fallbacks) == (LOCAL, SpillReason.BREAKER_OPEN, ())
    assert decision.predicted_ttft_s > broken.ttft_target_s
    # No hosted target at all (or hosting forbidden) is the route's design, not an open breaker.
    assert decide(DispatchRequest(prompt_tokens=500, max_tokens=100), busy, Route("m", "m", 2.0)).reason is SpillReason.LOCAL_OK
    assert decide(DispatchRequest(prompt_tokens=10, max_tokens=10), IDLE, broken).reason is SpillReason.LOCAL_OK


def test_pins_and_forbidden_hosting() -> None:
    busy = EngineState(model="m", replicas_ready=1, waiting=100, prefill_tokens_per_s=10)
    local = decide(DispatchRequest(500, 10, RoutePin.LOCAL_ONLY), busy, ROUTE)
    assert (local.destination, local.reason) == (LOCAL, SpillReason.PINNED)
    hosted = decide(DispatchRequest(5, 10, RoutePin.HOSTED_ONLY), IDLE, ROUTE)
    assert (hosted.destination, hosted.reason) == ("openai", SpillReason.PINNED)
    in_house = Route("m", "m", 2.0, hosted=HOSTED, allow_hosted=False)
    assert decide(DispatchRequest(500, 10), busy, in_house).destination == LOCAL
    assert decide(DispatchRequest(5, 10, RoutePin.HOSTED_ONLY), IDLE, in_house).reason is SpillReason.HOSTED_FORBIDDEN
    assert decide(DispatchRequest(5, 10, RoutePin.LOCAL_ONLY), EngineState(model="m"), ROUTE).destination is None


def test_a_full_kv_cache_adds_the_running_batch_to_the_wait() -> None:
    roomy = EngineState(model="m", replicas_ready=1, running=8, kv_cache_usage=0.5, prefill_tokens_per_s=1000, decode_tokens_per_s=80)
    full = EngineState(model="m", replicas_ready=1, running=8, kv_cache_usage=0.99, prefill_tokens_per_s=1000, decode_tokens_per_s=80)
    request = DispatchRequest(100, 200)
    assert predict_ttft_s(request, full, ROUTE) > predict_ttft_s(request, roomy, ROUTE) + 10


states = st.builds(
    EngineState,
    model=st.just("m"),
    replicas_ready=st.integers(0, 8),
    replicas_starting=st.integers(0, 4),
    running=st.integers(0, 256),
    waiting=st.integers(0, 256),
    kv_cache_usage=st.floats(0, 1),
    prefill_tokens_per_s=st.floats(0, 1e5),
    decode_tokens_per_s=st.floats(0, 1e4),
)


@settings(deadline=None)  # a noisy 2-core machine: timing is not what this tests
@given(states, st.integers(1, 8000), st.integers(1, 4000), st.sampled_from(list(RoutePin)))
def test_decision_properties(state: EngineState, prompt: int, max_tokens: int, pin: RoutePin) -> None:
    decision = decide(DispatchRequest(prompt, max_tokens, pin), state, ROUTE)
    if decision.destination == LOCAL:
        assert state.replicas_ready > 0, "never local without a ready replica"
        assert pin is not RoutePin.HOSTED_ONLY
    if pin is RoutePin.LOCAL_ONLY:
        assert decision.destination in (LOCAL, None)
    if decision.reason in (SpillReason.PREDICTED_WAIT, SpillReason.LONG_PROMPT):
        assert decision.predicted_ttft_s > ROUTE.ttft_target_s
        alone = alone_ttft_s(DispatchRequest(prompt, max_tokens), state, ROUTE)
        assert (alone > ROUTE.ttft_target_s) == (decision.reason is SpillReason.LONG_PROMPT), "long_prompt only when even idle misses"
    if decision.reason is SpillReason.LOCAL_OK and pin is RoutePin.AUTO:
        assert decision.predicted_ttft_s <= ROUTE.ttft_target_s
