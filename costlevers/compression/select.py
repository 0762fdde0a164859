"""Keep the best-scored units of a text within a token budget, in their original order.

Greedy by score: a unit that does not fit is skipped and a smaller one after it may still fit,
so the budget is used up. A passage's title (and the blank line before it) costs its tokens once,
with its first kept unit; the space between sentences is not counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from costlevers.compression.scoring import DEFAULT_WEIGHTS, ScoreWeights, score_units
from costlevers.compression.segments import Passage, join_kept, split_passages

__all__ = ["CountTokens", "Extract", "calibrated_count", "extract", "keep_within"]

#: Token counts of several texts, by the chosen model's tokenizer where one is loaded.
CountTokens = Callable[[list[str]], list[int]]


def calibrated_count(tokens: int, chars: int) -> CountTokens:
    """Token counts at this prompt's own tokens per character: tokenising every unit
    of a 16k-token prompt again costs more than choosing them (~25 ms on 2 cores); the result
    is counted exactly afterwards, so the ratio reported is the real one."""
    rate = tokens / chars if chars else 0.25
    return lambda texts: [round(len(t) * rate) for t in texts]


@dataclass(frozen=True)
class Extract:
    text: str
    original_tokens: int
    kept_tokens: int


def keep_within(passages: Sequence[Passage], scores: Sequence[np.ndarray], budget: int, count: CountTokens) -> set[tuple[int, int]]:
    """The ``(passage, unit)`` pairs to keep: best score first while the budget allows."""
    unit_ids = [(p, u) for p, passage in enumerate(passages) for u in range(len(passage.units))]
    texts = [passages[p].units[u].text for p, u in unit_ids]
    titles = [passage.title or "" for passage in passages]
    costs = count(texts + titles)
    unit_cost = dict(zip(unit_ids, costs[: len(texts)]))
    title_cost = costs[len(texts) :]
    flat = np.concatenate(list(scores)) if unit_ids else np.zeros(0)
    kept: set[tuple[int, int]] = set()
    started: set[int] = set()
    left = budget
    for i in np.argsort(-flat, kind="stable"):
        p, u = unit_ids[int(i)]
        # A passage's first kept unit also pays for its title and the blank line before it.
        cost = unit_cost[(p, u)] + (0 if p in started else title_cost[p] + 1)
        if cost <= left:
            kept.add((p, u))
            started.add(p)
            left -= cost
    return kept


def extract(text: str, question: str, budget: int, count: CountTokens, original: int, weights: ScoreWeights = DEFAULT_WEIGHTS,
            dense: Sequence[float] | None = None) -> Extract:
    """``text`` (``original`` tokens) cut to about ``budget`` tokens of the units that bear most
    on ``question``; units are costed by :func:`calibrated_count`, the result by ``count``."""
    if original <= budget:
        return Extract(text, original, original)
    passages = split_passages(text)
    kept = keep_within(passages, score_units(passages, question, weights, dense), budget, calibrated_count(original, len(text)))
    out = join_kept(passages, kept)
    return Extract(out, original, count([out])[0])
