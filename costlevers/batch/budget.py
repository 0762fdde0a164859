"""What a batch holds in its owner's budgets: each line's worst case, reserved when the batch is
created (a batch that cannot fit is refused whole, 429 ``insufficient_quota``) and given back
line by line as each leaves ``pending``/``hosted``, or all at once for the lines a cancelled or
expired batch never ran. The lines themselves are charged as any request is: a local line's
admission reserves its own worst case and settles to its ledger cost, and a hosted batch's
answer is charged at its batch price. So while a line runs, its cost is counted twice (its hold
and its own reservation): a budget is never overspent by a batch, at the price of refusing a
little early while ``max_in_flight`` lines run.

The composition root supplies it (admission's budget counters live in costbook, which a lever
does not import).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from contracts.context import Principal

__all__ = ["BudgetHold", "owner_of"]


class BudgetHold(Protocol):
    async def worst_case(self, principal: Principal, endpoint: str, bodies: Sequence[dict[str, Any]]) -> list[int]:
        """Each line's worst-case cost in micro-dollars (its prompt and ``max_tokens`` at the
        route's dearest price)."""

    async def hold(self, principal: Principal, amount_micro_usd: int, at: float) -> None:
        """Reserve ``amount`` for the budget period holding ``at``; raise when it does not fit."""

    async def release(self, principal: Principal, amount_micro_usd: int, at: float) -> None:
        """Give back part of a hold made for the period holding ``at``."""


def owner_of(batch: dict[str, Any]) -> Principal:
    """The principal a batch row belongs to."""
    return Principal(batch["key_id"], batch["user_name"], batch["team"], batch["feature"])
