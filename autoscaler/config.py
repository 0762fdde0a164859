"""The autoscaler's config sections: each model's policy knobs and the control loop's own."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["AutoscalerConfig", "AutoscalingConfig", "ReplicaConfig"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReplicaConfig(_Strict):
    min: Annotated[int, Field(ge=0)] = 1
    max: Annotated[int, Field(ge=1)] = 1
    initial: Annotated[int, Field(ge=0)] | None = Field(
        None, description="Replicas at deploy time; defaults to min (at least one)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> ReplicaConfig:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        if self.initial is not None and not self.min <= self.initial <= self.max:
            raise ValueError(f"initial ({self.initial}) must lie in [min, max] = [{self.min}, {self.max}]")
        return self

    @property
    def at_deploy(self) -> int:
        return self.initial if self.initial is not None else max(self.min, 1)


class AutoscalingConfig(_Strict):
    """The scaling policy's knobs for one model (autoscaler.policy.PolicyConfig); bounds come
    from ``replicas``."""

    target_ongoing_per_replica: Annotated[float, Field(gt=0)] = Field(8.0, description="Requests one replica holds at its best.")
    max_kv_cache_usage: Annotated[float, Field(gt=0, le=1)] = 0.9
    ttft_p99_target_s: Annotated[float, Field(gt=0)] | None = None
    up_window_s: Annotated[float, Field(ge=0)] = 0.0
    down_window_s: Annotated[float, Field(ge=0)] = 300.0
    idle_to_zero_s: Annotated[float, Field(ge=0)] = 600.0
    scale_up_headroom: Annotated[float, Field(ge=0)] = 0.3
    scale_down_below: Annotated[float, Field(gt=0, le=1)] = 0.5
    cold_start_s: Annotated[float, Field(ge=0)] = Field(60.0, description="Look-ahead for the arrival trend.")
    min_marginal_utilisation: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.0, description="A replica past the first only for demand filling this share of its target (the prices' break-even)."
    )
    replica_prefill_tokens_per_s: Annotated[float, Field(gt=0)] | None = Field(
        None, description="Set (with replica_decode_token_s): demand is token work against a replica's capacity, "
        "not ongoing requests (a preset's prefill_tokens_per_s).")
    replica_decode_token_s: Annotated[float, Field(gt=0)] | None = Field(None, description="Seconds one output token costs a replica.")
    target_utilisation: Annotated[float, Field(gt=0, le=1)] = Field(1.0, description="The busy share of a replica the work demand sizes for.")
    replica_usd_per_hour: Annotated[float, Field(gt=0)] | None = Field(
        None, description="Set (with the hosted prices and the capacity): a replica past the first must pay back its paid life "
        "(cold start + down window) from the spilled spend it would absorb.")
    hosted_input_usd_per_mtok: Annotated[float, Field(ge=0)] = 0.0
    hosted_output_usd_per_mtok: Annotated[float, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _capacity_whole(self) -> AutoscalingConfig:
        if (self.replica_prefill_tokens_per_s is None) != (self.replica_decode_token_s is None):
            raise ValueError("replica_prefill_tokens_per_s and replica_decode_token_s go together")
        if self.replica_usd_per_hour is not None and self.replica_prefill_tokens_per_s is None:
            raise ValueError("replica_usd_per_hour (payback) needs the replica's capacity (replica_prefill_tokens_per_s)")
        return self


class AutoscalerConfig(_Strict):
    """``spillover autoscale``: the one controller of the local models' replica counts."""

    prometheus_url: str = Field("http://127.0.0.1:9090", description="Prometheus that scrapes the ingress.")
    tick_s: Annotated[float, Field(gt=0)] = 15.0
    query_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    rate_window: str = Field("1m", description="PromQL range for rates; at least 4 scrape intervals.")
    dry_run: bool = Field(False, description="Decide and log, never scale.")
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = Field(9105, description="Its own /metrics; 0 turns it off.")
    rayservice: str | None = Field(
        None, description="In a cluster: the RayService whose serveConfigV2 gets the counts (autoscaler/rayservice.py); "
        "unset: Serve's controller directly.")
    rayservice_namespace: str | None = Field(None, description="The RayService's namespace; default: the autoscaler pod's own.")
