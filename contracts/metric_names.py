"""Every metric name spillover exports, in one place; each subsystem declares its own series under these names (dashboards and alert rules read these).

Three families, each scraped from its own place (README, "Metrics"):

* ``spillover_*``: the platform's own, from each ingress replica's ``GET /metrics``.
* vLLM's engine metrics: under Ray Serve LLM they leave through Ray's metrics export as
  ``ray_vllm_*`` (``:`` becomes ``_``) every 10 s on each Ray node's metrics-export port;
  ``k8s/base/monitoring/vllm-names.rules.yaml`` gives back vLLM's own names
  (:data:`VLLM_RECORDED`).
* ``DCGM_FI_DEV_*``: GPU metrics read through NVML by the exporter (autoscaler issue).

Labels stay small: model, destination, reason, status, api, team, feature. Never a user id or a key.
"""

from __future__ import annotations

__all__ = [
    "REQUESTS_TOTAL",
    "REQUEST_DURATION",
    "TTFT",
    "INGRESS_OVERHEAD",
    "IN_FLIGHT",
    "COST_TOTAL",
    "TOKENS_TOTAL",
    "LOCAL_IDLE_COST_TOTAL",
    "CACHE_REQUESTS_TOTAL",
    "CACHE_HIT_RATIO",
    "CACHE_SHADOW_TOTAL",
    "CACHE_FALSE_HIT_ESTIMATE",
    "BUDGET_REMAINING",
    "ROUTE_DECISIONS_TOTAL",
    "ROUTE_ESCALATIONS_TOTAL",
    "ROUTE_COST_TOTAL",
    "ROUTE_STRONGEST_COST_TOTAL",
    "CACHE_STEERING_CHECKS_TOTAL",
    "CACHE_STEERING_THRESHOLD",
    "CACHE_STEERING_BOUND",
    "COMPRESS_REQUESTS_TOTAL",
    "COMPRESS_TOKENS_REMOVED_TOTAL",
    "COMPRESS_SECONDS",
    "BUDGET_SOFT_LIMIT",
    "ENGINE_GAUGES",
    "VLLM_RECORDED",
]

