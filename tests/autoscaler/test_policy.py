"""The scaling policy's promises, as properties over generated signals."""

from __future__ import annotations

import dataclasses
import math

from hypothesis import given, settings
from hypothesis import strategies as st

import pytest

from autoscaler.policy import FleetState, Payback, PolicyConfig, ScaleReason, ScalingPolicy, Signals, WorkCapacity

TICK_S = 10.0
signals = st.builds(
    Signals,
    running=st.floats(0, 500),
    waiting=st.floats(0, 500),
    kv_cache_usage=st.floats(0, 1),
    ttft_p99_s=st.none() | st.floats(0, 60),
    arrival_rps=st.floats(0, 100),
    arrival_trend=st.floats(-5, 5),
    spilled_rps=st.floats(0, 50),
    mean_service_s=st.floats(0, 60),
)
configs = st.builds(
    lambda lo, span, t, up, down: PolicyConfig(min_replicas=lo, max_replicas=lo + span, target_ongoing_per_replica=t,
                                               ttft_p99_target_s=2.0, up_window_s=up, down_window_s=down, idle_to_zero_s=60),
    st.integers(0, 4), st.integers(0, 8), st.floats(1, 64), st.sampled_from([0.0, 30.0]), st.sampled_from([60.0, 300.0]),
)


def run(policy: ScalingPolicy, ticks: list[Signals | None], start: int, cold_start_s: float = 0.0) -> list[int]:
    """Feed the ticks; the fleet becomes whatever the policy asked for (ready at once)."""
    fleet, targets = start, []
    for i, tick in enumerate(ticks):
        fleet = policy.decide(i * TICK_S, tick, FleetState(ready=fleet, cold_start_s=cold_start_s)).target
        targets.append(fleet)
    return targets


@settings(max_examples=300, deadline=None)
@given(configs, st.lists(signals | st.none(), min_size=1, max_size=60), st.integers(0, 12))
def test_never_below_min_or_above_max(config: PolicyConfig, ticks: list[Signals | None], start: int) -> None:
    assert all(config.min_replicas <= t <= config.max_replicas for t in run(ScalingPolicy(config), ticks, start))


@settings(max_examples=300, deadline=None)
@given(configs, st.lists(signals, min_size=1, max_size=30), st.integers(1, 12))
def test_a_failed_read_never_scales_down(config: PolicyConfig, history: list[Signals], fleet: int) -> None:
    policy = ScalingPolicy(config)
    run(policy, history, fleet)
    decision = policy.decide(len(history) * TICK_S, None, FleetState(ready=fleet))
    assert decision.reason is ScaleReason.HOLD_READ_FAILED
    assert decision.target >= min(fleet, config.max_replicas)


@settings(max_examples=300, deadline=None)
@given(
    st.floats(0.5, 200),  # the steady demand, in ongoing requests
    st.lists(st.floats(-0.3, 0.3), min_size=60, max_size=200),  # its noise, any sequence within ±30%
    st.floats(1, 32),
    st.sampled_from([0.0, 30.0]),
    st.sampled_from([60.0, 300.0]),
)
def test_noise_of_30_percent_changes_the_target_at_most_once_per_window(
    load: float, noise: list[float], per_replica: float, up_s: float, down_s: float
) -> None:
    config = PolicyConfig(min_replicas=1, max_replicas=1000, target_ongoing_per_replica=per_replica, up_window_s=up_s, down_window_s=down_s)
    start = max(1, math.ceil(load / per_replica))  # the fleet the steady load asks for
    targets = run(ScalingPolicy(config), [Signals(running=load * (1 + n), waiting=0) for n in noise], start)
    changes = [i * TICK_S for i, (a, b) in enumerate(zip([start, *targets], targets)) if a != b]
    assert all(later - earlier >= down_s for earlier, later in zip(changes, changes[1:])), (start, targets)


