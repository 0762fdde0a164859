"""The fleet simulator on small traces whose answers are known by hand."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from autoscaler.baselines import AllApi, KedaQueue, RayServe, SpilloverFleet, StaticFleet
from autoscaler.hosted import LLMPERF_TTFT, HostedSide
from autoscaler.policy import PolicyConfig
from autoscaler.presets import ReplicaPreset, load_preset
from autoscaler.replay import GPT4O, run
from autoscaler.simulator import HostedModel, Simulation, simulate
from autoscaler.trace import Arrival, compress_time, read_trace, scale_tokens, window

PRESET = ReplicaPreset(name="toy", gpus_per_replica=2, step_overhead_s=0.02, prefill_tokens_per_s=1000.0,
                       max_num_seqs=8, max_batched_tokens=512, kv_capacity_tokens=100_000, cold_start_s=60.0)
HOSTED = HostedModel(input_usd_per_mtok=1.0, output_usd_per_mtok=2.0, ttft_s=0.5)
COMMON = {"hosted": HOSTED, "ttft_target_s": 1.0, "gpu_usd_per_hour": 3.0}
TRACE = Path(__file__).resolve().parents[1] / "fixtures" / "azure_llm_2023_code_head200.csv"


def test_one_request_costs_its_prefill_steps_and_one_replica_for_its_duration() -> None:
    result = simulate([Arrival(0.0, 1000, 10)], PRESET, StaticFleet(1), **COMMON)
    # 1000 prompt tokens in chunks of 512: two steps of 0.02 + 512/1000 and 0.02 + 488/1000.
    assert result.ttft_p50_s == pytest.approx(0.02 * 2 + 1.0)
    assert result.slo_attainment == 0.0 and result.api_usd == 0.0
    assert result.gpu_hours == pytest.approx(2 * (1.04 + 9 * 0.021) / 3600)


def test_a_measured_decode_cost_replaces_the_prompt_token_cost_in_decode_steps_only() -> None:
    cpu = dataclasses.replace(PRESET, decode_token_s=0.005)
    result = simulate([Arrival(0.0, 1000, 10)], cpu, StaticFleet(1), **COMMON)
    assert result.ttft_p50_s == pytest.approx(0.02 * 2 + 1.0), "prefill steps decode nothing"
    assert result.gpu_hours == pytest.approx(2 * (1.04 + 9 * 0.025) / 3600)
    assert cpu.decode_tokens_per_s(8) == pytest.approx(8 / (0.02 + 8 * 0.005))


def test_a_request_s_own_overhead_is_paid_once_in_the_step_that_admits_it() -> None:
    cpu = dataclasses.replace(PRESET, request_overhead_s=0.1)
    result = simulate([Arrival(0.0, 1000, 10)], cpu, StaticFleet(1), **COMMON)
    assert result.ttft_p50_s == pytest.approx(0.02 * 2 + 1.0 + 0.1)
    assert result.gpu_hours == pytest.approx(2 * (1.14 + 9 * 0.021) / 3600)
    assert PRESET.decode_tokens_per_s(8) == pytest.approx(8 / (0.02 + 8 / 1000))


def test_a_queue_past_capacity_misses_without_spill_and_spills_with_it() -> None:
    burst = [Arrival(i * 0.01, 400, 50) for i in range(40)]
    queued = simulate(burst, PRESET, StaticFleet(1), **COMMON)
    spilled = simulate(burst, PRESET, SpilloverFleet(PolicyConfig(max_replicas=1)), **COMMON)
    assert queued.slo_attainment < 0.5 and queued.spilled_share == 0
    assert spilled.slo_attainment >= 0.95, "hosted answers in 0.5 s, kept ones were predicted in time"
    assert 0 < spilled.spilled_share < 1 and spilled.api_usd == pytest.approx(
        sum(HOSTED.cost(400, 50) for _ in range(round(spilled.spilled_share * 40))))


def test_spills_take_the_measured_hosted_first_token_times_in_turn() -> None:
    burst = [Arrival(i * 0.01, 400, 50) for i in range(40)]
    policy = SpilloverFleet(PolicyConfig(max_replicas=1))
    fixed = simulate(burst, PRESET, policy, **COMMON)
    tail = dataclasses.replace(HOSTED, ttft_samples=(0.5, 3.0))  # every other spill misses the 1 s target
    sampled = simulate(burst, PRESET, policy, **{**COMMON, "hosted": tail})
    spills = round(sampled.spilled_share * 40)
    assert sampled.spilled_share == fixed.spilled_share
    assert fixed.slo_attainment - sampled.slo_attainment == pytest.approx((spills // 2) / 40)


def test_a_short_prompt_goes_to_the_replica_whose_long_prompt_already_started() -> None:
    """Replica A decodes a long prompt that has started; B has a medium one still to prefill.
    The live router's choice (tokens not yet started) puts a short probe on A, behind nothing;
    ranking by tokens in flight puts it on B, behind the medium prompt's prefill."""
    trace = [Arrival(0.0, 3000, 400), Arrival(3.5, 1500, 5), Arrival(3.55, 100, 5)]
    ttft = {}
    for router in ("unstarted_tokens", "tokens_in_flight"):
        sim = Simulation(trace, PRESET, StaticFleet(2), router=router, **COMMON)
        sim.run()
        probe = sim.requests[-1]
        ttft[router] = probe.first_token_s - probe.arrival.at_s
    assert ttft["unstarted_tokens"] < 0.2 < 1.0 < ttft["tokens_in_flight"], ttft


