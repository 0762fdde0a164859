"""Replica presets: what one engine replica of a model on some hardware can do, in token rates.

A preset is a committed YAML file under ``autoscaler/presets/`` with its sources. The step model
is vLLM's continuous batching reduced to three numbers: a step costs ``step_overhead_s`` (reading
the weights once, the memory-bound part), plus ``1 / prefill_tokens_per_s`` per prompt token it
prefills, plus ``decode_token_s`` per sequence it decodes. On a GPU a decode token costs the
compute of a prompt token, so ``decode_token_s`` defaults to ``1 / prefill_tokens_per_s``; on a
CPU it is measured apart (attention over the KV cache and per-sequence work weigh more there).
So a batch of ``b`` decodes at ``b / (overhead + b * decode_token_s)`` tokens/s. A step that
admits a request also pays ``request_overhead_s`` for it: the per-request work around the engine
(scheduling, detokenising, the serving path) that shares the replica's cores; 0 on a GPU, where
the host CPU does it beside the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = ["PRESETS_DIR", "ReplicaPreset", "load_preset"]

PRESETS_DIR = Path(__file__).resolve().parent / "presets"


@dataclass(frozen=True)
class ReplicaPreset:
    name: str
    gpus_per_replica: int
    step_overhead_s: float
    prefill_tokens_per_s: float
    max_num_seqs: int
    max_batched_tokens: int
    kv_capacity_tokens: int
    cold_start_s: float
    sources: tuple[str, ...] = field(default=())
    #: Seconds one decoding sequence adds to a step; ``None``: a prompt token's cost.
    decode_token_s: float | None = None
    #: Seconds a step pays for each request it admits.
    request_overhead_s: float = 0.0
    #: The model's context limit (prompt plus output tokens); a longer request can only go hosted.
    max_model_len: int | None = None

    @property
    def decode_cost_s(self) -> float:
        return self.decode_token_s if self.decode_token_s is not None else 1 / self.prefill_tokens_per_s

    def step_s(self, prefill_tokens: int, decoding: int, admitted: int = 0) -> float:
        """How long one engine step lasts that prefills ``prefill_tokens``, decodes ``decoding``
        sequences and admits ``admitted`` new requests."""
        return (self.step_overhead_s + prefill_tokens / self.prefill_tokens_per_s + decoding * self.decode_cost_s
                + admitted * self.request_overhead_s)

    def fits(self, prompt: int, output: int) -> bool:
        """Whether a replica can hold the request at all (context limit and KV cache)."""
        need = prompt + output
        return need <= self.kv_capacity_tokens and (self.max_model_len is None or need <= self.max_model_len)

    def decode_tokens_per_s(self, batch: int) -> float:
        batch = max(batch, 1)
        return batch / self.step_s(0, batch)


def load_preset(name_or_path: str) -> ReplicaPreset:
    """A preset by name (``llama3-70b-a100x4``) or by path to a YAML file of the same shape."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESETS_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
        raise FileNotFoundError(f"no preset {name_or_path!r} (known: {known})")
    raw = yaml.safe_load(path.read_text())
    raw["sources"] = tuple(raw.get("sources") or ())
    return ReplicaPreset(**raw)
