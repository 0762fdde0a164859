"""The scaling policy: signals and fleet state in, target replicas and a reason out. Pure.

Demand is work against capacity when the config gives a replica's capacity
(:class:`WorkCapacity`): the prompt and output tokens per second offered to the model (spilled
traffic included, less what no replica could take) against what one replica sustains at the
target latency, so a replica batching hundreds of long-output sequences reads as one replica's
worth, whatever the trace's request shape. Without it, the requests a model holds (running +
waiting), plus the traffic it spilled (Little's law: spilled requests/s times their mean time in
system), is the demand; a replica takes ``target_ongoing_per_replica`` of it. With
``project_trend``, the arrival trend is projected one cold start ahead. KV-cache use and TTFT
p99 guard: past their limits the policy asks for one more replica whatever the demand says (none
while one starts: the replica in flight is the remedy, and the reading stays high until it serves). GPU
utilisation never scales up on its own: it reads 0% for a light kernel stream and pegs near 100%
with one batch, so it says little about headroom.

With :class:`Payback` prices, every replica past the first answers for itself in dollars, read
over a look-back of its paid life (cold start plus down window), never one minute's. One is bought
only when the spilled spend it would absorb pays for that whole paid life: it is paid from the
ask, serves only after the cold start, and then stays at least the down window, so the hosted
dollars it takes over the down window must cover what it costs over cold start plus down window.
What it would absorb is the spill held throughout the look-back (a burst shorter than that is over
before a replica bought for it serves), up to the local work one ready replica carried throughout
(a replica that takes only part of a bursty trace within target, because a burst's queue would
miss it, takes no more of the spill when it is the next one). One is kept only while the work it
would hand to the hosted API, the local work beyond what the others carry at the config's
capacity, averaged over the look-back at this fleet size, costs more hosted than the replica does
from now on (its cold start is spent). Buying at (cold start + down window) / down window times
the replica's price and shedding below once that price is the band that keeps the fleet from
buying back what it just shed.

Two mechanisms keep noise from flapping the fleet. Hysteresis: scaling up provisions
``scale_up_headroom`` above the demand that triggered it, and a replica goes only when the fleet
one smaller would run below ``scale_down_below`` of its capacity; at 0.3 and 0.5 the band a fleet
keeps is wider than ±30% around any steady load, so such noise moves the target at most once up
and once down, a down window apart.
Stabilisation, as in Kubernetes' HPA: scale up to the lowest recommendation of the (short) up
window, down to the highest of the (long) down window, so a burst scales up fast and a lull must
last before capacity goes. The windows hold from the policy's first reading: until they are full,
the fleet as found stands for their earlier part, so a (re)started loop is no quicker to buy or
shed replicas than a running one. A failed signal read holds the current target and never scales down.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass

__all__ = ["FleetState", "Payback", "PolicyConfig", "ScaleDecision", "ScaleReason", "ScalingPolicy", "Signals", "WorkCapacity"]


class ScaleReason(enum.StrEnum):
    QUEUE = "queue"
    KV_CACHE = "kv_cache"
    TTFT = "ttft"
    IDLE = "idle"
    HOLD_READ_FAILED = "hold_read_failed"
    STABILISING = "stabilising"
    BOUNDS = "bounds"


@dataclass(frozen=True)
class Signals:
    """One model's signals at one moment (Prometheus or the simulator fills them)."""

    running: float
    waiting: float
    kv_cache_usage: float = 0.0
    ttft_p99_s: float | None = None
    arrival_rps: float = 0.0
    #: Change of the arrival rate, requests/s per second.
    arrival_trend: float = 0.0
    spilled_rps: float = 0.0
    #: Mean seconds a request spends in the system (for Little's law on spilled traffic).
    mean_service_s: float = 0.0
    #: Prompt and output tokens per second offered to the model that a replica could take
    #: (local and spilled; not what no replica can hold), and the part of it that spilled.
    prompt_tokens_per_s: float = 0.0
    output_tokens_per_s: float = 0.0
    spilled_prompt_tokens_per_s: float = 0.0
    spilled_output_tokens_per_s: float = 0.0


