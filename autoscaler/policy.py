"""The scaling policy: signals and fleet state in, target replicas and a reason out. Pure.

Queue depth leads: the requests a model holds (running + waiting), plus the traffic it spilled
(Little's law: spilled requests/s times their mean time in system), is the demand; a replica
takes ``target_ongoing_per_replica`` of it. The arrival trend is projected one cold start ahead,
because a replica asked for now serves only after its cold start. KV-cache use and TTFT p99 guard:
past their limits the policy asks for one more replica whatever the queue says. GPU utilisation
never scales up on its own: it reads 0% for a light kernel stream and pegs near 100% with one
batch, so it says little about headroom.

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

__all__ = ["FleetState", "PolicyConfig", "ScaleDecision", "ScaleReason", "ScalingPolicy", "Signals"]


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

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError("need 0 <= min_replicas <= max_replicas")
        if self.target_ongoing_per_replica <= 0:
            raise ValueError("target_ongoing_per_replica must be > 0")
        if not 0 < self.scale_down_below <= 1:
            raise ValueError("scale_down_below must be in (0, 1]")
        if not 0 <= self.min_marginal_utilisation < 1:
            raise ValueError("min_marginal_utilisation must be in [0, 1)")


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
        demand = s.running + s.waiting + s.spilled_rps * s.mean_service_s
        if s.arrival_rps > 0 and s.arrival_trend > 0:
            demand *= (s.arrival_rps + s.arrival_trend * fleet.cold_start_s) / s.arrival_rps
        if demand > 0 or self._last_demand_at is None:
            self._last_demand_at = now
        per_replica = c.target_ongoing_per_replica
        needed = self._replicas_for(demand)
        wanted = fleet.provisioned
        if needed > fleet.provisioned:
            wanted = self._replicas_for(demand * (1 + c.scale_up_headroom))
        elif needed < fleet.provisioned:  # the largest smaller fleet still inside the band
            wanted = min(fleet.provisioned, max(needed, math.floor(demand / (per_replica * c.scale_down_below)) + 1))
        reason = ScaleReason.QUEUE
        if fleet.ready and s.kv_cache_usage > c.max_kv_cache_usage and wanted <= fleet.provisioned:
            wanted, reason = fleet.provisioned + 1, ScaleReason.KV_CACHE
        elif fleet.ready and c.ttft_p99_target_s and s.ttft_p99_s and s.ttft_p99_s > c.ttft_p99_target_s and wanted <= fleet.provisioned:
            wanted, reason = fleet.provisioned + 1, ScaleReason.TTFT
        if demand == 0 and c.min_replicas == 0 and now - self._last_demand_at >= c.idle_to_zero_s:
            return 0, ScaleReason.IDLE
        return wanted, reason

    def _replicas_for(self, demand: float) -> int:
        """Replicas for ``demand`` ongoing requests: whole replicas' worth, plus one for the rest
        when it is worth a replica (any rest for the first replica: it is what takes traffic local)."""
        share = demand / self.config.target_ongoing_per_replica
        whole = math.floor(share + 1e-9)
        rest = share - whole
        worth = rest > 1e-9 and (whole == 0 or rest >= self.config.min_marginal_utilisation)
        return whole + int(worth)

    def _clamp(self, target: int) -> int:
        return max(self.config.min_replicas, min(self.config.max_replicas, target))
