"""Are a cached answer and a fresh one interchangeable? The judge behind every shadow check.

* **Structured answers** (a JSON object or array, bare or in a fenced block) agree when they
  are equal as data: key order and whitespace do not matter, one changed value does.
* **Short answers** (both at most ``short_words`` words once normalised: lower case, no
  punctuation or articles) agree only when they are equal: "Paris" and "paris." agree, "Paris"
  and "Lyon" do not, however close their embeddings. Answers of up to ``number_words`` words
  that state different numbers do not agree either ("It costs 1,200" and "It costs 1,500").
* **Long answers** agree when their embeddings' cosine reaches ``agree_cosine``: two phrasings of
  one explanation score high, two answers to different questions low. Its error rates on
  labelled pairs are measured by ``bench/cache_shift.py`` (answers to one question against
  answers to other questions of the same topic), and they are not small: a worked answer with a
  different final number still reads as the same text to the encoder.

No verdict (None) when either answer is empty or the embedding fails: a failed check is no
evidence, never agreement.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

__all__ = ["AnswerJudge", "normalise", "structured"]

_FENCED = re.compile(r"^```(?:json)?\s*\n(.*)\n```$", re.DOTALL)
_PUNCT = re.compile(r"[^\w\s]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NOTHING = object()


def normalise(text: str) -> str:
    """Lower case, punctuation and articles dropped, whitespace collapsed."""
    return " ".join(_ARTICLES.sub(" ", _PUNCT.sub(" ", text.lower())).split())


def structured(text: str) -> Any:
    """The JSON object or array ``text`` holds (bare or fenced), else a sentinel meaning none."""
    stripped = text.strip()
    fenced = _FENCED.match(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    if stripped[:1] not in ("{", "["):
        return _NOTHING
    try:
        return json.loads(stripped)
    except ValueError:
        return _NOTHING


class AnswerJudge:
    def __init__(self, embed: Callable[[str], Awaitable[np.ndarray]], *, agree_cosine: float = 0.8, short_words: int = 3,
                 number_words: int = 12) -> None:
        self._embed = embed
        self.agree_cosine = agree_cosine
        self.short_words = short_words
        self.number_words = number_words

    async def agree(self, cached: str | None, fresh: str | None) -> bool | None:
        if not cached or not fresh or not cached.strip() or not fresh.strip():
            return None
        verdict = self.without_embedding(cached, fresh)
        if verdict is not None:
            return verdict
        return float(np.dot(await self._embed(cached), await self._embed(fresh))) >= self.agree_cosine

    def without_embedding(self, cached: str, fresh: str) -> bool | None:
        """The verdict the text alone gives (structured or short answers), else None."""
        data_a, data_b = structured(cached), structured(fresh)
        if data_a is not _NOTHING or data_b is not _NOTHING:
            return data_a is not _NOTHING and data_b is not _NOTHING and data_a == data_b
        a, b = normalise(cached).split(), normalise(fresh).split()
        if a == b:
            return True
        if len(a) <= self.short_words and len(b) <= self.short_words:
            return False
        if len(a) <= self.number_words and len(b) <= self.number_words and _numbers(a) != _numbers(b):
            return False
        return None


def _numbers(words: list[str]) -> list[str]:
    return sorted(w for w in words if w.isdigit())
