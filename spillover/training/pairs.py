"""Labelled question pairs (QQP's format): loading, the duplicate graph, the split, cached embeddings.

The verifier's training script and the cache-quality benchmark read the same file the same way,
so the test figures are measured on texts that training never saw:

* every pair is an edge; the connected components of *all* edges (either label) are assigned
  whole to one split, so no text (and no duplicate of a test text) is in two splits;
* a component's split comes from a stable hash (SHA-1 of its alphabetically first text), mod
  100: four folds of 20 buckets each (``fold0`` to ``fold3``, the verifier's cross-fitted
  training and calibration) and ``test`` (``>= 80``, left to the benchmark); every split is the
  size of the test split, so a fold's whole index is as crowded as the test's; the split does
  not move when the file is reordered or Python's hash seed changes;
* two texts are *known duplicates* when a chain of label-1 pairs joins them.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SPLITS", "DuplicateGraph", "Pair", "cached_embeddings", "component_roots", "encode_builtin", "load_pairs", "split_of", "split_pairs"]

SPLITS: dict[str, tuple[int, int]] = {"fold0": (0, 20), "fold1": (20, 40), "fold2": (40, 60), "fold3": (60, 80), "test": (80, 100)}


@dataclass(frozen=True)
class Pair:
    text_a: str
    text_b: str
    label: int


def load_pairs(path: str | Path) -> list[Pair]:
    """One JSON object a line with ``text_a``, ``text_b`` and ``label`` (1 = duplicate)."""
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [Pair(r["text_a"], r["text_b"], int(r["label"])) for r in rows]


class _UnionFind:
    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        parent = self._parent
        parent.setdefault(x, x)
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)  # the root is the component's first text


class DuplicateGraph:
    """Known duplicates: texts joined by a chain of label-1 pairs."""

    def __init__(self, pairs: Iterable[Pair]) -> None:
        self._uf = _UnionFind()
        for p in pairs:
            self._uf.find(p.text_a), self._uf.find(p.text_b)
            if p.label == 1:
                self._uf.union(p.text_a, p.text_b)

    def component(self, text: str) -> str:
        return self._uf.find(text)

    def duplicates(self, a: str, b: str) -> bool:
        return self._uf.find(a) == self._uf.find(b)


def split_of(root_text: str) -> str:
    bucket = int.from_bytes(hashlib.sha1(root_text.encode("utf-8")).digest()[:8], "big") % 100
    return next(name for name, (lo, hi) in SPLITS.items() if lo <= bucket < hi)


def component_roots(pairs: list[Pair]) -> dict[str, str]:
    """Each text's component of the all-pairs graph (either label), named by its first text."""
    uf = _UnionFind()
    for p in pairs:
        uf.union(p.text_a, p.text_b)
    return {t: uf.find(t) for p in pairs for t in (p.text_a, p.text_b)}


def split_pairs(pairs: list[Pair]) -> dict[str, list[Pair]]:
    """Pairs by split, each component of the all-pairs graph whole in one split (see module doc)."""
    roots = component_roots(pairs)
    out: dict[str, list[Pair]] = {name: [] for name in SPLITS}
    for p in pairs:
        out[split_of(roots[p.text_a])].append(p)
    return out


def _text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:24]


@functools.cache
def _builtin_encoder() -> Any:
    from serving.embeddings import SentenceEncoder

    return SentenceEncoder.builtin()


def encode_builtin(texts: list[str]) -> np.ndarray:
    """all-MiniLM-L6-v2 vectors of ``texts``; the encoder loads on first use, so a run served
    wholly from :func:`cached_embeddings`'s file never loads it."""
    return _builtin_encoder().encode(texts)


def cached_embeddings(
    texts: Iterable[str], encode: Callable[[list[str]], np.ndarray], cache_file: Path, *,
    progress: Callable[[int, int], None] | None = None, chunk: int = 1024,
) -> dict[str, np.ndarray]:
    """Vectors for ``texts``, computing only those missing from ``cache_file`` (an npz keyed by text hash).

    The cache is rewritten after every ``chunk`` new texts, so an interrupted run resumes.
    """
    keys: list[str] = []
    vecs: list[np.ndarray] = []
    if cache_file.exists():
        with np.load(cache_file) as z:
            keys = [str(k) for k in z["keys"]]
            vecs = list(z["vectors"])
    known = dict(zip(keys, vecs))
    wanted = list(dict.fromkeys(texts))
    missing = [t for t in wanted if _text_key(t) not in known]
    for start in range(0, len(missing), chunk):
        batch = missing[start : start + chunk]
        for text, vec in zip(batch, encode(batch)):
            known[_text_key(text)] = vec
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(list(known), dtype="U24"), vectors=np.array(list(known.values()), dtype=np.float32))
        tmp.replace(cache_file)
        if progress is not None:
            progress(min(start + chunk, len(missing)), len(missing))
    return {t: known[_text_key(t)] for t in wanted}
