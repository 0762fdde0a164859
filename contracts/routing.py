"""What the routing stage decided for a request, for the sinks that record it.

The routing stage (:mod:`costlevers.routing`) keeps a :class:`RouteChoice` in the request's
context; the ledger row, the response headers and the budget settle read it here, so none of
them imports the lever. Each abandoned cheap attempt is a context of its own (``attempts``):
it was paid for, so it has its own ledger row (status ``escalated``) and counts against budgets.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from contracts.context import RequestContext

__all__ = ["MODEL_HEADER", "AttemptOf", "RouteChoice", "RouteReason"]


#: Pins a routed name's model to one of its candidates (no routing); the cache keys on it too.
MODEL_HEADER = "x-spillover-model"


class RouteReason(enum.StrEnum):
    #: The router's score was under the route's threshold: the cheap candidate.
    ROUTER_CHEAP = "router_cheap"
    #: The score was at or over the threshold: the strong candidate, no cheap attempt.
    ROUTER_STRONG = "router_strong"
    #: The cascade's cheap answer passed every check.
    CASCADE_ACCEPTED = "cascade_accepted"
    #: A check rejected a cheaper answer (or the call failed): a stronger candidate serves.
    ESCALATED = "escalated"
    #: The client named the model (``X-Spillover-Model``): no routing.
    PINNED = "pinned"
    #: The router could not score (no embedding): the strongest candidate, to be safe.
    ROUTER_UNAVAILABLE = "router_unavailable"


@dataclass
class RouteChoice:
    #: The route the client asked for (``auto``) and the router that scored it.
    route: str
    router: str | None
    score: float | None
    #: The candidate that serves the request (the route dispatch sends it to).
    model: str
    reason: RouteReason
    #: The route's strongest candidate: what "everything to the strong model" would have used.
    strongest: str = ""
    #: Per abandoned attempt, the candidate and the check that failed it.
    escalations: list[tuple[str, str]] = field(default_factory=list)
    #: The abandoned attempts' own contexts (recorded as rows of their own).
    attempts: list[RequestContext] = field(default_factory=list)

    @property
    def tier(self) -> str:
        """``strong`` when the strongest candidate serves, else ``cheap`` (the metric's label)."""
        return "strong" if self.model == self.strongest else "cheap"

    def escalations_text(self) -> str:
        """``model:check,...``: the ledger column and the response header."""
        return ",".join(f"{model}:{check}" for model, check in self.escalations)


@dataclass(frozen=True)
class AttemptOf:
    """Marks a cascade attempt's context: the request it was made for (its ledger row's ``attempt_of``)."""

    request_id: str
