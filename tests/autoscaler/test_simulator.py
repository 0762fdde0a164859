"""The fleet simulator on small traces whose answers are known by hand."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from autoscaler.baselines import AllApi, KedaQueue, RayDefault, SpilloverFleet, StaticFleet
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
    for policy in (RayDefault(max_replicas=16), KedaQueue(max_replicas=16), SpilloverFleet(PolicyConfig(max_replicas=16, target_ongoing_per_replica=4))):
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
    args = argparse.Namespace(trace=str(trace), policy="spillover,static_peak,ray_default,keda_queue,all_api", preset="llama3-70b-a100x4",
                              ttft_target_s=2.0, gpu_usd_per_hour=2.5, cold_start_s=None, max_replicas=8, target_ongoing=8.0,
                              min_replicas=1, json=tmp_path / "out.json", plot=tmp_path / "out.png")
    results = run(args)
    assert set(results) == {"spillover", "static_peak", "ray_default", "keda_queue", "all_api"}
    assert (tmp_path / "out.png").stat().st_size > 10_000 and "total_usd" in (tmp_path / "out.json").read_text()
    assert results["all_api"].api_usd == pytest.approx(sum(GPT4O.cost(800 + 10 * s, 20 + s) for _ in range(3) for s in range(0, 60, 2)))
