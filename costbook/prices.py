"""A versioned price table, and the cost of one request's usage under it.

Prices are US dollars per million tokens, so a cost in micro-dollars is tokens x price: money is
kept as integer micro-dollars (never floats that drift over millions of rows), rounded half-even
once per request. Each ledger row keeps the table version it was priced with; a new table is a
new version, and old rows keep their price.

Usage reaches here normalised (contracts.context.Usage, OpenAI's convention: prompt tokens include
cached reads and cache writes; completion tokens include reasoning), so provider semantics are
settled where the usage is read: Anthropic's ``input_tokens`` exclude cache reads and writes and
are summed up in fallback/anthropic_wire; OpenAI's ``cached_tokens`` are already inside
``prompt_tokens``. Here the parts are priced: uncached input, cached reads, cache writes, output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import yaml

from contracts.context import Usage

__all__ = ["DEFAULT_PRICES", "LocalPrice", "ModelPrice", "PriceTable", "cost_micro_usd", "usd"]

DEFAULT_PRICES = Path(__file__).with_name("prices.yaml")
_MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class ModelPrice:
    """Dollars per million tokens. Cached reads and cache writes default to the input price; the
    batch API's prices (``batch_input``, ``batch_output``: half the list price at OpenAI and
    Anthropic) default to the list price, so a table without them never under-prices."""

    input: Decimal
    output: Decimal
    cached_read: Decimal | None = None
    cache_write: Decimal | None = None
    batch_input: Decimal | None = None
    batch_output: Decimal | None = None

    def for_batch(self) -> ModelPrice:
        """The price a hosted batch API line pays (cache pricing as listed)."""
        return ModelPrice(self.batch_input if self.batch_input is not None else self.input,
                          self.batch_output if self.batch_output is not None else self.output, self.cached_read, self.cache_write)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> ModelPrice:
        unknown = set(raw) - {"input", "output", "cached_read", "cache_write", "batch_input", "batch_output"}
        if unknown:
            raise ValueError(f"unknown price field(s) {sorted(unknown)}")
        values = {k: Decimal(str(v)) for k, v in raw.items() if v is not None}
        if any(v < 0 for v in values.values()):
            raise ValueError("prices must be >= 0")
        return cls(**values)


@dataclass(frozen=True)
class LocalPrice:
    """What self-hosted capacity costs an hour: per GPU, and per CPU core for CPU replicas."""

    gpu_usd_per_hour: Decimal = Decimal(0)
    cpu_usd_per_hour: Decimal = Decimal(0)

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> LocalPrice:
        unknown = set(raw) - {"gpu_usd_per_hour", "cpu_usd_per_hour"}
        if unknown:
            raise ValueError(f"unknown local price field(s) {sorted(unknown)}")
        values = {k: Decimal(str(v)) for k, v in raw.items()}
        if any(v < 0 for v in values.values()):
            raise ValueError("prices must be >= 0")
        return cls(**values)

    def replica_hour(self, gpus: int, cpus: float) -> Decimal:
        return gpus * self.gpu_usd_per_hour if gpus else Decimal(str(cpus)) * self.cpu_usd_per_hour


@dataclass(frozen=True)
class PriceTable:
    version: str
    models: dict[str, ModelPrice] = field(default_factory=dict)
    local: LocalPrice = LocalPrice()

    def price(self, model: str) -> ModelPrice | None:
        return self.models.get(model)

    @classmethod
    def load(cls, path: Path = DEFAULT_PRICES) -> PriceTable:
        raw = yaml.safe_load(path.read_text())
        return cls(str(raw["version"]), {name: ModelPrice.parse(p) for name, p in (raw.get("models") or {}).items()},
                   LocalPrice.parse(raw.get("local") or {}))

    @classmethod
    def from_litellm_json(cls, path: Path, version: str, models: list[str] | None = None) -> PriceTable:
        """Import the public JSON price format (``model_prices_and_context_window.json``):
        per-token dollars become per-million; entries without token prices are skipped."""
        raw = json.loads(path.read_text())
        table = {}
        for name, entry in raw.items():
            if (models is not None and name not in models) or not isinstance(entry, dict):
                continue
            if "input_cost_per_token" not in entry or "output_cost_per_token" not in entry:
                continue
            per_m = {
                "input": entry["input_cost_per_token"],
                "output": entry["output_cost_per_token"],
                "cached_read": entry.get("cache_read_input_token_cost"),
                "cache_write": entry.get("cache_creation_input_token_cost"),
                "batch_input": entry.get("input_cost_per_token_batches"),
                "batch_output": entry.get("output_cost_per_token_batches"),
            }
            table[name] = ModelPrice.parse({k: Decimal(str(v)) * _MILLION for k, v in per_m.items() if v is not None})
        return cls(version, table)

    def to_yaml(self) -> str:
        def plain(p: ModelPrice) -> dict[str, float]:
            return {k: float(v) for k, v in vars(p).items() if v is not None}

        local = {k: float(v) for k, v in vars(self.local).items()}
        return yaml.safe_dump({"version": self.version, "local": local, "models": {n: plain(p) for n, p in sorted(self.models.items())}},
                              sort_keys=False)


def cost_micro_usd(usage: Usage, price: ModelPrice) -> int:
    """What ``usage`` costs at ``price``, in micro-dollars."""
    cached_read = min(usage.cached_read_tokens, usage.prompt_tokens)
    cache_write = min(usage.cache_write_tokens, usage.prompt_tokens - cached_read)
    uncached = usage.prompt_tokens - cached_read - cache_write
    total = (
        uncached * price.input
        + cached_read * (price.input if price.cached_read is None else price.cached_read)
        + cache_write * (price.input if price.cache_write is None else price.cache_write)
        + usage.completion_tokens * price.output
    )
    return int(total.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def usd(micro: int) -> float:
    return micro / 1_000_000
