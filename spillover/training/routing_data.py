"""RouteLLM's labelled outcomes (``../shared/data/routing``): per prompt, whether a weak model
(Mixtral-8x7B-Instruct) and a strong one (gpt-4-1106-preview) answered correctly, and for
GSM8K both answers' text.

Folds are drawn by a stable hash of each item's *group*: the subject for MMLU (a router must
carry to subjects it never saw), the problem for GSM8K. Training and the benchmark use the same
folds, so a score called out-of-fold never came from a model that saw its group.
"""

from __future__ import annotations

import csv
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["STRONG", "WEAK", "Labelled", "assign_folds", "load_gsm8k", "load_mmlu"]

WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"


@dataclass(frozen=True)
class Labelled:
    source: str
    group: str
    prompt: str
    weak_ok: bool
    strong_ok: bool
    weak_answer: str | None = None
    strong_answer: str | None = None

    @property
    def gain(self) -> int:
        """What sending it to the strong model changes: +1 fixes it, -1 breaks it, 0 neither."""
        return int(self.strong_ok) - int(self.weak_ok)


def _rows(path: Path) -> list[dict[str, str]]:
    csv.field_size_limit(sys.maxsize)
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def load_mmlu(directory: Path) -> list[Labelled]:
    """Every MMLU prompt, grouped by subject (``mmlu_<subject>.csv``)."""
    items = []
    for path in sorted(directory.glob("mmlu_*.csv")):
        subject = path.stem.removeprefix("mmlu_")
        items += [Labelled("mmlu", subject, r["prompt"], r[WEAK] == "True", r[STRONG] == "True") for r in _rows(path)]
    return items


def load_gsm8k(path: Path) -> list[Labelled]:
    """Every GSM8K problem with both answers; each problem is its own group."""
    return [
        Labelled("gsm8k", hashlib.sha1(r["prompt"].encode()).hexdigest()[:12], r["prompt"], r[WEAK] == "True", r[STRONG] == "True",
                 r[f"{WEAK}_response"], r[f"{STRONG}_response"])
        for r in _rows(path)
    ]


def assign_folds(groups: list[str], folds: int) -> dict[str, int]:
    """Each group's fold: groups ordered by a stable hash, then dealt round-robin, so folds hold
    near-equal numbers of groups (28 subjects make 7 per fold of 4) on any machine."""
    ordered = sorted(set(groups), key=lambda g: hashlib.sha1(f"routing:{g}".encode()).hexdigest())
    return {group: rank % folds for rank, group in enumerate(ordered)}
