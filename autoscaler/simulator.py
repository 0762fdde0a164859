"""A discrete-event model of a replica fleet, driven by the live system's own decisions.

A trace's requests arrive at their times. Each goes where :func:`fallback.decision.decide` (the
function the ingress runs, imported, never copied) sends it, on an :class:`EngineState` built
from the simulated replicas; local requests join the ready replica with the fewest prompt tokens
not yet started (then in flight), as the live request router (serving.token_router) sends them. Every
``tick_s`` a fleet policy (``autoscaler.baselines``) reads the signals the live loop reads and
sets the target; new replicas serve after the preset's cold start, removed ones drain first.
Replicas are paid for from the moment they are asked for until they have drained. When a replica
becomes ready, requests queued on the others and not yet started move to it, oldest first, while
that evens the queues: Serve's router holds requests until a replica takes them, so a new replica
drains the backlog rather than only the traffic after it.

A request no replica can hold (past the preset's context limit or KV cache) goes hosted under every
policy. The hosted side (``autoscaler.hosted``) has a first-token-time distribution and a rate
limit, so it misses targets too. Prompt tokens a trace marks as a shared prefix are not prefilled
again locally (vLLM's prefix cache; assumed to hit) and are billed at the cached-input price hosted.

Each replica steps the way vLLM's scheduler does: every step decodes one token for each running
sequence and spends the rest of its token budget on prefill, first come first served, admitting
a request only while sequences and KV cache allow; a step lasts :meth:`ReplicaPreset.step_s`.
"""

from __future__ import annotations

import heapq
import itertools
import math
import statistics
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from autoscaler.hosted import HostedModel, HostedSide
from autoscaler.policy import FleetState, Signals
from autoscaler.presets import ReplicaPreset
from autoscaler.trace import Arrival
from contracts.engine_state import EngineState
from contracts.spill import LOCAL, NOT_LOCAL_DEMAND
from fallback.decision import DispatchRequest, HostedTarget, Route, decide, queued_work_s
from fallback.start_meter import StartMeter

__all__ = ["FleetPolicy", "HostedModel", "ROUTERS", "SimResult", "Simulation", "simulate"]

MODEL = "local"

#: How a local request picks its ready replica (the lowest key wins). ``unstarted_tokens`` is the
#: live router (serving.token_router); the others are what it replaced, kept to measure it against:
#: prompt tokens in flight, and requests in flight (Serve's default counts requests, though it
#: compares two random replicas rather than all).
ROUTERS: dict[str, Callable[[_Replica], tuple[int, ...]]] = {
    "unstarted_tokens": lambda r: (r.unstarted_tokens, r.in_flight_tokens),
    "tokens_in_flight": lambda r: (r.in_flight_tokens,),
    "requests": lambda r: (r.load,),
}


class FleetPolicy:
    """What a baseline is: whether it spills, and the target it sets on each tick."""

    name = "policy"
    spill = False

    def target(self, now: float, signals: Signals, fleet: FleetState) -> int:
        raise NotImplementedError

    def initial(self) -> int:
        return 1


@dataclass
class _Request:
    arrival: Arrival
    prefill_left: int
    first_token_s: float | None = None
    done_s: float | None = None
    spilled: bool = False
    hosted_usd: float = 0.0


@dataclass(frozen=True)
class _Seen:
    """An arrival as the signals count it: when, whether its spill was local demand, and the
    token work a replica could have taken (0 for what no replica can hold)."""

    at: float
    local_demand: bool
    prompt_tokens: int
    output_tokens: int