def test_queue_leads_and_a_burst_scales_up_in_one_tick() -> None:
    policy = ScalingPolicy(PolicyConfig(max_replicas=10, target_ongoing_per_replica=8))
    decision = policy.decide(0, Signals(running=8, waiting=30), FleetState(ready=1))
    assert (decision.target, decision.reason) == (7, ScaleReason.QUEUE)  # 38 ongoing, +30% headroom


def test_a_fresh_policy_makes_a_burst_outlast_the_up_window_before_buying_replicas() -> None:
    """A (re)started loop has no history; the fleet as found stands for the part of the window
    before its first reading, so a burst shorter than the up window buys nothing."""
    policy = ScalingPolicy(PolicyConfig(max_replicas=10, target_ongoing_per_replica=8, up_window_s=240, down_window_s=300))
    burst, fleet = Signals(running=8, waiting=30), FleetState(ready=1)
    assert [policy.decide(t, burst, fleet).target for t in (0, 10, 230)] == [1, 1, 1]
    assert policy.decide(240, burst, fleet).target == 7, "held for the whole up window"
    lull = ScalingPolicy(PolicyConfig(max_replicas=10, target_ongoing_per_replica=8, down_window_s=300))
    assert lull.decide(0, Signals(running=0, waiting=0), FleetState(ready=4)).target == 4, "nor a lull at start sheds replicas"


def test_a_move_the_bounds_shorten_keeps_its_reason_and_a_held_fleet_says_bounds() -> None:
    config = PolicyConfig(min_replicas=1, max_replicas=2, target_ongoing_per_replica=2)
    capped = ScalingPolicy(config).decide(0, Signals(running=8, waiting=4), FleetState(ready=1))
    held = ScalingPolicy(config).decide(0, Signals(running=8, waiting=4), FleetState(ready=2))
    assert (capped.target, capped.reason, capped.recommended) == (2, ScaleReason.QUEUE, 8)
    assert (held.target, held.reason) == (2, ScaleReason.BOUNDS)


def test_a_slice_below_break_even_is_left_to_the_hosted_api() -> None:
    config = PolicyConfig(max_replicas=10, target_ongoing_per_replica=10, scale_up_headroom=0.0, min_marginal_utilisation=0.4)
    fleet = FleetState(ready=1)
    assert ScalingPolicy(config).decide(0, Signals(running=10, waiting=13), fleet).target == 2  # 2.3 replicas' worth: 0.3 < 0.4
    assert ScalingPolicy(config).decide(0, Signals(running=10, waiting=15), fleet).target == 3  # 0.5 of a third is worth it
    assert ScalingPolicy(config).decide(0, Signals(running=1, waiting=0), FleetState(ready=0)).target == 1, "the first replica always"


def test_spilled_traffic_counts_as_demand_and_the_trend_looks_one_cold_start_ahead() -> None:
    config = PolicyConfig(max_replicas=20, target_ongoing_per_replica=4)
    spilled = ScalingPolicy(config).decide(0, Signals(running=4, waiting=0, spilled_rps=2, mean_service_s=4), FleetState(ready=1))
    assert spilled.target == 4  # 4 held + 2/s x 4 s spilled = 12 ongoing, +30%
    rising = Signals(running=4, waiting=0, arrival_rps=1, arrival_trend=0.01)
    assert ScalingPolicy(config).decide(0, rising, FleetState(ready=1, cold_start_s=300)).target == 6  # 1/s becomes 4/s: 16 ongoing, +30%


def test_kv_cache_and_ttft_guard_when_the_queue_looks_fine() -> None:
    config = PolicyConfig(max_replicas=4, target_ongoing_per_replica=8, ttft_p99_target_s=2.0)
    full = ScalingPolicy(config).decide(0, Signals(running=6, waiting=0, kv_cache_usage=0.97), FleetState(ready=1))
    slow = ScalingPolicy(config).decide(0, Signals(running=6, waiting=0, ttft_p99_s=5.0), FleetState(ready=1))
    assert (full.target, full.reason) == (2, ScaleReason.KV_CACHE) and (slow.target, slow.reason) == (2, ScaleReason.TTFT)


