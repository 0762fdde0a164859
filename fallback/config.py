"""How dispatch fails over before the first token: tries, deadlines and the providers' breakers."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["FailoverConfig"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FailoverConfig(_Strict):
    attempts_per_target: Annotated[int, Field(ge=1, le=10)] = 2
    deadline_s: Annotated[float, Field(gt=0)] = Field(30.0, description="All tries before the first token, together.")
    local_start_timeout_s: Annotated[float, Field(gt=0)] = Field(
        10.0,
        description="A local stream with a hosted target behind it fails over if no first chunk "
        "came in this long (e.g. its replica vanished and Serve holds it for the next one).",
    )
    breaker_consecutive_failures: Annotated[int, Field(ge=1)] = 5
    breaker_failure_rate: Annotated[float, Field(gt=0, le=1)] = 0.5
    breaker_window: Annotated[int, Field(ge=1)] = 20
    breaker_min_samples: Annotated[int, Field(ge=1)] = 10
    breaker_cooldown_s: Annotated[float, Field(gt=0)] = 30.0

    @model_validator(mode="after")
    def _timeout_inside_deadline(self) -> FailoverConfig:
        if self.local_start_timeout_s >= self.deadline_s:
            raise ValueError(
                f"local_start_timeout_s ({self.local_start_timeout_s:g}) must be below deadline_s ({self.deadline_s:g}), "
                "or a timed-out local request has no time left for its hosted target"
            )
        return self
