"""Where a request was served and why: the names the decision, the ledger, metrics and the
autoscaler share.

The spill-over decision (:mod:`fallback.decision`) produces them; the ledger, the access log,
``spillover_requests_total{reason}`` and the ``x-spillover-reason`` header carry them verbatim;
the autoscaler reads them back to tell demand from spills more replicas would not have kept.
"""

from __future__ import annotations

import enum

__all__ = ["CACHE", "LOCAL", "NOT_LOCAL_DEMAND", "Destination", "RoutePin", "SpillReason"]

#: The destination name of the local engines; hosted destinations are provider names.
LOCAL = "local"
#: The destination of a request the cache answered.
CACHE = "cache"
Destination = str


class SpillReason(enum.StrEnum):
    LOCAL_OK = "local_ok"
    PREDICTED_WAIT = "predicted_wait"
    #: Even an idle replica would miss the target on this prompt's prefill alone: more local
    #: replicas would not help, so the autoscaler does not count it as demand.
    LONG_PROMPT = "long_prompt"
    NO_READY_REPLICA = "no_ready_replica"
    COLD_START = "cold_start"
    #: The local replicas are finishing their work before a scale to zero.
    DRAINING = "draining"
    UNHEALTHY = "unhealthy"
    PINNED = "pinned"
    FAILOVER_ERROR = "failover_error"
    BREAKER_OPEN = "breaker_open"
    HOSTED_FORBIDDEN = "hosted_forbidden"


#: Spills that more local replicas would not have kept: the autoscaler leaves them out of demand.
NOT_LOCAL_DEMAND = frozenset({SpillReason.LONG_PROMPT, SpillReason.PINNED, SpillReason.HOSTED_FORBIDDEN})


class RoutePin(enum.StrEnum):
    """``X-Spillover-Route``: let the decision choose, or pin one side."""

    AUTO = "auto"
    LOCAL_ONLY = "local-only"
    HOSTED_ONLY = "hosted-only"