class _Replica:
    def __init__(self, preset: ReplicaPreset, asked_at: float, ready_at: float) -> None:
        self.preset = preset
        self.asked_at, self.ready_at = asked_at, ready_at
        self.stopped_at: float | None = None
        self.draining = False
        self.waiting: deque[_Request] = deque()
        self.running: list[tuple[int, int, _Request]] = []  # (finish step, tiebreak, request)
        self.admitted: set[int] = set()
        self.kv_used = 0
        #: Prompt tokens of the requests sent here and not started, and not finished: what the
        #: router ranks by, in that order.
        self.unstarted_tokens = 0
        self.in_flight_tokens = 0
        self.steps = 0
        self.stepping = False

    @property
    def load(self) -> int:
        return len(self.waiting) + len(self.running)

    @property
    def scheduled(self) -> int:
        """Sequences the engine has taken on (vLLM's "running": decoding or part-way through prefill)."""
        return len(self.running) + len(self.admitted)

    @property
    def unscheduled(self) -> int:
        """vLLM's "waiting": not yet given a single step."""
        return len(self.waiting) - len(self.admitted)

    def step(self, now: float, finished: Callable[[_Request], None]) -> tuple[float, list[int]]:
        """Run one engine step starting at ``now``; returns when it ends and the prompt lengths of
        the requests that sent their first token in it."""
        p = self.preset
        budget = p.max_batched_tokens - len(self.running)
        prefilled: list[_Request] = []
        decoding, prefill_tokens, admitted = len(self.running), 0, 0
        while self.waiting and budget > 0:
            head = self.waiting[0]
            if id(head) not in self.admitted:
                need = head.arrival.prompt_tokens + head.arrival.output_tokens
                if len(self.running) + len(self.admitted) >= p.max_num_seqs or self.kv_used + need > p.kv_capacity_tokens:
                    break
                self.admitted.add(id(head))
                self.kv_used += need
                admitted += 1
            chunk = min(head.prefill_left, budget)
            head.prefill_left -= chunk
            budget -= chunk
            prefill_tokens += chunk
            if head.prefill_left:
                break
            self.waiting.popleft()
            self.admitted.discard(id(head))
            prefilled.append(head)
        end = now + p.step_s(prefill_tokens, decoding, admitted)
        self.steps += 1
        for request in prefilled:
            request.first_token_s = end
            self.unstarted_tokens -= request.arrival.prompt_tokens
            heapq.heappush(self.running, (self.steps + request.arrival.output_tokens - 1, id(request), request))
        while self.running and self.running[0][0] <= self.steps:
            _, _, request = heapq.heappop(self.running)
            request.done_s = end
            self.kv_used -= request.arrival.prompt_tokens + request.arrival.output_tokens
            self.in_flight_tokens -= request.arrival.prompt_tokens
            finished(request)
        return end, [r.arrival.prompt_tokens for r in prefilled]


@dataclass
class SimResult:
    policy: str
    slo_attainment: float
    ttft_p50_s: float
    ttft_p99_s: float
    gpu_hours: float
    api_usd: float
    gpu_usd: float
    spilled_share: float
    #: Per minute: (minute, arrivals, replicas paid for, spilled).
    timeline: list[tuple[int, int, int, int]] = field(default_factory=list)
    #: Per request, in arrival order: (TTFT s or None for no first token, went hosted, hosted $).
    outcomes: list[tuple[float | None, bool, float]] = field(default_factory=list)
    #: Each replica's paid span: (asked for at, stopped at), seconds.
    paid_spans: list[tuple[float, float]] = field(default_factory=list)

    @property
    def total_usd(self) -> float:
        return self.gpu_usd + self.api_usd

    def figures(self) -> dict[str, float]:
        return {"slo_attainment": round(self.slo_attainment, 4), "ttft_p50_s": round(self.ttft_p50_s, 3),
                "ttft_p99_s": round(self.ttft_p99_s, 3), "gpu_hours": round(self.gpu_hours, 2),
                "api_usd": round(self.api_usd, 2), "total_usd": round(self.total_usd, 2),
                "spilled_share": round(self.spilled_share, 4)}


