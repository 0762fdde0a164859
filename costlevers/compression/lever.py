"""Compression as the ingress runs it: each compressing route's policy and the stage.

Built from the routes' ``compression`` blocks and the prompt-token recount (the route's local
model's tokenizer, chars/4 for a route without one) that reports what was reached.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from costlevers.compression.config import CompressionConfig
from costlevers.compression.metrics import CompressionMetrics
from costlevers.compression.stage import CompressPolicy, CompressStage, Recount

__all__ = ["compress_stage"]


def compress_stage(routes: Mapping[str, CompressionConfig], *, recount: Recount, registry: CollectorRegistry | None = None) -> CompressStage:
    return CompressStage({name: CompressPolicy(config) for name, config in routes.items()}, recount=recount,
                         metrics=CompressionMetrics(registry) if registry is not None else None)
