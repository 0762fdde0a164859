"""The cache's configuration: what is cached, for whom, for how long, and how a semantic hit is
decided. Per-route overrides sit in the route's ``cache`` block."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CacheConfig", "RouteCacheConfig", "SemanticCacheConfig"]


class _Strict(BaseModel):
    # Versions written as numbers in YAML (prompt_version: 2) are still versions.
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


class SteeringConfig(_Strict):
    """The operating point earned from the route's own shadow checks (costlevers.cache.steering)."""

    target: Annotated[float, Field(gt=0, lt=1)] = Field(0.01, description="Most false hits allowed: the 95% Wilson upper bound "
                                                         "of the served false-hit rate must stay at or under it.")
    start: Literal["strict", "shadow"] = Field("strict", description="strict: serve only at the ladder's strictest rung until "
                                                "evidence says more; shadow: serve no semantic hit until then.")
    ladder: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        [0.999, 0.995, 0.99, 0.98, 0.97, 0.95, 0.93, 0.9, 0.857, 0.8, 0.7], min_length=1,
        description="Verifier scores the threshold may take; a would-be hit at or above the loosest is evidence.")
    window: Annotated[int, Field(ge=100)] = Field(5000, description="Checks kept as evidence (the newest).")
    min_share: Annotated[float, Field(ge=0, le=1)] = Field(0.02, description="Least share of served hits still checked.")
    share_halving: Annotated[int, Field(ge=1)] = Field(200, description="Served hits are checked at share_halving / (share_halving + checks).")
    judge_sensitivity: Annotated[float, Field(gt=0, le=1)] = Field(
        0.84, description="Least share of non-interchangeable answer pairs the shadow judge calls different: the bound is divided by "
                          "it. Default: the built-in judge's lower 95% bound on long answers (bench/cache_shift.py, Arena-Hard); near 0 "
                          "for worked math answers, whose wrong final number it does not see.")


class SemanticCacheConfig(_Strict):
    enabled: bool = Field(False, description="Answer paraphrases of past questions (the hit verifier decides).")
    embedding_model: str | None = Field(None, description="An `embeddings` model; default: the first.")
    candidates: Annotated[int, Field(ge=1, le=50)] = Field(5, description="Nearest entries the verifier judges.")
    min_cosine: Annotated[float, Field(ge=-1, le=1)] = Field(0.75, description="Candidates below this cosine are not judged.")
    threshold: Annotated[float, Field(ge=0, le=1)] | None = Field(
        None, description="The verifier's operating point; default: its calibrated one (<= 1% false hits on held-out pairs)."
    )
    max_entries: Annotated[int, Field(ge=1)] = 100_000
    shadow_share: Annotated[float, Field(ge=0, le=1)] = Field(
        0.0, description="Share of semantic hits also sent to the model, their answers compared (the live false-hit estimate)."
    )
    shadow_agree_cosine: Annotated[float, Field(ge=-1, le=1)] = Field(
        0.528, description="Two long answers agree when their embeddings' cosine is at least this (bench/cache_shift.py: at 0.8 the "
                           "judge called 20% of interchangeable answers different, which keeps every steered bound above 1%)."
    )
    steering: SteeringConfig | None = Field(
        None, description="Earn each route's threshold from its own shadow checks (replaces `threshold` and `shadow_share`)."
    )


class RouteCacheConfig(_Strict):
    """Overrides for one route; unset fields take the global value."""

    enabled: bool | None = None
    ttl_s: Annotated[int, Field(ge=1)] | None = None
    prompt_version: str | None = None
    model_version: str | None = Field(None, description="Default: a hash of the route's models and their config.")
    non_deterministic: bool | None = None
    tool_calls: bool | None = None
    semantic: bool | None = None


class CacheConfig(_Strict):
    enabled: bool = Field(True, description="The exact cache: only deterministic requests (temperature 0 or a seed) by default.")
    scope: Literal["global", "team", "key"] = Field("team", description="Who shares entries.")
    ttl_s: Annotated[int, Field(ge=1)] = 86_400
    max_entries: Annotated[int, Field(ge=1)] = Field(100_000, description="In-process exact entries (Redis evicts by TTL and its own memory policy).")
    prompt_version: str = Field("1", description="Bump to invalidate every entry made under the old prompts.")
    non_deterministic: bool = Field(False, description="Also cache requests sampled without a seed at temperature > 0.")
    tool_calls: bool = Field(False, description="Also cache responses that call tools.")
    semantic: SemanticCacheConfig = SemanticCacheConfig()
