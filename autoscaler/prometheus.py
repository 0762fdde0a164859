"""Read a model's scaling signals from Prometheus's HTTP API (PromQL over spillover's series).

The series are the ingress's own (:mod:`serving.metrics`): engine state as the spill-over
decision sees it (fresh to about a second, so only the scrape interval adds lag; vLLM's
``ray_vllm_*`` series would add Ray's 10 s export on top), and the request counters and
histograms, which carry destination and reason, so spilled traffic counts as demand (less the
spills more replicas would not have kept: long prompts, pinned requests). Any
failed or empty query makes the whole read fail (``None``): the policy then holds.
"""

from __future__ import annotations

import logging
import math

import httpx

from autoscaler.policy import Signals
from contracts.metric_names import ENGINE_GAUGES, REQUEST_DURATION, REQUESTS_TOTAL, TOKENS_TOTAL, TTFT
from contracts.spill import NOT_LOCAL_DEMAND

__all__ = ["PrometheusSignals", "queries_for"]

logger = logging.getLogger(__name__)
#: Spill reasons that more local replicas would not have kept local (a PromQL alternation).
_NOT_DEMAND = "|".join(sorted(NOT_LOCAL_DEMAND))


def queries_for(model: str, window: str = "1m") -> dict[str, str]:
    """The PromQL behind each signal of ``model``."""
    m = f'model="{model}"'
    arrivals = f"sum(rate({REQUESTS_TOTAL}{{{m}}}[{window}]))"
    return {
        "running": f"sum({ENGINE_GAUGES['running'][0]}{{{m}}})",
        "waiting": f"sum({ENGINE_GAUGES['waiting'][0]}{{{m}}})",
        "kv_cache_usage": f"max({ENGINE_GAUGES['kv_cache_usage'][0]}{{{m}}})",
        "arrival_rps": arrivals,
        # requests/s per second: this window's rate against the one before it.
        "arrival_trend": f"({arrivals} - sum(rate({REQUESTS_TOTAL}{{{m}}}[{window}] offset {window}))) / 60",
        "spilled_rps": f'sum(rate({REQUESTS_TOTAL}{{{m},destination!~"local|none",reason!~"{_NOT_DEMAND}"}}[{window}])) or vector(0)',
        "mean_service_s": f"sum(rate({REQUEST_DURATION}_sum{{{m}}}[{window}])) / sum(rate({REQUEST_DURATION}_count{{{m}}}[{window}]))",
        "ttft_p99_s": f'histogram_quantile(0.99, sum by (le) (rate({TTFT}_bucket{{{m},destination="local"}}[{window}])))',
        # Token work of finished requests (the ledger's counter): all of it, and the part served hosted
        # (spills no replica would keep, such as long prompts, count here too: the counter has no reason).
        "prompt_tokens_per_s": f'sum(rate({TOKENS_TOTAL}{{{m},kind="prompt",destination!="cache"}}[{window}]))',
        "output_tokens_per_s": f'sum(rate({TOKENS_TOTAL}{{{m},kind="completion",destination!="cache"}}[{window}]))',
        "spilled_prompt_tokens_per_s": f'sum(rate({TOKENS_TOTAL}{{{m},kind="prompt",destination!~"local|none|cache"}}[{window}])) or vector(0)',
        "spilled_output_tokens_per_s": f'sum(rate({TOKENS_TOTAL}{{{m},kind="completion",destination!~"local|none|cache"}}[{window}])) or vector(0)',
    }


#: Signals that may be absent without failing the read (no traffic yet, nothing finished).
_OPTIONAL = {"arrival_rps": 0.0, "arrival_trend": 0.0, "spilled_rps": 0.0, "mean_service_s": 0.0, "ttft_p99_s": None,
             "prompt_tokens_per_s": 0.0, "output_tokens_per_s": 0.0, "spilled_prompt_tokens_per_s": 0.0, "spilled_output_tokens_per_s": 0.0}


class PrometheusSignals:
    def __init__(self, base_url: str, *, timeout_s: float = 5.0, window: str = "1m") -> None:
        self._client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)
        self._window = window

    def read(self, model: str) -> Signals | None:
        values: dict[str, float | None] = {}
        for name, query in queries_for(model, self._window).items():
            try:
                value = self._scalar(query)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                logger.warning("prometheus read failed for %s (%s): holding", name, type(exc).__name__)
                return None
            if value is None:
                if name not in _OPTIONAL:
                    logger.warning("prometheus has no %s for model %s yet: holding", name, model)
                    return None
                value = _OPTIONAL[name]
            values[name] = value
        return Signals(**values)  # type: ignore[arg-type]

    def _scalar(self, query: str) -> float | None:
        response = self._client.get("/api/v1/query", params={"query": query})
        response.raise_for_status()
        body = response.json()
        if body.get("status") != "success":
            raise ValueError(body.get("error", "query failed"))
        result = body["data"]["result"]
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value

    def close(self) -> None:
        self._client.close()
