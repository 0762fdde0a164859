"""Fleet policies the simulator compares: spillover's own and the ways peers size a fleet.

* ``spillover``: :class:`autoscaler.policy.ScalingPolicy` with spill-over on.
* ``static_peak``: a fixed fleet, spill-over off (the smallest meeting the target is searched).
* ``ray_default``: Ray Serve's autoscaler with its defaults: ``target_ongoing_requests`` 2 per
  replica, 30 s upscale delay, 600 s downscale delay; requests queue, nothing spills.
* ``keda_queue``: production-stack's default KEDA trigger, ``vllm:num_requests_waiting`` with
  an average value of 5 per replica, polled every 30 s, the HPA's 300 s scale-down window.
* ``all_api``: no replicas; everything goes to the hosted API.
"""

from __future__ import annotations

import math
from collections import deque

from autoscaler.policy import FleetState, PolicyConfig, ScalingPolicy, Signals
from autoscaler.simulator import FleetPolicy

__all__ = ["AllApi", "KedaQueue", "RayDefault", "SpilloverFleet", "StaticFleet", "POLICIES"]


class SpilloverFleet(FleetPolicy):
    name = "spillover"
    spill = True

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config
        self.policy = ScalingPolicy(config)

    def initial(self) -> int:
        return max(self.config.min_replicas, 1)

    def target(self, now: float, signals: Signals, fleet: FleetState) -> int:
        return self.policy.decide(now, signals, fleet).target


class StaticFleet(FleetPolicy):
    name = "static_peak"

    def __init__(self, replicas: int, *, spill: bool = False) -> None:
        self.replicas, self.spill = replicas, spill

    def initial(self) -> int:
        return self.replicas

    def target(self, now: float, signals: Signals, fleet: FleetState) -> int:
        return self.replicas


class _Delayed(FleetPolicy):
    """A desired count acted on only after it has held for a delay: Ray's and the HPA's way."""

    up_delay_s = 0.0
    down_delay_s = 0.0

    def __init__(self, max_replicas: int, min_replicas: int = 1) -> None:
        self.min, self.max = min_replicas, max_replicas
        self._history: deque[tuple[float, int]] = deque()

    def desired(self, signals: Signals, fleet: FleetState) -> int:
        raise NotImplementedError

    def target(self, now: float, signals: Signals, fleet: FleetState) -> int:
        current = fleet.provisioned
        self._history.append((now, max(self.min, min(self.max, self.desired(signals, fleet)))))
        while self._history and self._history[0][0] < now - max(self.up_delay_s, self.down_delay_s):
            self._history.popleft()
        up = min(d for t, d in self._history if t >= now - self.up_delay_s)
        down = max(d for t, d in self._history if t >= now - self.down_delay_s)
        if up > current:
            return up
        if down < current:
            return down
        return current


class RayDefault(_Delayed):
    name = "ray_default"
    up_delay_s, down_delay_s = 30.0, 600.0
    target_ongoing_requests = 2.0

    def desired(self, signals: Signals, fleet: FleetState) -> int:
        return math.ceil((signals.running + signals.waiting) / self.target_ongoing_requests)


class KedaQueue(_Delayed):
    name = "keda_queue"
    up_delay_s, down_delay_s = 0.0, 300.0
    average_waiting = 5.0
    poll_s = 30.0

    def __init__(self, max_replicas: int, min_replicas: int = 1) -> None:
        super().__init__(max_replicas, min_replicas)
        self._last_poll = -math.inf
        self._last = min_replicas

    def desired(self, signals: Signals, fleet: FleetState) -> int:
        return math.ceil(signals.waiting / self.average_waiting)

    def target(self, now: float, signals: Signals, fleet: FleetState) -> int:
        if now - self._last_poll >= self.poll_s:  # KEDA reads its trigger once per polling interval
            self._last_poll = now
            self._last = super().target(now, signals, fleet)
        return self._last


class AllApi(FleetPolicy):
    name = "all_api"
    spill = True

    def initial(self) -> int:
        return 0

    def target(self, now: float, signals: Signals, fleet: FleetState) -> int:
        return 0


POLICIES = ("spillover", "static_peak", "ray_default", "keda_queue", "all_api")
