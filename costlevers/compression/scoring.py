"""How much each unit of a compressible text bears on the question: lexical (BM25) at passage
and sentence level, a second pass that follows the question's bridge, position, and optionally
the MiniLM cosine.

Multi-hop questions name only the first hop ("the seat of the county where Van Hook Township
is"); the passage that answers names the bridge ("Mountrail County"), not the question's words.
The second pass (pseudo-relevance feedback) takes the title and best sentence of the passages
the first pass ranked highest, adds their words to the query at a lower weight, and scores again,
so the bridge's own passage rises. All of it is numpy over one prompt's words: a few milliseconds
at 16k tokens, where encoding every passage with MiniLM on a 2-core CPU costs seconds.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from costlevers.compression.segments import Passage

__all__ = ["DEFAULT_WEIGHTS", "ScoreWeights", "score_units", "terms"]

_WORD = re.compile(r"[a-z0-9]+")
#: Capitalised runs ("Mountrail County", "University of Texas"): the names a bridge passes through.
_NAME = re.compile(r"\b[A-Z][\w'-]+(?:\s+(?:of|the|de|and)?\s*[A-Z][\w'-]+)*")
_FEEDBACK_DECAY = 0.7
#: The marker a title line starts with ("Title:", "## ", "Document 3:"): not a word of the title.
_TITLE_MARK = re.compile(r"^\s*(#{1,6}\s+|(title|document|passage|source)\b\s*\d*\s*:?\s*)", re.IGNORECASE)
_STOPWORDS = frozenset(
    "a an the and or but if of in on at to for from by with as is are was were be been being this that these those it its "
    "he she they them his her their there here what which who whom whose when where why how do does did done not no yes "
    "than then so such can could would should will shall may might must into onto over under about after before between "
    "also both either neither each any all some many much more most other same own only very just too s t one two".split()
)


def terms(text: str) -> list[str]:
    """Lower-case word stems (a trailing plural ``s`` cut) without stopwords."""
    out = []
    for word in _WORD.findall(text.lower()):
        if word in _STOPWORDS or (len(word) < 2 and not word.isdigit()):
            continue
        out.append(word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word)
    return out


@dataclass(frozen=True)
class ScoreWeights:
    """The blend of a unit's features; chosen on the training half of the evaluation data
    (``bench/compression.py`` fits them and prints the winner; these defaults are that winner)."""

    passage: float = 1.0
    #: The question's words in passage titles (a question names its first hop's subject).
    title: float = 1.0
    #: The question's words in each sentence (0: passages go whole, best first; the fit chose it).
    unit: float = 0.0
    feedback: float = 0.3
    position: float = 0.05
    #: The question's MiniLM cosine with each passage, where the caller encoded them.
    dense: float = 0.0
    #: Passages each feedback round reads its words from, and the rounds (hops followed).
    feedback_passages: int = 1
    feedback_rounds: int = 2
    k1: float = 1.2
    b: float = 0.75


DEFAULT_WEIGHTS = ScoreWeights()


class _Bm25:
    """BM25 over one prompt's documents. The index is three flat arrays (term, document, count)
    grouped by term, so a query term touches only the documents that hold it, and building it
    makes no Python container per term or document: at 16k tokens, per-term lists made the
    interpreter's full garbage collections (~250 ms in a large process) fire every few calls."""

    def __init__(self, docs: Sequence[list[str]], k1: float, b: float) -> None:
        self.size = n = len(docs)
        self.vocab: dict[str, int] = {}
        term_ids = np.fromiter((self.vocab.setdefault(t, len(self.vocab)) for doc in docs for t in doc), dtype=np.int64)
        lengths = np.fromiter((len(doc) for doc in docs), dtype=np.float64, count=n)
        pairs, counts = np.unique(term_ids * max(n, 1) + np.repeat(np.arange(n), lengths.astype(np.int64)), return_counts=True)
        self.doc_of = pairs % max(n, 1)
        self.tf = counts.astype(np.float64)
        df = np.bincount(pairs // max(n, 1), minlength=len(self.vocab))
        self.starts = np.concatenate(([0], np.cumsum(df)))
        self.idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
        mean_length = float(lengths.mean()) if n and lengths.mean() > 0 else 1.0
        self.k1 = k1
        self.norm = k1 * (1 - b + b * lengths / mean_length)

    def scores(self, query: dict[str, float]) -> np.ndarray:
        out = np.zeros(self.size)
        for term, weight in query.items():
            index = self.vocab.get(term)
            if index is None:
                continue
            start, end = self.starts[index], self.starts[index + 1]
            ids, tf = self.doc_of[start:end], self.tf[start:end]
            out[ids] += weight * self.idf[index] * tf * (self.k1 + 1) / (tf + self.norm[ids])
        return out


def _scaled(values: np.ndarray) -> np.ndarray:
    top = float(values.max()) if values.size else 0.0
    return values / top if top > 0 else np.zeros_like(values)


def _title(passage: Passage) -> str:
    return _TITLE_MARK.sub("", passage.title or "")


def _entities(text: str) -> str:
    return " ".join(_NAME.findall(text))


def _passage_scores(passages: Sequence[Passage], title_terms: list[list[str]], passage_terms: list[list[str]], query: dict[str, float],
                    weights: ScoreWeights) -> np.ndarray:
    """The question's lexical match per passage, then the feedback rounds: each takes the best
    passages not yet used, adds their title and the names in their text to the query and scores
    again (the bridge's passage rises; the seeds are not scored twice)."""
    bm25 = _Bm25(passage_terms, weights.k1, weights.b)
    first = bm25.scores(query)
    if weights.title:
        first = first + weights.title * _Bm25(title_terms, weights.k1, weights.b).scores(query)
    score = weights.passage * _scaled(first)
    if weights.feedback <= 0 or len(passages) < 2:
        return score
    used: set[int] = set()
    for round_index in range(weights.feedback_rounds):
        seeds = [int(i) for i in np.argsort(-score, kind="stable") if int(i) not in used and score[int(i)] > 0][: weights.feedback_passages]
        if not seeds:
            break
        used.update(seeds)
        expansion: set[str] = set()
        for i in seeds:
            expansion.update(title_terms[i])
            expansion.update(terms(_entities(passages[i].body)))
        expansion.difference_update(query)
        if not expansion:
            break
        feedback = bm25.scores(dict.fromkeys(expansion, 1.0))
        feedback[list(used)] = 0.0
        score = score + weights.feedback * _FEEDBACK_DECAY**round_index * _scaled(feedback)
    return score


def score_units(passages: Sequence[Passage], question: str, weights: ScoreWeights = DEFAULT_WEIGHTS,
                dense: Sequence[float] | None = None) -> list[np.ndarray]:
    """Per passage, each unit's score (higher: keep first). ``dense``: the question's cosine with
    each passage, where the caller encoded them."""
    query = dict(Counter(terms(question)))
    title_terms = [terms(_title(p)) for p in passages]
    # Each unit's words once; a passage's words are its title's and its units'.
    own_terms = [[terms(u.text) for u in p.units] for p in passages]
    passage_terms = [title + [t for unit in units for t in unit] for title, units in zip(title_terms, own_terms)]
    passage_score = _passage_scores(passages, title_terms, passage_terms, query, weights)
    if dense is not None and weights.dense:
        passage_score = passage_score + weights.dense * np.asarray(dense, dtype=np.float64)
    unit_terms = [title + unit for title, units in zip(title_terms, own_terms) for unit in units]
    unit_scaled = _scaled(_Bm25(unit_terms, weights.k1, weights.b).scores(query)) if weights.unit else np.zeros(len(unit_terms))
    n = max(len(passages) - 1, 1)
    out: list[np.ndarray] = []
    start = 0
    for index, passage in enumerate(passages):
        count = len(passage.units)
        # Earlier units win ties inside a passage (a passage's lead sentence names its subject).
        lead = np.linspace(0.0, 1e-6, count, endpoint=False)
        out.append(passage_score[index] + weights.unit * unit_scaled[start : start + count] + weights.position * (1 - index / n) - lead)
        start += count
    return out
