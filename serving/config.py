"""The serving sections: the HTTP server, the ingress deployment, local models and embedding models."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autoscaler.config import AutoscalingConfig, ReplicaConfig

__all__ = ["ServerConfig", "IngressConfig", "ModelConfig", "EmbeddingModelConfig"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    host: str = Field("127.0.0.1", description="Address Serve's HTTP proxy binds.")
    port: Annotated[int, Field(ge=1, le=65535)] = Field(8000, description="HTTP port.")
    max_body_bytes: Annotated[int, Field(ge=1024)] = Field(
        4 * 1024 * 1024, description="Request bodies over this size get 413."
    )
    request_timeout_s: Annotated[float, Field(gt=0)] = Field(
        600.0, description="Serve's end-to-end request timeout; covers the longest stream."
    )


class IngressConfig(_Strict):
    num_replicas: Annotated[int, Field(ge=1)] = 1
    max_ongoing_requests: Annotated[int, Field(ge=1)] = Field(
        256, description="Concurrent requests per ingress replica (Serve's default is 5)."
    )
    num_cpus: Annotated[float, Field(ge=0)] = Field(
        0.1, description="Logical CPUs reserved for each ingress replica."
    )
    graceful_shutdown_timeout_s: Annotated[float, Field(gt=0)] = Field(
        120.0, description="How long a stopping replica waits for in-flight streams."
    )


class ModelConfig(_Strict):
    name: str = Field(description="Public model name clients send in `model`.")
    aliases: list[str] = Field(
        default_factory=list,
        description="Other names clients may send for this model (e.g. `gpt-4o-mini` for apps written for a hosted API); "
        "listed by /v1/models, and served, priced and logged as this model.",
    )
    source: str = Field(
        description="`builtin:<name>` (shipped in a package), a local folder, or a hub id "
        "(clusters only; the embedded default never downloads)."
    )
    accelerator: Literal["cpu", "gpu"] | str = Field(
        "cpu", description="`cpu`, `gpu`, or a Ray accelerator type such as `A100` or `H100`."
    )
    gpus_per_replica: Annotated[int, Field(ge=0)] = 0
    cpus_per_replica: Annotated[float, Field(gt=0)] = 1.0
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="`auto` picks from the hardware (see serving.hardware)."
    )
    max_model_len_tokens: Annotated[int, Field(ge=16)] = 2048
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Passed to vLLM's engine as they are."
    )
    replicas: ReplicaConfig = ReplicaConfig()
    autoscaling: AutoscalingConfig = AutoscalingConfig()
    max_ongoing_requests: Annotated[int, Field(ge=1)] = Field(
        64, description="Requests Serve sends one engine replica at once."
    )
    engine_env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment for the engine's processes."
    )
    stream_batching_interval_ms: Annotated[float, Field(ge=0)] | None = Field(
        None,
        description="How long Ray Serve LLM gathers stream chunks before sending them on; "
        "unset keeps Ray's default (50 ms). Shorter means lower TTFT for more messages.",
    )
    tool_call_parser: str | None = Field(
        None,
        description="vLLM tool-call parser for this model (e.g. `hermes`); without one the engine "
        "rejects every `tool_choice` but `none`.",
    )
    usd_per_replica_hour: Annotated[float, Field(ge=0)] | None = Field(
        None,
        description="What one replica costs an hour; default: its GPUs (or CPUs) at the price table's `local` prices.",
    )

    @model_validator(mode="after")
    def _gpu_count(self) -> ModelConfig:
        if self.accelerator != "cpu" and self.gpus_per_replica == 0:
            raise ValueError(f"accelerator {self.accelerator!r} needs gpus_per_replica >= 1")
        if self.accelerator == "cpu" and self.gpus_per_replica:
            raise ValueError("accelerator 'cpu' takes gpus_per_replica 0")
        return self


class EmbeddingModelConfig(_Strict):
    name: str = Field(description="Public model name for `POST /v1/embeddings`.")
    aliases: list[str] = Field(
        default_factory=list,
        description="Other names clients may send for this model (e.g. `text-embedding-3-small` for apps written for a hosted API); "
        "listed by /v1/models, and served, priced and logged as this model.",
    )
    source: str = Field(description="`builtin:<name>` (shipped in a package) or a local folder.")
    max_batch_size: Annotated[int, Field(ge=1)] = Field(
        32, description="Inputs embedded in one forward pass, across concurrent requests."
    )
    batch_wait_timeout_s: Annotated[float, Field(ge=0)] = Field(
        0.005, description="How long a batch waits to fill before it runs."
    )
    max_input_tokens: Annotated[int, Field(ge=1)] = Field(
        256, description="Inputs longer than this are refused (400), never silently cut."
    )
    num_replicas: Annotated[int, Field(ge=1)] = 1
    cpus_per_replica: Annotated[float, Field(gt=0)] = 0.5
