"""Fleet policies the simulator compares: spillover's own and the ways peers size a fleet.

* ``spillover``: :class:`autoscaler.policy.ScalingPolicy` with spill-over on.
* ``static``: a fixed fleet, spill-over on or off (the bench searches its size).
* ``ray_serve``: Ray Serve's default autoscaling policy (``replica_queue_length_autoscaling_policy``,
  Ray 2.x): ongoing requests (running and queued) averaged over ``look_back_period_s`` (30 s),
  desired = ceil(average / ``target_ongoing_requests``); a decision acts only after the desired
  count has stayed above (below) the current one for ``upscale_delay_s`` (30 s)
  (``downscale_delay_s``, 600 s) of consecutive decisions, and then moves to the latest desired
  count. Its default ``target_ongoing_requests`` is 2; requests queue, nothing spills.
* ``keda_queue``: production-stack's KEDA trigger, ``vllm:num_requests_waiting`` with an average
  value per replica (default 5), polled every 30 s, through the HPA: desired = ceil(waiting /
  threshold), a 10% tolerance, scale-up at most max(double, +4) per step, and the largest
  desired count of the last 300 s when scaling down.
* ``all_api``: no replicas; everything goes to the hosted API.
"""

from __future__ import annotations

import math
import statistics
from collections import deque

from autoscaler.policy import FleetState, PolicyConfig, ScalingPolicy, Signals
from autoscaler.simulator import FleetPolicy

__all__ = ["AllApi", "KedaQueue", "RayServe", "SpilloverFleet", "StaticFleet", "POLICIES"]


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
    name = "static"

    def __init__(self, replicas: int, *, spill: bool = False) -> None:
        self.replicas, self.spill = replicas, spill
        self.name = "static_spill" if spill else "static"

    def initial(self) -> int:
        return self.replicas

    def target(self, now: float, signals: Signals, fleet: FleetState) -> int:
        return self.replicas


class RayServe(FleetPolicy):
    name = "ray_serve"
    look_back_s, upscale_delay_s, downscale_delay_s = 30.0, 30.0, 600.0
    DEFAULT_TARGET = 2.0

    def __init__(self, max_replicas: int, target_ongoing_requests: float = DEFAULT_TARGET, min_replicas: int = 1) -> None:
        self.min, self.max, self.target_ongoing_requests = min_replicas, max_replicas, target_ongoing_requests
        self._samples: deque[tuple[float, float]] = deque()
        self._since: float | None = None  # when the desired count first left the current one, this direction
        self._direction = 0

    def target(self, now: float, signals: Signals, fleet: FleetState) -> int:
        self._samples.append((now, signals.running + signals.waiting))
        while self._samples[0][0] < now - self.look_back_s:
            self._samples.popleft()
        average = statistics.fmean(v for _, v in self._samples)
        desired = max(self.min, min(self.max, math.ceil(average / self.target_ongoing_requests)))
        current = fleet.provisioned
        direction = (desired > current) - (desired < current)
        if direction != self._direction:
            self._direction, self._since = direction, now
        if direction == 0:
            return current
        delay = self.upscale_delay_s if direction > 0 else self.downscale_delay_s
        if now - self._since >= delay:  # type: ignore[operator]
            self._since = now
            return desired
        return current


class KedaQueue(FleetPolicy):
    name = "keda_queue"
    poll_s, down_window_s, tolerance = 30.0, 300.0, 0.1
    DEFAULT_THRESHOLD = 5.0

    def __init__(self, max_replicas: int, average_waiting: float = DEFAULT_THRESHOLD, min_replicas: int = 1) -> None:
        self.min, self.max, self.average_waiting = min_replicas, max_replicas, average_waiting
        self._history: deque[tuple[float, int]] = deque()
        self._last_poll = -math.inf
        self._last = min_replicas

    def target(self, now: float, signals: Signals, fleet: FleetState) -> int:
        if now - self._last_poll < self.poll_s:  # KEDA reads its trigger once per polling interval
            return self._last
        self._last_poll = now
        current = fleet.provisioned
        desired = math.ceil(signals.waiting / self.average_waiting)
        if current and abs(signals.waiting / (self.average_waiting * current) - 1) <= self.tolerance:
            desired = current
        desired = max(self.min, min(self.max, desired, max(2 * current, current + 4)))
        self._history.append((now, desired))
        while self._history[0][0] < now - self.down_window_s:
            self._history.popleft()
        if desired >= current:
            self._last = desired
        else:
            self._last = min(current, max(d for _, d in self._history))
        return self._last


class AllApi(FleetPolicy):
    name = "all_api"
    spill = True

    def initial(self) -> int:
        return 0

    def target(self, now: float, signals: Signals, fleet: FleetState) -> int:
        return 0


POLICIES = ("spillover", "static_peak", "static_spill", "ray_serve", "keda_queue", "all_api")
