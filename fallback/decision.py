"""The spill-over decision: serve locally if the local engines answer in time, else spill.

Decided before dispatch, from engine state, never after an error. The same pure function runs
in the ingress and in the autoscaler's simulator, so what the simulator predicts is what the
platform does. Its reasons (:class:`SpillReason`) appear verbatim in the
``x-spillover-reason`` header, in ``spillover_requests_total{reason}`` and in the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.engine_state import EngineState
from contracts.spill import LOCAL, Destination, RoutePin, SpillReason

__all__ = [
    "Decision",
    "DispatchRequest",
    "HostedTarget",
    "Route",
    "alone_ttft_s",
    "decide",
    "keeping_misses",
    "local_last_resort",
    "predict_ttft_s",
    "queued_work_s",
]


@dataclass(frozen=True)
class HostedTarget:
    provider: str
    model: str
    ttft_target_s: float | None = None
    healthy: bool = True


@dataclass(frozen=True)
class Route:
    """A public model name: its local deployment and the hosted targets it may spill to."""

    name: str
    local_model: str | None
    ttft_target_s: float
    hosted: tuple[HostedTarget, ...] = ()
    allow_hosted: bool = True
    #: Prefill rate assumed before a replica has measured its own (tokens/s).
    prior_prefill_tokens_per_s: float = 300.0
    #: How long a kept local stream waits for its first chunk before failing over (``None``: the
    #: dispatcher's default).
    local_start_timeout_s: float | None = None


@dataclass(frozen=True)
class DispatchRequest:
    prompt_tokens: int
    max_tokens: int
    pin: RoutePin = RoutePin.AUTO


@dataclass(frozen=True)
class Decision:
    """Where to send the request, why, and the local wait it was judged on."""

    destination: Destination | None
    reason: SpillReason
    predicted_ttft_s: float | None = None
    #: Hosted targets to try in order if the destination fails before the first token.
    fallbacks: tuple[HostedTarget, ...] = field(default=())


def predict_ttft_s(request: DispatchRequest, state: EngineState, route: Route) -> float:
    """Predicted time to first token on the local engines, in seconds.

    Three waits add up. Prefill is first come, first served: the prompts queued ahead and then
    its own, at the measured prefill rate spread over ready replicas. The engines report only how
    many wait, so each counts at this request's length; the sender knows the work its own queued
    requests still hold (``local_backlog_s``), and the larger of the two stands. Requests already waiting mean the running batch is full: a slot frees
    each time a running request finishes, about ``decode rate / request length`` times a second,
    and this request needs the slots of everyone ahead plus its own. A full KV cache means
    preemption, so the running batch must drain first.

    The engines cannot see requests still queued in front of them (Serve's router holds them
    once a replica has ``max_ongoing_requests``). The sender can: with ``local_unstarted``
    requests not yet started and local requests starting at ``local_starts_per_s`` while any
    wait, the queue alone takes ``unstarted / rate`` before this prompt's own prefill. The larger
    of the two predictions stands.
    """
    replicas = max(state.replicas_ready, 1)
    rate = state.prefill_tokens_per_s or route.prior_prefill_tokens_per_s * replicas
    own_prefill = alone_ttft_s(request, state, route)
    wait = max(state.waiting * request.prompt_tokens / rate, state.local_backlog_s) + own_prefill
    if state.waiting > 0 and state.decode_tokens_per_s > 0:
        wait += (state.waiting + 1) * request.max_tokens / state.decode_tokens_per_s
    if state.kv_cache_usage >= 0.95 and state.decode_tokens_per_s > 0:
        wait += state.running * request.max_tokens / state.decode_tokens_per_s / replicas
    if state.local_unstarted and state.local_starts_per_s > 0:
        wait = max(wait, state.local_unstarted / state.local_starts_per_s + own_prefill)
    return wait


def alone_ttft_s(request: DispatchRequest, state: EngineState, route: Route) -> float:
    """The prompt's own prefill on one replica with nothing ahead of it."""
    replicas = max(state.replicas_ready, 1)
    rate = state.prefill_tokens_per_s or route.prior_prefill_tokens_per_s * replicas
    return request.prompt_tokens * replicas / rate


def queued_work_s(request: DispatchRequest, state: EngineState | None, route: Route) -> float:
    """The prefill time this request adds to the local queue: its prompt at the rate of all
    ready replicas together (what the sender's start meter holds for it)."""
    replicas = max(state.replicas_ready, 1) if state is not None else 1
    rate = (state.prefill_tokens_per_s if state is not None else 0.0) or route.prior_prefill_tokens_per_s * replicas
    return request.prompt_tokens / rate


def keeping_misses(predicted_s: float, state: EngineState, route: Route) -> bool:
    """Whether keeping the request local misses the target: its own first token, or that of the
    oldest request still waiting, which the engine prefills in the same step as this one."""
    return max(predicted_s, state.local_oldest_wait_s + predicted_s if state.local_unstarted else 0.0) > route.ttft_target_s


def decide(request: DispatchRequest, state: EngineState | None, route: Route) -> Decision:
    hosted = tuple(t for t in route.hosted if t.healthy) if route.allow_hosted else ()
    ready = state is not None and state.replicas_ready > 0 and route.local_model is not None

    if request.pin is RoutePin.HOSTED_ONLY:
        if not route.allow_hosted:
            return Decision(None, SpillReason.HOSTED_FORBIDDEN)
        return _spill(hosted, SpillReason.PINNED)
    if request.pin is RoutePin.LOCAL_ONLY:
        if ready:
            return Decision(LOCAL, SpillReason.PINNED)
        return Decision(None, SpillReason.NO_READY_REPLICA)

    if not ready:
        if state is not None and state.replicas_starting > 0:
            reason = SpillReason.COLD_START
        elif state is not None and state.replicas_draining > 0:
            reason = SpillReason.DRAINING
        elif state is not None and state.replicas_unhealthy > 0:
            reason = SpillReason.UNHEALTHY
        else:
            reason = SpillReason.NO_READY_REPLICA
        return _spill(hosted, reason)
    assert state is not None
    predicted = predict_ttft_s(request, state, route)
    if keeping_misses(predicted, state, route) and hosted:
        too_long = alone_ttft_s(request, state, route) > route.ttft_target_s
        return _spill(hosted, SpillReason.LONG_PROMPT if too_long else SpillReason.PREDICTED_WAIT, predicted)
    if keeping_misses(predicted, state, route) and route.allow_hosted and route.hosted:
        # It would have spilled, but every hosted target's breaker is open: local is the one way
        # left, and the reason says so (``local_ok`` would hide a known miss).
        return Decision(LOCAL, SpillReason.BREAKER_OPEN, predicted)
    return Decision(LOCAL, SpillReason.LOCAL_OK, predicted, fallbacks=hosted)


def local_last_resort(decision: Decision, request: DispatchRequest, state: EngineState | None, route: Route) -> bool:
    """Whether a request sent hosted may still be served locally when every hosted target fails
    before its first token (rate-limited, erroring): late beats lost. Live, with hosted 429s in
    the trace's bursts, 8% of spilled requests failed outright while a replica stood ready."""
    return (decision.destination not in (LOCAL, None) and request.pin is not RoutePin.HOSTED_ONLY
            and route.local_model is not None and state is not None and state.replicas_ready > 0)


def _spill(hosted: tuple[HostedTarget, ...], reason: SpillReason, predicted: float | None = None) -> Decision:
    if not hosted:
        return Decision(None, reason, predicted)
    return Decision(hosted[0].provider, reason, predicted, fallbacks=hosted[1:])
