"""The control loop's duties around the policy: hold on a failed read, dry-run, one scale at a time."""

from __future__ import annotations

import asyncio

from autoscaler.actuator import ReplicaCounts
from autoscaler.loop import ControlLoop, policy_for
from autoscaler.policy import PolicyConfig, ScaleReason, ScalingPolicy, Signals
from spillover.config import load_config


class Readings:
    def __init__(self, *values: Signals | None) -> None:
        self.values = list(values)

    def read(self, model: str) -> Signals | None:
        return self.values.pop(0)


class ServeStandIn:
    """Replica counts held in memory; set_replicas takes ``delay_s`` like a drain would."""

    def __init__(self, running: int, delay_s: float = 0.0) -> None:
        self.running, self.delay_s, self.calls = running, delay_s, []

    async def counts(self, model: str) -> ReplicaCounts:
        return ReplicaCounts(running=self.running)

    async def set_replicas(self, model: str, replicas: int) -> None:
        self.calls.append(replicas)
        await asyncio.sleep(self.delay_s)
        self.running = replicas


def loop_for(readings: Readings, serve: ServeStandIn, *, dry_run: bool = False) -> ControlLoop:
    policy = ScalingPolicy(PolicyConfig(min_replicas=1, max_replicas=4, target_ongoing_per_replica=2, down_window_s=0))
    ticks = iter(range(1000))
    return ControlLoop({"m": policy}, readings, serve, cold_start_s={"m": 0}, dry_run=dry_run, clock=lambda: float(next(ticks)))


async def test_a_failed_read_holds_and_a_busy_read_scales_up() -> None:
    serve = ServeStandIn(running=2)
    loop = loop_for(Readings(None, Signals(running=4, waiting=4)), serve)
    held = await loop.tick()
    assert held["m"].reason is ScaleReason.HOLD_READ_FAILED and serve.calls == []
    await loop.tick()
    await asyncio.sleep(0)
    assert serve.calls == [4]
    assert loop.metrics.target.labels("m")._value.get() == 4


async def test_dry_run_decides_but_never_scales() -> None:
    serve = ServeStandIn(running=1)
    decisions = await loop_for(Readings(Signals(running=10, waiting=10)), serve, dry_run=True).tick()
    assert decisions["m"].target == 4 and serve.calls == []


async def test_a_model_being_scaled_is_left_alone_until_the_scale_returns() -> None:
    serve = ServeStandIn(running=1, delay_s=0.2)
    loop = loop_for(Readings(Signals(running=10, waiting=0), Signals(running=0, waiting=0)), serve)
    await loop.tick()
    assert await loop.tick() == {}, "no second decision while the first scale runs"
    await asyncio.sleep(0.3)
    assert serve.calls == [4]


def test_the_policy_comes_from_the_models_config() -> None:
    config = load_config(None, env={"SPILLOVER__MODELS__0__REPLICAS__MAX": "3", "SPILLOVER__MODELS__0__AUTOSCALING__DOWN_WINDOW_S": "20"})
    policy = policy_for(config.models[0].replicas, config.models[0].autoscaling)
    assert (policy.config.max_replicas, policy.config.down_window_s) == (3, 20)
    assert policy.config.capacity is None and policy.config.payback is None, "ongoing requests unless a capacity is given"
    work = load_config(None, env={"SPILLOVER__MODELS__0__AUTOSCALING__REPLICA_PREFILL_TOKENS_PER_S": "4900",
                                  "SPILLOVER__MODELS__0__AUTOSCALING__REPLICA_DECODE_TOKEN_S": "0.0002",
                                  "SPILLOVER__MODELS__0__AUTOSCALING__REPLICA_USD_PER_HOUR": "10",
                                  "SPILLOVER__MODELS__0__AUTOSCALING__HOSTED_INPUT_USD_PER_MTOK": "2.5"})
    paying = policy_for(work.models[0].replicas, work.models[0].autoscaling).config
    assert paying.capacity is not None and paying.capacity.prefill_tokens_per_s == 4900
    assert paying.payback is not None and paying.payback.replica_usd_per_hour == 10