REQUESTS_TOTAL = "spillover_requests_total"
REQUEST_DURATION = "spillover_request_duration_seconds"
TTFT = "spillover_time_to_first_token_seconds"
INGRESS_OVERHEAD = "spillover_ingress_overhead_seconds"
IN_FLIGHT = "spillover_requests_in_flight"
#: Money and tokens per team, feature, model and destination (per user: the ledger, not labels).
COST_TOTAL = "spillover_cost_usd_total"
TOKENS_TOTAL = "spillover_tokens_total"
#: What local replicas cost while their engines had no work, per model (attributed cost: COST_TOTAL).
LOCAL_IDLE_COST_TOTAL = "spillover_local_idle_cost_usd_total"
#: Cache lookups by kind (exact, semantic) and result (hit, miss, bypass), and the hit ratio so far.
CACHE_REQUESTS_TOTAL = "spillover_cache_requests_total"
CACHE_HIT_RATIO = "spillover_cache_hit_ratio"
#: Shadow checks of semantic hits (the answer asked of the model again), agree or disagree,
#: and the false-hit estimate they give (its sample size: the checks' total).
CACHE_SHADOW_TOTAL = "spillover_cache_shadow_checks_total"
CACHE_FALSE_HIT_ESTIMATE = "spillover_cache_semantic_false_hit_estimate"
#: A steered route's semantic cache (costlevers.cache.steering): its checks, the threshold in
#: force and the false-hit bound there.
CACHE_STEERING_CHECKS_TOTAL = "spillover_cache_semantic_checks_total"
CACHE_STEERING_THRESHOLD = "spillover_cache_semantic_threshold"
CACHE_STEERING_BOUND = "spillover_cache_semantic_false_hit_bound"
#: Routing: the candidate each routed request went to and why (router_cheap, router_strong,
#: cascade_accepted, escalated, pinned, router_unavailable), and each cascade escalation with the
#: check that failed the cheaper answer.
ROUTE_DECISIONS_TOTAL = "spillover_route_decisions_total"
ROUTE_ESCALATIONS_TOTAL = "spillover_route_escalations_total"
#: Per routed name, what its requests cost (abandoned cheap attempts included) and what the same
#: usage would have cost on its strongest candidate: 1 - one over the other is routing's saving.
#: Both at list prices, local work at the configured ceiling (its replica-time price comes later).
ROUTE_COST_TOTAL = "spillover_route_cost_usd_total"
ROUTE_STRONGEST_COST_TOTAL = "spillover_route_strongest_cost_usd_total"
#: Compression: requests by route and outcome (compressed, floor, untouched, opt_out, error), the
#: prompt tokens it removed, and the time it took.
COMPRESS_REQUESTS_TOTAL = "spillover_compress_requests_total"
COMPRESS_TOKENS_REMOVED_TOTAL = "spillover_compress_tokens_removed_total"
COMPRESS_SECONDS = "spillover_compress_seconds"
#: Per team budget and UTC period: what is left, and 1 once 80% is spent (the soft limit).
BUDGET_REMAINING = "spillover_budget_remaining_usd"
BUDGET_SOFT_LIMIT = "spillover_budget_soft_limit"
#: Engine state as the spill-over decision sees it (fresh to ~1 s), per model.
ENGINE_GAUGES: dict[str, tuple[str, str]] = {
    "replicas_ready": ("spillover_engine_replicas_ready", "Engine replicas ready."),
    "replicas_starting": ("spillover_engine_replicas_starting", "Engine replicas starting."),
    "replicas_unhealthy": ("spillover_engine_replicas_unhealthy", "Engine replicas stalled with work waiting."),
    "replicas_draining": ("spillover_engine_replicas_draining", "Engine replicas finishing their work before a scale to zero."),
    "running": ("spillover_engine_requests_running", "Requests in the engines' running batch."),
    "waiting": ("spillover_engine_requests_waiting", "Requests queued in the engines."),
    "kv_cache_usage": ("spillover_engine_kv_cache_usage_ratio", "Mean KV-cache use, 0..1."),
    "prefill_tokens_per_s": ("spillover_engine_prefill_tokens_per_second", "Measured prefill rate."),
    "decode_tokens_per_s": ("spillover_engine_decode_tokens_per_second", "Measured decode rate."),
}
#: vLLM's own names, recorded from Ray's ``ray_vllm_*`` export by the recording rules.
VLLM_RECORDED: dict[str, str] = {
    "vllm:num_requests_running": "ray_vllm_num_requests_running",
    "vllm:num_requests_waiting": "ray_vllm_num_requests_waiting",
    "vllm:kv_cache_usage_perc": "ray_vllm_kv_cache_usage_perc",
    "vllm:prompt_tokens_total": "ray_vllm_prompt_tokens_total",
    "vllm:generation_tokens_total": "ray_vllm_generation_tokens_total",
    "vllm:request_success_total": "ray_vllm_request_success_total",
    "vllm:time_to_first_token_seconds_bucket": "ray_vllm_time_to_first_token_seconds_bucket",
    "vllm:time_to_first_token_seconds_sum": "ray_vllm_time_to_first_token_seconds_sum",
    "vllm:time_to_first_token_seconds_count": "ray_vllm_time_to_first_token_seconds_count",
    "vllm:e2e_request_latency_seconds_bucket": "ray_vllm_e2e_request_latency_seconds_bucket",
    "vllm:e2e_request_latency_seconds_sum": "ray_vllm_e2e_request_latency_seconds_sum",
    "vllm:e2e_request_latency_seconds_count": "ray_vllm_e2e_request_latency_seconds_count",
}
