"""The costs section: the ledger, the price table, budgets and how local work is priced."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BudgetConfig", "CostsConfig"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BudgetConfig(_Strict):
    scope: Literal["user", "team"]
    name: str
    daily_usd: Annotated[float, Field(ge=0)] | None = None
    monthly_usd: Annotated[float, Field(ge=0)] | None = None


class CostsConfig(_Strict):
    ledger: bool = Field(True, description="Record one ledger row per request.")
    price_table: str | None = Field(None, description="A price-table YAML; default: the built-in one (costbook/prices.yaml).")
    budgets: list[BudgetConfig] = Field(
        default_factory=list, description="Per user or team, per UTC day and month; a key's own budget comes with the key."
    )
    local_usd_per_mtok_ceiling: Annotated[float, Field(ge=0)] = Field(
        1.0, description="What a budget reserves, and charges until the replica time is shared out, per million tokens of local work."
    )
    local_interval_s: Annotated[int, Field(ge=5, multiple_of=5)] = Field(
        60, description="Local work is priced per interval: the replicas' time in it, shared out by tokens."
    )
