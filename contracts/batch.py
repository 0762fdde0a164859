"""A batch line in the pipeline: which batch and line a request context stands for.

The batch worker (:mod:`costlevers.batch`) runs each line through the same stages as an
interactive request, after authentication, with this slot set: admission charges the line's
budget but no rate limit, dispatch keeps it local (``x-spillover-route: local-only``), and the
ledger row names the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BatchLine"]


@dataclass(frozen=True)
class BatchLine:
    batch_id: str
    line: int
    #: Answered by a hosted provider's batch API (priced at its batch price), not the pipeline.
    via_hosted_batch: bool = False