@dataclass(frozen=True)
class FleetState:
    ready: int
    starting: int = 0
    draining: int = 0
    cold_start_s: float = 0.0

    @property
    def provisioned(self) -> int:
        """Replicas asked for and not going away: what the current target is."""
        return self.ready + self.starting


@dataclass(frozen=True)
class WorkCapacity:
    """What one replica sustains at the target latency, in token work (from a replica preset).

    A replica spends ``1 / prefill_tokens_per_s`` per prompt token and ``decode_token_s`` per
    output token; the rest of its time is step overhead, which grows the step (and the time per
    output token) as ``overhead / (1 - busy share)``. ``target_utilisation`` is the busy share a
    replica is sized for: 0.8 keeps a step within 5x its overhead and leaves a fifth of the
    replica for bursts between ticks (a config choice, not fitted to any trace).
    """

    prefill_tokens_per_s: float
    decode_token_s: float
    target_utilisation: float = 0.8

    def __post_init__(self) -> None:
        if self.prefill_tokens_per_s <= 0 or self.decode_token_s <= 0 or not 0 < self.target_utilisation <= 1:
            raise ValueError("need positive token costs and target_utilisation in (0, 1]")

    def replicas_for(self, prompt_tokens_per_s: float, output_tokens_per_s: float) -> float:
        """Replicas' worth of work (fractional)."""
        busy = prompt_tokens_per_s / self.prefill_tokens_per_s + output_tokens_per_s * self.decode_token_s
        return busy / self.target_utilisation


@dataclass(frozen=True)
class Payback:
    """Prices that decide whether a replica pays for itself against the hosted API."""

    replica_usd_per_hour: float
    hosted_input_usd_per_mtok: float
    hosted_output_usd_per_mtok: float

    def hosted_usd_per_s(self, prompt_tokens_per_s: float, output_tokens_per_s: float) -> float:
        return (prompt_tokens_per_s * self.hosted_input_usd_per_mtok + output_tokens_per_s * self.hosted_output_usd_per_mtok) / 1e6


@dataclass(frozen=True)
class PolicyConfig:
    min_replicas: int = 1
    max_replicas: int = 1
    target_ongoing_per_replica: float = 8.0
    #: Scaling up provisions this much above the demand that triggered it.
    scale_up_headroom: float = 0.3
    #: A replica goes only when the fleet one smaller would run below this share of its target.
    scale_down_below: float = 0.5
    #: With spill-over, a replica past the first is worth paying for only when the demand it
    #: would take fills at least this share of its target; below that, the hosted API serves that
    #: slice for less. Break-even = replica $/hour ÷ hosted $ for the work of a full replica-hour
    #: (``spillover simulate`` derives it from the prices). 0 rounds every fraction up.
    min_marginal_utilisation: float = 0.0
    max_kv_cache_usage: float = 0.9
    ttft_p99_target_s: float | None = None
    up_window_s: float = 0.0
    down_window_s: float = 300.0
    #: With ``min_replicas`` 0: go to zero only after this long with no demand at all.
    idle_to_zero_s: float = 600.0
    #: Demand as token work against this capacity; ``None``: ongoing requests per replica.
    capacity: WorkCapacity | None = None
    #: Buy a replica past the first only when it pays back its whole paid life (needs ``capacity``).
    payback: Payback | None = None
    #: Project the arrival trend one cold start ahead.
    project_trend: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError("need 0 <= min_replicas <= max_replicas")
        if self.target_ongoing_per_replica <= 0:
            raise ValueError("target_ongoing_per_replica must be > 0")
        if not 0 < self.scale_down_below <= 1:
            raise ValueError("scale_down_below must be in (0, 1]")
        if not 0 <= self.min_marginal_utilisation < 1:
            raise ValueError("min_marginal_utilisation must be in [0, 1)")
        if self.payback is not None and self.capacity is None:
            raise ValueError("payback prices a replica's share of token work: it needs capacity")


