"""Which experiment variant a request was assigned, for every stage and sink that records it.

The experiment stage puts an :class:`Assignment` in the request's context before any lever runs;
the ledger row carries it, so every figure of an experiment report is a query over ledger rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.context import Carried

__all__ = ["Assignment", "Finish"]


@dataclass(frozen=True)
class Assignment(Carried):
    """Carried into a cascade's attempts: their cost is the variant's."""

    experiment: str
    variant: str


@dataclass(frozen=True)
class Finish:
    """Why generation stopped (the first choice's ``finish_reason``): ``length`` is a truncated
    answer, a quality signal the experiment report counts."""

    reason: str
