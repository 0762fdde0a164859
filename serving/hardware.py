"""Hardware facts that change how a model should run here.

On CPUs, vLLM's bfloat16 kernels need AVX512-BF16 or AMX; without them float32 runs several
times faster (measured on a 2-core AVX2 host: prefill 300-500 vs ~90 tokens/s). With
AVX512-BF16 bfloat16 wins (measured on a 2-core AVX512-BF16 host: 128 tokens in 4.0 s vs
5.7-7.3 s in float32). BENCHMARKS.md keeps both figures.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

__all__ = ["cpu_flags", "cpu_dtype"]

_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@cache
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_dtype(flags: frozenset[str] | None = None) -> str:
    """The faster vLLM dtype for this CPU: bfloat16 with native BF16 support, else float32."""
    flags = cpu_flags() if flags is None else flags
    return "bfloat16" if flags & _BF16_FLAGS else "float32"