def test_a_guard_adds_no_second_replica_while_the_first_it_added_starts() -> None:
    """TTFT stays high until the replica the guard asked for serves (a cold start of minutes); a
    guard that read the same high p99 on every tick would ask for one more each tick."""
    policy = ScalingPolicy(PolicyConfig(max_replicas=8, target_ongoing_per_replica=8, ttft_p99_target_s=2.0))
    slow = Signals(running=6, waiting=0, ttft_p99_s=5.0, kv_cache_usage=0.97)
    assert policy.decide(0, slow, FleetState(ready=1, cold_start_s=300)).target == 2
    for now in (10, 20, 30):
        assert policy.decide(now, slow, FleetState(ready=1, starting=1, cold_start_s=300)).target == 2
    assert policy.decide(310, slow, FleetState(ready=2, cold_start_s=300)).target == 3, "once it serves and p99 is still high, one more"


def test_scales_down_only_after_the_down_window_and_to_zero_only_when_idle() -> None:
    policy = ScalingPolicy(PolicyConfig(min_replicas=0, max_replicas=4, target_ongoing_per_replica=8, down_window_s=60, idle_to_zero_s=120))
    fleet = FleetState(ready=4)
    assert policy.decide(0, Signals(running=30, waiting=0), fleet).target == 4
    assert policy.decide(30, Signals(running=0, waiting=0), fleet).target == 4, "the busy tick 30 s ago still holds"
    assert policy.decide(70, Signals(running=0, waiting=0), fleet).target == 1
    assert policy.decide(200, Signals(running=0, waiting=0), FleetState(ready=1)).target == 0
    back = policy.decide(210, Signals(running=0, waiting=0, spilled_rps=1, mean_service_s=2), FleetState(ready=0))
    assert back.target == 1, "traffic spilled while at zero brings a replica back"


CAPACITY = WorkCapacity(prefill_tokens_per_s=1000, decode_token_s=0.001, target_utilisation=1.0)


def test_demand_is_token_work_against_a_replica_not_a_count_of_ongoing_requests() -> None:
    """255 long-output sequences decoding on one replica are one replica's work, not 32 replicas'."""
    batching = Signals(running=255, waiting=0, prompt_tokens_per_s=200, output_tokens_per_s=800)  # 0.2 + 0.8 busy
    by_count = ScalingPolicy(PolicyConfig(max_replicas=64, target_ongoing_per_replica=8, scale_up_headroom=0))
    by_work = ScalingPolicy(PolicyConfig(max_replicas=64, scale_up_headroom=0, capacity=CAPACITY))
    assert by_count.decide(0, batching, FleetState(ready=1)).target == 32
    assert by_work.decide(0, batching, FleetState(ready=1)).target == 1
    assert ScalingPolicy(PolicyConfig(max_replicas=64, scale_up_headroom=0, capacity=CAPACITY)).decide(
        0, Signals(running=0, waiting=0, prompt_tokens_per_s=2500), FleetState(ready=1)).target == 3
    assert CAPACITY.replicas_for(500, 250) == pytest.approx(0.75)
    assert WorkCapacity(1000, 0.001, 0.5).replicas_for(500, 0) == pytest.approx(1.0), "sized for half-busy replicas"


