"""A route's ``routing`` block: its candidates, cheap to strong, the router that scores a request
and the quality target its threshold comes from, and the cascade's checks.

Unknown keys, an unknown router kind, a check that does not exist or fewer than two candidates
fail at start with one line naming the field (:func:`spillover.config.parse_config`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["CascadeConfig", "RouterConfig", "RoutingConfig"]

CheckName = Literal["not_truncated", "not_refusal", "valid_structure", "final_answer", "arithmetic"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RouterConfig(_Strict):
    kind: Literal["linear", "knn"] = Field("linear", description="linear: the shipped learned router; knn: nearest labelled prompts.")
    weights: str | None = Field(None, description="A weights file from `python -m spillover.training.router`; default: the shipped "
                                "linear router (a knn router needs its own file).")
    quality_target: Annotated[float, Field(gt=0, le=1)] = Field(
        0.95, description="Share of the strong candidate's accuracy to keep; the threshold is worked out from the weights' "
        "out-of-fold scores."
    )
    threshold: float | None = Field(None, description="Override the score threshold (score above it: the strong candidate).")
    embedding_model: str | None = Field(None, description="An `embeddings` model; default: the first.")

    @model_validator(mode="after")
    def _knn_has_weights(self) -> RouterConfig:
        if self.kind == "knn" and self.weights is None:
            raise ValueError("a knn router needs `weights` (python -m spillover.training.router --knn-out PATH); only the linear one ships")
        return self


class CascadeConfig(_Strict):
    checks: list[CheckName] = Field(["not_truncated", "not_refusal", "valid_structure"],
                                    description="Rule checks on the cheap answer; any failing escalates.")
    min_mean_logprob: float | None = Field(None, description="Also require the answer's mean token logprob to reach this "
                                           "(the cheap call asks for logprobs).")
    second_sample: bool = Field(False, description="Also ask the cheap candidate again (temperature 1) and require the same "
                                "final answer.")
    verifier: bool = Field(False, description="Also run the learned answer verifier (math word problems).")
    verifier_quality_target: Annotated[float, Field(gt=0, le=1)] = Field(0.95, description="The verifier's threshold, as a quality target.")
    streams: Literal["buffer", "router_only"] = Field(
        "buffer", description="buffer: a streamed request waits for the cheap answer's checks; router_only: streams are routed, "
        "never cascaded."
    )


class RoutingConfig(_Strict):
    candidates: list[str] = Field(min_length=2, description="Routes (model names), cheapest first, strongest last.")
    router: RouterConfig | None = Field(None, description="Score each request before any call; none: always start cheapest.")
    cascade: CascadeConfig | None = Field(None, description="Try the cheaper candidates first and check their answers.")
