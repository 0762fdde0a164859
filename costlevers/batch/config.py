"""The ``batch`` section: where uploaded files live, their limits, and when a line may run."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BatchConfig", "HostedBatchConfig"]


class HostedBatchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(description="A `providers` entry whose API also takes batches: kind openai (OpenAI's files and batches), "
                          "kind anthropic (Message Batches; chat lines only: other batches wait for local capacity).")
    handoff_margin_s: Annotated[float, Field(ge=0)] = Field(
        4 * 3600.0, description="Hand the rest over once local work is predicted to end later than this before the window closes."
    )
    min_observe_s: Annotated[float, Field(ge=0)] = Field(120.0, description="Local throughput is observed this long before any prediction.")
    poll_s: Annotated[float, Field(gt=0)] = Field(30.0, description="How often a handed-over batch is polled.")


class BatchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Serve /v1/files and /v1/batches and run batches.")
    files_dir: str | None = Field(None, description="Where file bytes live; default: `files` under $SPILLOVER_CACHE_DIR "
                                  "(~/.cache/spillover; /var/lib/spillover in the image).")
    max_file_bytes: Annotated[int, Field(ge=1)] = Field(200 * 2**20, description="Largest upload (413 above it).")
    max_lines: Annotated[int, Field(ge=1)] = Field(50_000, description="Most lines in one batch.")
    max_in_flight: Annotated[int, Field(ge=1)] = Field(
        1, description="Batch lines on one local model at once: each is a sequence an interactive request cannot have."
    )
    max_kv_use: Annotated[float, Field(gt=0, le=1)] = Field(0.8, description="A line starts only while KV-cache use is under this.")
    poll_s: Annotated[float, Field(gt=0)] = Field(0.2, description="How often the worker looks for headroom and work.")
    claim_s: Annotated[float, Field(gt=0)] = Field(
        30.0, description="How long a worker's claim on a running line holds unrenewed: a line whose worker died runs again "
        "after it (on any ingress replica)."
    )
    hosted: HostedBatchConfig | None = Field(None, description="Where lines go when local capacity will not finish them in the window; "
                                             "none: they wait for local capacity until the window closes.")