def test_all_api_pays_only_tokens() -> None:
    trace = [Arrival(i, 100, 10) for i in range(10)]
    result = simulate(trace, PRESET, AllApi(), **COMMON)
    assert (result.gpu_hours, result.spilled_share, result.slo_attainment) == (0.0, 1.0, 1.0)
    assert result.api_usd == pytest.approx(10 * HOSTED.cost(100, 10))


def test_scaled_up_replicas_are_paid_from_the_ask_and_serve_after_the_cold_start() -> None:
    steady = [Arrival(i * 0.05, 200, 40) for i in range(6000)]  # 20 requests/s for 5 minutes
    for policy in (RayServe(max_replicas=16), KedaQueue(max_replicas=16), SpilloverFleet(PolicyConfig(max_replicas=16, target_ongoing_per_replica=4))):
        result = simulate(steady, PRESET, policy, **COMMON)
        paid = max(p for _, _, p, _ in result.timeline)
        assert paid > 1, f"{policy.name} never scaled up"
        assert result.gpu_hours * 3600 / PRESET.gpus_per_replica >= 300, "one replica at least, all along"


def test_presets_load_with_their_sources() -> None:
    for name in ("llama3-70b-a100x4", "llama3-70b-h100x4"):
        preset = load_preset(name)
        assert preset.sources and preset.decode_tokens_per_s(1) == pytest.approx(1 / preset.step_s(0, 1))
    with pytest.raises(FileNotFoundError, match="known"):
        load_preset("no-such-preset")


def test_the_azure_trace_reads_and_scales() -> None:
    start, arrivals = read_trace(TRACE)
    assert str(start).startswith("2023-11-16 18:17:03") and len(arrivals) == 200
    assert arrivals[1].at_s == pytest.approx(0.052) and (arrivals[0].prompt_tokens, arrivals[0].output_tokens) == (4808, 10)
    first = window(arrivals, 10, 20)
    assert first and first[0].at_s >= 0 and all(a.at_s < 20 for a in first)
    small = scale_tokens(first, 1 / 16, 16)
    assert min(a.prompt_tokens for a in small) >= 16 and min(a.output_tokens for a in small) >= 16
    assert compress_time(small, 2.0)[-1].at_s == pytest.approx(small[-1].at_s / 2)


def test_the_cli_prints_every_policy_and_writes_json_and_a_plot(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    rows = [f"2023-11-16 18:{m:02d}:{s:02d}.0000000,{800 + 10 * s},{20 + s}" for m in range(3) for s in range(0, 60, 2)]
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(rows) + "\n")
    names = "spillover,spillover_no_payback,static_peak,static_spill,ray_serve,keda_queue,all_api"
    args = argparse.Namespace(trace=str(trace), policy=names, preset="llama3-70b-a100x4", ttft_target_s=2.0, gpu_usd_per_hour=2.5,
                              cold_start_s=None, max_replicas=8, target_utilisation=1.0, min_replicas=1, ray_target=2.0, keda_threshold=5.0,
                              hosted_tpm=0, warmup_s=0.0, json=tmp_path / "out.json", plot=tmp_path / "out.png")
    results = run(args)
    assert set(results) == set(names.split(","))
    assert (tmp_path / "out.png").stat().st_size > 10_000 and "total_usd" in (tmp_path / "out.json").read_text()
    assert results["all_api"].api_usd == pytest.approx(sum(GPT4O.cost(800 + 10 * s, 20 + s) for _ in range(3) for s in range(0, 60, 2)))


def test_the_hosted_api_draws_its_first_token_times_and_queues_past_its_rate_limit() -> None:
    limited = HostedSide(HostedModel(1.0, 2.0, ttft_s=0.5, tokens_per_minute=6000, max_wait_s=5.0))
    # 6,000 tokens a minute = 100/s, a one-minute bucket: the first 6,000 tokens pass at once.
    assert limited.call(0.0, 5000, 0) == (0.5, pytest.approx(5000 / 1e6))
    first, _ = limited.call(0.0, 1300, 0)  # 1,000 left: waits for 300 more, 3 s
    assert first == pytest.approx(3.5)
    assert limited.call(0.0, 300, 0) == (None, 0.0), "behind the waiter it would wait 6 s: it gives up, unbilled"
    drawn = [HostedSide(HostedModel(1.0, 2.0, ttft_lognormal=LLMPERF_TTFT, seed=7)).call(0.0, 1, 1)[0] for _ in range(2)]
    assert drawn[0] == drawn[1], "seeded"
    side = HostedSide(HostedModel(1.0, 2.0, ttft_lognormal=LLMPERF_TTFT))
    draws = sorted(side.call(0.0, 1, 1)[0] for _ in range(4001))
    assert draws[2000] == pytest.approx(0.635, rel=0.03) and draws[3600] == pytest.approx(0.734, rel=0.03), "the LLMPerf p50 and p90"