class Simulation:
    def __init__(self, arrivals: Sequence[Arrival], preset: ReplicaPreset, policy: FleetPolicy, *, hosted: HostedModel,
                 ttft_target_s: float, gpu_usd_per_hour: float, tick_s: float = 10.0, router: str = "unstarted_tokens",
                 measure_from_s: float = 0.0) -> None:
        """``measure_from_s``: the requests before it only warm the fleet up (each policy reaches
        its own steady state); what they and the replicas cost before it is not counted."""
        if router not in ROUTERS:
            raise ValueError(f"unknown router {router!r}; choose from {', '.join(ROUTERS)}")
        self.router = ROUTERS[router]
        self.arrivals, self.preset, self.policy, self.hosted = arrivals, preset, policy, hosted
        self.target_s, self.gpu_usd_per_hour, self.tick_s = ttft_target_s, gpu_usd_per_hour, tick_s
        self.measure_from_s = measure_from_s
        hosted_targets = (HostedTarget("hosted", "hosted"),) if policy.spill else ()
        self.route = Route(MODEL, MODEL, ttft_target_s, hosted=hosted_targets, prior_prefill_tokens_per_s=preset.prefill_tokens_per_s)
        self.replicas: list[_Replica] = []
        self.pending: deque[_Request] = deque()  # local requests held while no replica is ready
        self.requests: list[_Request] = []
        self._events: list[tuple[float, int, str, object]] = []
        self._seq = itertools.count()
        # The arrivals of the last two minutes (rates over the last, the trend against the one before).
        self._recent: deque[_Seen] = deque()
        self._service: deque[float] = deque(maxlen=200)
        self._recent_ttft: deque[tuple[float, float]] = deque()
        # The ingress's view of the queue in front of the engines, on simulated time.
        self._now = 0.0
        self._meter = StartMeter(clock=lambda: self._now)
        self._hosted = HostedSide(hosted)

    def run(self, progress: Callable[[float], None] | None = None) -> SimResult:
        for _ in range(self.policy.initial()):
            self._add_replica(0.0, ready_at=0.0)
        for i, arrival in enumerate(self.arrivals):
            self._push(arrival.at_s, "arrival", i)
        end_s = self.arrivals[-1].at_s if self.arrivals else 0.0
        self._push(0.0, "tick", None)
        while self._events:
            now, _, kind, payload = heapq.heappop(self._events)
            self._now = now
            if kind == "arrival":
                self._arrive(now, self.arrivals[payload])  # type: ignore[index]
            elif kind == "step":
                self._step(now, payload)  # type: ignore[arg-type]
            elif kind == "ready":
                self._drain_pending(now)
                self._rebalance(now, payload)  # type: ignore[arg-type]
            elif kind == "started":
                for _ in payload:  # type: ignore[attr-defined]
                    self._meter.leave(started=True)
            elif kind == "tick" and now <= end_s:
                self._tick(now)
                self._push(now + self.tick_s, "tick", None)
                if progress is not None:
                    progress(now / max(end_s, 1e-9))
        last = max([end_s, *(r.done_s or 0.0 for r in self.requests)])
        for replica in self.replicas:
            replica.stopped_at = replica.stopped_at or last
        return self._result(last)

    # -- events ---------------------------------------------------------------------------------

    def _push(self, at: float, kind: str, payload: object) -> None:
        heapq.heappush(self._events, (at, next(self._seq), kind, payload))

    def _arrive(self, now: float, arrival: Arrival) -> None:
        request = _Request(arrival, prefill_left=arrival.prompt_tokens - arrival.shared_prefix_tokens)
        self.requests.append(request)
        asked, state = DispatchRequest(arrival.prompt_tokens, arrival.output_tokens), self._engine_state(now)
        decision = decide(asked, state, self.route)
        spilled = decision.destination not in (LOCAL, None)
        local_demand = spilled and decision.reason not in NOT_LOCAL_DEMAND
        fits = self.preset.fits(arrival.prompt_tokens, arrival.output_tokens)
        if not fits:
            spilled, local_demand = True, False
        self._recent.append(_Seen(now, local_demand, arrival.prompt_tokens if fits else 0, arrival.output_tokens if fits else 0))
        if spilled:
            request.spilled = True
            request.first_token_s, request.hosted_usd = self._hosted.call(
                now, arrival.prompt_tokens, arrival.output_tokens, arrival.shared_prefix_tokens)
            request.done_s = request.first_token_s
            return
        self._meter.enter(queued_work_s(asked, state, self.route))
        ready = self._ready(now)
        if not ready:
            self.pending.append(request)
            return
        self._enqueue(now, min(ready, key=self.router), request)

    def _enqueue(self, now: float, replica: _Replica, request: _Request) -> None:
        replica.waiting.append(request)
        replica.in_flight_tokens += request.arrival.prompt_tokens
        replica.unstarted_tokens += request.arrival.prompt_tokens
        if not replica.stepping:
            replica.stepping = True
            self._push(now, "step", replica)

    def _step(self, now: float, replica: _Replica) -> None:
        if not replica.load:
            replica.stepping = False
            if replica.draining and replica.stopped_at is None:
                replica.stopped_at = now
            return
        end, started = replica.step(now, self._finished)
        self._push(end, "step", replica)
        if started:
            self._push(end, "started", started)

    def _finished(self, request: _Request) -> None:
        assert request.done_s is not None and request.first_token_s is not None
        self._service.append(request.done_s - request.arrival.at_s)
        self._recent_ttft.append((request.done_s, request.first_token_s - request.arrival.at_s))

    def _drain_pending(self, now: float) -> None:
        ready = self._ready(now)
        while ready and self.pending:
            self._enqueue(now, min(ready, key=self.router), self.pending.popleft())

    def _rebalance(self, now: float, fresh: _Replica) -> None:
        """Move queued, unstarted requests to a replica that just became ready, oldest first,
        from whichever replica has the most unstarted prompt tokens, while the move evens them."""
        if fresh.draining or fresh.stopped_at is not None:
            return
        others = [r for r in self._ready(now) if r is not fresh]
        while others:
            donor = max(others, key=lambda r: r.unstarted_tokens)
            index = next((i for i, q in enumerate(donor.waiting) if id(q) not in donor.admitted), None)
            if index is None:
                return
            request = donor.waiting[index]
            tokens = request.arrival.prompt_tokens
            if donor.unstarted_tokens - fresh.unstarted_tokens <= tokens:
                return
            del donor.waiting[index]
            donor.unstarted_tokens -= tokens
            donor.in_flight_tokens -= tokens
            self._enqueue(now, fresh, request)

    def _tick(self, now: float) -> None:
        while self._recent and self._recent[0].at < now - 120:
            self._recent.popleft()
        while self._recent_ttft and self._recent_ttft[0][0] < now - 60:
            self._recent_ttft.popleft()
        target = self.policy.target(now, self._signals(now), self._fleet(now))
        alive = [r for r in self.replicas if not r.draining and r.stopped_at is None]
        if target > len(alive):
            for _ in range(target - len(alive)):
                self._add_replica(now, ready_at=now + self.preset.cold_start_s)
        elif target < len(alive):
            # Starting replicas go first (nothing to drain), then the least loaded ready ones.
            for replica in sorted(alive, key=lambda r: (r.ready_at <= now, r.load))[: len(alive) - target]:
                replica.draining = True
                if not replica.load:
                    replica.stopped_at = now

    def _add_replica(self, now: float, ready_at: float) -> None:
        replica = _Replica(self.preset, now, ready_at)
        self.replicas.append(replica)
        self._push(ready_at, "ready", replica)

    # -- what the policy and the decision see -----------------------------------------------------

    def _ready(self, now: float) -> list[_Replica]:
        return [r for r in self.replicas if r.ready_at <= now and not r.draining and r.stopped_at is None]

    def _engine_state(self, now: float) -> EngineState:
        ready = self._ready(now)
        starting = sum(1 for r in self.replicas if r.ready_at > now and not r.draining and r.stopped_at is None)
        if not ready:
            return EngineState(model=MODEL, replicas_starting=starting)
        p = self.preset
        return EngineState(
            model=MODEL,
            replicas_ready=len(ready),
            replicas_starting=starting,
            running=sum(r.scheduled for r in ready),
            waiting=sum(r.unscheduled for r in ready),
            kv_cache_usage=statistics.fmean(r.kv_used / p.kv_capacity_tokens for r in ready),
            prefill_tokens_per_s=p.prefill_tokens_per_s * len(ready),
            decode_tokens_per_s=sum(p.decode_tokens_per_s(len(r.running)) for r in ready),
            local_unstarted=self._meter.unstarted,
            local_backlog_s=self._meter.backlog_s(),
            local_oldest_wait_s=self._meter.oldest_wait_s(),
            local_starts_per_s=self._meter.starts_per_busy_s(),
        )

    def _signals(self, now: float) -> Signals:
        """What Prometheus would give the live loop: rates over the last minute, the trend as
        that minute's arrival rate against the one before it (as ``autoscaler.prometheus``)."""
        ready = self._ready(now)
        minute = [s for s in self._recent if s.at >= now - 60]
        rate = len(minute) / 60
        earlier = (len(self._recent) - len(minute)) / 60
        ttfts = sorted(t for _, t in self._recent_ttft)
        return Signals(
            running=sum(r.scheduled for r in ready),
            waiting=sum(r.unscheduled for r in ready) + len(self.pending),
            kv_cache_usage=statistics.fmean(r.kv_used / self.preset.kv_capacity_tokens for r in ready) if ready else 0.0,
            ttft_p99_s=ttfts[int(0.99 * (len(ttfts) - 1))] if ttfts else None,
            arrival_rps=rate,
            arrival_trend=(rate - earlier) / 60 if now >= 120 else 0.0,
            spilled_rps=sum(1 for s in minute if s.local_demand) / 60,
            mean_service_s=statistics.fmean(self._service) if self._service else self.preset.step_s(0, 1) * 64,
            prompt_tokens_per_s=sum(s.prompt_tokens for s in minute) / 60,
            output_tokens_per_s=sum(s.output_tokens for s in minute) / 60,
            spilled_prompt_tokens_per_s=sum(s.prompt_tokens for s in minute if s.local_demand) / 60,
            spilled_output_tokens_per_s=sum(s.output_tokens for s in minute if s.local_demand) / 60,
        )

    def _fleet(self, now: float) -> FleetState:
        live = [r for r in self.replicas if r.stopped_at is None]
        return FleetState(
            ready=sum(1 for r in live if r.ready_at <= now and not r.draining),
            starting=sum(1 for r in live if r.ready_at > now and not r.draining),
            draining=sum(1 for r in live if r.draining),
            cold_start_s=self.preset.cold_start_s,
        )

    def _result(self, last: float) -> SimResult:
        start = self.measure_from_s
        measured = [r for r in self.requests if r.arrival.at_s >= start]
        ttfts = sorted((r.first_token_s - r.arrival.at_s) if r.first_token_s is not None else math.inf for r in measured)
        within = sum(1 for t in ttfts if t <= self.target_s)
        spans = [(max(r.asked_at, start), max(r.stopped_at or last, start)) for r in self.replicas]
        gpu_hours = sum(b - a for a, b in spans) * self.preset.gpus_per_replica / 3600
        api_usd = sum(r.hosted_usd for r in measured)
        minutes = int(last // 60) + 1
        timeline = []
        for m in range(minutes):
            t0, t1 = m * 60, (m + 1) * 60
            arrivals = [r for r in self.requests if t0 <= r.arrival.at_s < t1]
            paid = sum(1 for r in self.replicas if r.asked_at < t1 and (r.stopped_at or last) >= t0)
            timeline.append((m, len(arrivals), paid, sum(1 for r in arrivals if r.spilled)))
        n = max(len(ttfts), 1)
        return SimResult(
            policy=self.policy.name,
            slo_attainment=within / n,
            ttft_p50_s=ttfts[len(ttfts) // 2] if ttfts else math.nan,
            ttft_p99_s=ttfts[int(0.99 * (len(ttfts) - 1))] if ttfts else math.nan,
            gpu_hours=gpu_hours,
            api_usd=api_usd,
            gpu_usd=gpu_hours * self.gpu_usd_per_hour,
            spilled_share=sum(1 for r in measured if r.spilled) / n,
            timeline=timeline,
            outcomes=[(None if r.first_token_s is None else r.first_token_s - r.arrival.at_s, r.spilled, r.hosted_usd)
                      for r in measured],
            paid_spans=[span for span in spans if span[1] > span[0]],
        )


def simulate(arrivals: Sequence[Arrival], preset: ReplicaPreset, policy: FleetPolicy, *,
             progress: Callable[[float], None] | None = None, **kwargs: float | str | HostedModel) -> SimResult:
    return Simulation(arrivals, preset, policy, **kwargs).run(progress)  # type: ignore[arg-type]