def test_a_replica_is_bought_only_when_the_spill_it_absorbs_pays_for_its_paid_life() -> None:
    """Replica $36/hour ($0.01/s); hosted $10 per M prompt tokens, so 1,000 spilled tokens/s are
    $0.01/s. Over a 300 s down window a replica absorbing all of it takes $3: it pays for a paid
    life of 0 + 300 s ($3) and not for 60 + 300 s ($3.60)."""
    payback = Payback(replica_usd_per_hour=36.0, hosted_input_usd_per_mtok=10.0, hosted_output_usd_per_mtok=0.0)
    config = PolicyConfig(max_replicas=8, scale_up_headroom=0, down_window_s=300, capacity=CAPACITY, payback=payback)
    spilling = Signals(running=10, waiting=0, prompt_tokens_per_s=2000, spilled_prompt_tokens_per_s=1000)
    assert ScalingPolicy(config).decide(0, spilling, FleetState(ready=1, cold_start_s=0)).target == 2
    assert ScalingPolicy(config).decide(0, spilling, FleetState(ready=1, cold_start_s=60)).target == 1
    no_payback = dataclasses.replace(config, payback=None)
    assert ScalingPolicy(no_payback).decide(0, spilling, FleetState(ready=1, cold_start_s=60)).target == 2
    # The ready replica carries only 250 tokens/s within target (a bursty trace): the next one
    # would absorb about that much of the spill, $0.75 over the down window. Not worth $3.
    bursty = Signals(running=10, waiting=0, prompt_tokens_per_s=1250, spilled_prompt_tokens_per_s=1000)
    assert ScalingPolicy(config).decide(0, bursty, FleetState(ready=1, cold_start_s=0)).target == 1
    with pytest.raises(ValueError, match="capacity"):
        PolicyConfig(payback=payback)


#: Replica $36/hour ($0.01/s); hosted $20 per M prompt tokens, so a replica's worth of prompt work
#: (1,000 tokens/s) is $0.02/s hosted. With a 60 s cold start and a 300 s down window a replica
#: pays back from 0.6 of a replica's worth of spill held (0.6 x $0.02 x 300 s = $0.01 x 360 s),
#: and is kept while it hands back 0.5 of one.
PRICED = PolicyConfig(max_replicas=8, scale_up_headroom=0, down_window_s=300, capacity=CAPACITY,
                      payback=Payback(replica_usd_per_hour=36.0, hosted_input_usd_per_mtok=20.0, hosted_output_usd_per_mtok=0.0))


def work(local: float, spilled: float = 0.0) -> Signals:
    """Prompt work offered, in replicas' worth: ``local`` taken locally, ``spilled`` spilled."""
    return Signals(running=10, waiting=0, prompt_tokens_per_s=1000 * (local + spilled), spilled_prompt_tokens_per_s=1000 * spilled)


def test_a_replica_is_bought_for_spill_held_over_its_paid_life_not_for_a_spike() -> None:
    """A minute's spill of a whole replica's worth would pay ($6 over the down window against
    $3.60), but it is bought only once the spill has held for the look-back (60 + 300 s)."""
    assert ScalingPolicy(PRICED).decide(0, work(1, spilled=1), FleetState(ready=1, cold_start_s=60)).target == 2, "pays as one reading"
    policy = ScalingPolicy(PRICED)
    targets = {t: policy.decide(t, work(1, spilled=1 if t >= 300 else 0), FleetState(ready=1, cold_start_s=60)).target
               for t in range(0, 670, 10)}
    assert targets[300] == 1, "a spike after quiet readings buys nothing"
    assert targets[650] == 1, "a quiet reading 360 s ago is still in the look-back"
    assert targets[660] == 2, "held for the whole look-back: bought"


def test_a_replica_goes_when_the_work_it_hands_back_is_cheaper_hosted_and_the_band_stops_a_buy_back() -> None:
    """Two ready replicas carrying 1.3 replicas' worth: without the last, 0.3 of one would go
    hosted, $0.006/s against its $0.01/s, so it goes after the down window (the demand band alone
    holds two). At 1.6 it hands back $0.012/s and stays. Shed, the 0.3 spilled stays spilled: it
    pays $1.80 over a down window, short of a paid life's $3.60."""
    shedding = run(ScalingPolicy(PRICED), [work(1.3)] * 31, start=2, cold_start_s=60)
    assert shedding[29] == 2 and shedding[30] == 1
    assert run(ScalingPolicy(dataclasses.replace(PRICED, payback=None)), [work(1.3)] * 31, start=2, cold_start_s=60)[-1] == 2
    assert run(ScalingPolicy(PRICED), [work(1.6)] * 31, start=2, cold_start_s=60)[-1] == 2
    assert set(run(ScalingPolicy(PRICED), [work(1, spilled=0.3)] * 100, start=1, cold_start_s=60)) == {1}
