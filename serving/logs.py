"""JSON-lines logging for spillover's own loggers, with the request id on every line.

One INFO line per request (the access line, from :func:`access_log`); never a key, a prompt or
a completion. Ray's and vLLM's loggers keep their own configuration.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from contracts.context import RequestContext

__all__ = ["JsonFormatter", "configure_logging", "access_log"]

_OWN_LOGGERS = ("contracts", "access", "stores", "webio", "serving", "fallback", "autoscaler", "costbook", "costlevers", "spillover")
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
access_logger = logging.getLogger("spillover.access")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS})
        if record.exc_info and record.levelno >= logging.ERROR:
            line["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
        return json.dumps(line, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    """Send spillover's loggers to stderr as JSON lines (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in _OWN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
            logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False


def access_log(ctx: RequestContext) -> None:
    """The request's one INFO line: what, where, why, how long; no content, no key."""
    ttft = ctx.timings.ttft_s()
    total = ctx.timings.total_s()
    access_logger.info(
        "request finished",
        extra={
            "request_id": ctx.request_id,
            "api": ctx.api.value,
            "model": ctx.model,
            "key_id": ctx.principal.key_id,
            "team": ctx.principal.team,
            "destination": ctx.destination,
            "reason": ctx.spill_reason.value if ctx.spill_reason else None,
            "predicted_ttft_ms": None if ctx.predicted_ttft_s is None else round(ctx.predicted_ttft_s * 1000, 1),
            "status": ctx.status.value,
            "error": type(ctx.error).__name__ if ctx.error else None,
            "prompt_tokens": ctx.usage.prompt_tokens,
            "completion_tokens": ctx.usage.completion_tokens,
            "ttft_ms": None if ttft is None else round(ttft * 1000, 1),
            "total_ms": None if total is None else round(total * 1000, 1),
        },
    )
