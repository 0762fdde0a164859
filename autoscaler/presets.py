"""Replica presets: what one engine replica of a model on some hardware can do, in token rates.

A preset is a committed YAML file under ``autoscaler/presets/`` with its sources. The step model
is vLLM's continuous batching reduced to two numbers: a step costs ``step_overhead_s`` (reading
the weights once, the memory-bound part) plus ``tokens / prefill_tokens_per_s`` for every token
it processes (decode tokens and prefill chunks alike, the compute-bound part). So a lone decode
runs at ``1 / step_overhead_s`` tokens/s, a batch of ``b`` at ``b / (overhead + b / rate)``.
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

    def step_s(self, tokens: int) -> float:
        return self.step_overhead_s + tokens / self.prefill_tokens_per_s

    def decode_tokens_per_s(self, batch: int) -> float:
        batch = max(batch, 1)
        return batch / self.step_s(batch)


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
