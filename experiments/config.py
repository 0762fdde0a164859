"""An experiment's configuration: the route under test, its variants and the analysis plan.

Why variants are route settings: each stage already reads its settings per route, so a variant is
the experiment route's settings with some fields changed (``settings``, deep-merged), or another
route's settings (``route``), or every lever off (``holdout``). No stage knows experiments exist,
and a lever added later is in reach of a variant as soon as its settings live on the route.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ExperimentConfig", "VariantConfig"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VariantConfig(_Strict):
    weight: Annotated[float, Field(gt=0)] = Field(description="Relative share of the experiment's users.")
    settings: dict[str, Any] = Field(
        default_factory=dict, description="Fields of the experiment route's `routes` entry to change (deep-merged), e.g. "
        "`{compression: {ratio: 3}}`, `{cache: {enabled: false}}`, `{routing: {router: {threshold: 0.2}}}`.")
    route: str | None = Field(None, description="Serve this variant with another route's settings (a different model), "
                              "then apply `settings` on top.")
    holdout: bool = Field(False, description="Every lever off (cache, routing: the strongest candidate, compression): the "
                          "counterfactual the other variants are compared with.")

    @model_validator(mode="after")
    def _holdout_alone(self) -> VariantConfig:
        if self.holdout and (self.settings or self.route):
            raise ValueError("a holdout variant takes no settings or route: it is the route with every lever off")
        return self


class ExperimentConfig(_Strict):
    route: str = Field(description="The public route (model name) whose requests are split.")
    variants: dict[str, VariantConfig] = Field(min_length=2)
    control: str | None = Field(None, description="The variant the others are compared with (default: the first).")
    assign_by: Literal["user", "key"] = Field("user", description="What keeps a variant sticky: the key's user or the key.")
    running: bool = Field(True, description="Split traffic from start; the admin API starts and stops it at run time.")
    quality: Literal["feedback", "automatic"] = Field(
        "automatic", description="The quality metric the non-inferiority verdict uses: mean feedback score (thumbs up = 1), or "
        "the share of requests without a bad automatic signal (error, cancel, truncation, escalation, retry within a minute).")
    quality_margin: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.02, description="Non-inferiority margin: a variant may lose at most this much quality (absolute) against control.")
    cost_effect: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.10, description="The relative change in cost per request the experiment must be able to detect (power analysis).")
    alpha: Annotated[float, Field(gt=0, lt=0.5)] = 0.05
    power: Annotated[float, Field(gt=0.5, lt=1)] = 0.80
    planned_requests: Annotated[int, Field(ge=10)] | None = Field(
        None, description="The sample size the sequential test spends its error over; default: the power analysis on the "
        "experiment's first full day.")

    @model_validator(mode="after")
    def _control_known(self) -> ExperimentConfig:
        if self.control is not None and self.control not in self.variants:
            raise ValueError(f"control {self.control!r} is not one of the variants {sorted(self.variants)}")
        return self

    @property
    def control_variant(self) -> str:
        return self.control or next(iter(self.variants))