def test_cached_input_is_billed_at_its_price_and_not_prefilled_again_locally() -> None:
    priced = HostedModel(2.0, 8.0, cached_input_usd_per_mtok=1.0)
    assert priced.cost(1000, 100, cached=600) == pytest.approx((400 * 2 + 600 * 1 + 100 * 8) / 1e6)
    fresh = simulate([Arrival(0.0, 1000, 10)], PRESET, StaticFleet(1), **COMMON)
    reused = simulate([Arrival(0.0, 1000, 10, shared_prefix_tokens=600)], PRESET, StaticFleet(1), **COMMON)
    assert fresh.ttft_p50_s == pytest.approx(0.02 * 2 + 1.0) and reused.ttft_p50_s == pytest.approx(0.02 + 0.4)


def test_a_request_past_the_context_limit_goes_hosted_under_every_policy() -> None:
    limited = dataclasses.replace(PRESET, max_model_len=2000)
    trace = [Arrival(0.0, 1900, 50), Arrival(1.0, 2500, 10)]
    result = simulate(trace, limited, StaticFleet(1), **COMMON)
    assert [went for _, went, _ in result.outcomes] == [False, True]
    assert result.api_usd == pytest.approx(HOSTED.cost(2500, 10)) and result.slo_attainment == 0.5  # the local one: 2 s of prefill


def test_a_replica_that_becomes_ready_takes_the_queued_requests_not_yet_started() -> None:
    """One replica holds a queue of ten 1,000-token prompts (1 s of prefill each); a second
    becomes ready at 2 s. Without moving them, the last starts after ~10 s; with the move, the
    queue splits and the last request's first token comes by ~6 s."""
    trace = [Arrival(0.0, 1000, 2) for _ in range(10)]

    class OneThenTwo(StaticFleet):
        def target(self, now: float, signals: object, fleet: object) -> int:
            return 2

    sim = Simulation(trace, dataclasses.replace(PRESET, cold_start_s=2.0, max_batched_tokens=1000), OneThenTwo(1), **COMMON)
    result = sim.run()
    last = max(t for t, _, _ in result.outcomes if t is not None)
    assert [r.ready_at for r in sim.replicas] == [0.0, 2.0]
    assert last < 7.0, last


def test_ray_serve_moves_to_the_latest_desired_count_after_its_delay_of_consecutive_decisions() -> None:
    from autoscaler.policy import FleetState, Signals

    ray = RayServe(max_replicas=64, target_ongoing_requests=4)
    fleet = FleetState(ready=1)
    busy = [Signals(running=8, waiting=32), Signals(running=8, waiting=32), Signals(running=8, waiting=72), Signals(running=8, waiting=72)]
    targets = [ray.target(t, s, fleet) for t, s in zip((0.0, 10.0, 20.0, 30.0), busy)]
    # Look-back: the 30 s average at 30 s is (40 + 40 + 80 + 80) / 4 = 60 ongoing, 15 replicas.
    assert targets == [1, 1, 1, 15]
    calm = RayServe(max_replicas=64, target_ongoing_requests=4)
    assert [calm.target(t, Signals(running=0, waiting=0), FleetState(ready=3)) for t in (0.0, 300.0, 590.0)] == [3, 3, 3]
    assert calm.target(600.0, Signals(running=0, waiting=0), FleetState(ready=3)) == 1, "down after 600 s of consecutive decisions"


def test_keda_scales_on_waiting_requests_per_replica_at_its_polling_interval() -> None:
    from autoscaler.policy import FleetState, Signals

    keda = KedaQueue(max_replicas=64, average_waiting=10)
    assert keda.target(0.0, Signals(running=0, waiting=35), FleetState(ready=2)) == 4
    assert keda.target(10.0, Signals(running=0, waiting=500), FleetState(ready=4)) == 4, "polled every 30 s"
    assert keda.target(30.0, Signals(running=0, waiting=500), FleetState(ready=4)) == 8, "at most double (or +4) a step"
    assert keda.target(60.0, Signals(running=0, waiting=0), FleetState(ready=8)) == 8, "the down window holds the highest"


def test_the_warm_up_is_not_counted() -> None:
    trace = [Arrival(float(i), 100, 10) for i in range(20)]
    whole = simulate(trace, PRESET, AllApi(), **COMMON)
    tail = simulate(trace, PRESET, AllApi(), **COMMON, measure_from_s=10.0)
    assert len(whole.outcomes) == 20 and len(tail.outcomes) == 10 and tail.api_usd == pytest.approx(whole.api_usd / 2)
    fixed = simulate(trace, PRESET, StaticFleet(1), **COMMON, measure_from_s=10.0)
    assert fixed.paid_spans[0][0] == 10.0