@dataclass(frozen=True)
class _Reading:
    """One tick as the payback tests read it: the spill and the local work, each in replicas'
    worth and in hosted dollars a second, and the ready replicas that carried the local work."""

    at: float
    spilled: float
    spilled_usd_per_s: float
    local: float
    local_usd_per_s: float
    ready: int


@dataclass(frozen=True)
class ScaleDecision:
    target: int
    reason: ScaleReason
    #: What the signals alone asked for, before stabilisation and bounds.
    recommended: int


class ScalingPolicy:
    """Stateful only in its recommendation history; feed it one :meth:`decide` per tick."""

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config
        self._history: deque[tuple[float, int]] = deque()
        self._last_demand_at: float | None = None
        self._first_at: float | None = None
        self._readings: deque[_Reading] = deque()

    def decide(self, now: float, signals: Signals | None, fleet: FleetState) -> ScaleDecision:
        current = fleet.provisioned
        if signals is None:
            return ScaleDecision(self._clamp(current), ScaleReason.HOLD_READ_FAILED, current)
        recommended, reason = self._recommend(now, signals, fleet)
        if self._first_at is None:
            self._first_at = now
        self._history.append((now, recommended))
        horizon = max(self.config.up_window_s, self.config.down_window_s)
        while self._history and self._history[0][0] < now - horizon:
            self._history.popleft()
        target = current
        if recommended > current:
            target = max(min(self._window(now, self.config.up_window_s, current)), current)
        elif recommended < current:
            target = min(max(self._window(now, self.config.down_window_s, current)), current)
        if target != recommended:
            reason = ScaleReason.STABILISING
        clamped = self._clamp(target)
        # A move the signals asked for and the bounds only shortened keeps the signal's reason;
        # "bounds" is for a fleet held, or moved, by the bounds alone.
        if clamped != target and current in (clamped, target):
            reason = ScaleReason.BOUNDS
        return ScaleDecision(clamped, reason, recommended)

    def _window(self, now: float, window_s: float, current: int) -> list[int]:
        """The recommendations of the last ``window_s``. Where the window reaches back before the
        first reading, the fleet as found stands for that part: a burst must outlast the up window
        after a (re)start too, else a restarted loop buys replicas for a burst a cold start outlives."""
        recommendations = [r for t, r in self._history if t >= now - window_s]
        if now - window_s < self._first_at:  # type: ignore[operator]
            recommendations.append(current)
        return recommendations

    def _recommend(self, now: float, s: Signals, fleet: FleetState) -> tuple[int, ScaleReason]:
        c = self.config
        if c.payback is not None:
            self._read_spend(now, s, fleet)
        share = self._demand(s)  # in replicas' worth
        if c.project_trend and s.arrival_rps > 0 and s.arrival_trend > 0:
            share *= (s.arrival_rps + s.arrival_trend * fleet.cold_start_s) / s.arrival_rps
        if share > 0 or self._last_demand_at is None:
            self._last_demand_at = now
        needed = self._replicas_for(share)
        wanted = fleet.provisioned
        if needed > fleet.provisioned:
            wanted = self._replicas_for(share * (1 + c.scale_up_headroom))
            if c.payback is not None:
                wanted = max(1, min(wanted, fleet.provisioned + self._paying_additions(fleet, wanted - fleet.provisioned)))
        elif needed < fleet.provisioned:  # the largest smaller fleet still inside the band
            wanted = min(fleet.provisioned, max(needed, math.floor(share / c.scale_down_below) + 1))
        # The band weighs work, not dollars: a replica it would hold goes once its work is cheaper hosted.
        if c.payback is not None and wanted >= fleet.provisioned > 1 and fleet.ready == fleet.provisioned and not self._pays_to_keep(fleet):
            wanted = fleet.provisioned - 1
        reason = ScaleReason.QUEUE
        # A guard adds one replica at a time: while one starts, it is the remedy already in flight.
        guarding = fleet.ready and not fleet.starting and wanted <= fleet.provisioned
        if guarding and s.kv_cache_usage > c.max_kv_cache_usage:
            wanted, reason = fleet.provisioned + 1, ScaleReason.KV_CACHE
        elif guarding and c.ttft_p99_target_s and s.ttft_p99_s and s.ttft_p99_s > c.ttft_p99_target_s:
            wanted, reason = fleet.provisioned + 1, ScaleReason.TTFT
        if share == 0 and c.min_replicas == 0 and now - self._last_demand_at >= c.idle_to_zero_s:
            return 0, ScaleReason.IDLE
        return wanted, reason

    def _demand(self, s: Signals) -> float:
        c = self.config
        if c.capacity is not None:
            return c.capacity.replicas_for(s.prompt_tokens_per_s, s.output_tokens_per_s)
        return (s.running + s.waiting + s.spilled_rps * s.mean_service_s) / c.target_ongoing_per_replica

    def _read_spend(self, now: float, s: Signals, fleet: FleetState) -> None:
        """Record this tick's reading and keep those of the look-back: the paid life (cold start
        plus down window) a replica bought now must pay for."""
        c = self.config
        assert c.payback is not None and c.capacity is not None
        prompt, output = s.prompt_tokens_per_s - s.spilled_prompt_tokens_per_s, s.output_tokens_per_s - s.spilled_output_tokens_per_s
        self._readings.append(_Reading(
            at=now,
            spilled=c.capacity.replicas_for(s.spilled_prompt_tokens_per_s, s.spilled_output_tokens_per_s),
            spilled_usd_per_s=c.payback.hosted_usd_per_s(s.spilled_prompt_tokens_per_s, s.spilled_output_tokens_per_s),
            local=c.capacity.replicas_for(prompt, output), local_usd_per_s=c.payback.hosted_usd_per_s(prompt, output), ready=fleet.ready))
        while self._readings[0].at < now - (fleet.cold_start_s + c.down_window_s):
            self._readings.popleft()

    def _paying_additions(self, fleet: FleetState, most: int) -> int:
        """How many more replicas pay back their paid life (cold start + down window) from the
        spilled spend each would absorb over the down window once it serves: the spill held
        throughout the look-back (the least of its ticks'), taken in slices of the local work one
        ready replica carried throughout it (a whole replica's worth while none was ready), priced
        at the spill's mean dollars per replica's worth of work."""
        c = self.config
        assert c.payback is not None
        held = min(r.spilled for r in self._readings)
        if held <= 0 or c.down_window_s <= 0:
            return 0
        usd_per_work = sum(r.spilled_usd_per_s for r in self._readings) / sum(r.spilled for r in self._readings)
        per_replica = min((r.local / r.ready for r in self._readings if r.ready), default=1.0)
        paid_life_usd = c.payback.replica_usd_per_hour / 3600 * (fleet.cold_start_s + c.down_window_s)
        added, left = 0, held
        while added < most and left > 1e-9:
            slice_ = min(left, per_replica, 1.0)
            if usd_per_work * slice_ * c.down_window_s < paid_life_usd:
                break
            added, left = added + 1, left - slice_
        return added

    def _pays_to_keep(self, fleet: FleetState) -> bool:
        """Whether the last ready replica earns its keep: the hosted price of the local work the
        others could not take without it (each takes a replica's worth, the config's capacity),
        averaged over the look-back's ticks at this fleet size (this tick's among them), is at
        least what the replica costs from now on."""
        c = self.config
        assert c.payback is not None
        handed_back = [r.local_usd_per_s * max(0.0, r.local - (fleet.ready - 1)) / r.local if r.local > 0 else 0.0
                       for r in self._readings if r.ready == fleet.ready]
        return sum(handed_back) / len(handed_back) >= c.payback.replica_usd_per_hour / 3600

    def _replicas_for(self, share: float) -> int:
        """Replicas for ``share`` replicas' worth of demand: each whole replica and the rest when
        it is at least ``min_marginal_utilisation`` of a replica (any rest for the first replica:
        it is what takes traffic local)."""
        whole = math.floor(share + 1e-9)
        rest = share - whole
        worth = rest > 1e-9 and (whole == 0 or rest >= self.config.min_marginal_utilisation)
        return whole + int(worth)

    def _clamp(self, target: int) -> int:
        return max(self.config.min_replicas, min(self.config.max_replicas, target))
