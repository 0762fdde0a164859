"""What the compress stage did to a request, for the sinks that record it.

The compress stage (:mod:`costlevers.compression`) keeps a :class:`Compression` in the request's
context; the ledger row, the response header and the metrics read it here, so none of them
imports the lever.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["COMPRESS_HEADER", "Compression", "CompressOutcome"]

#: Request header: ``off`` sends this request uncompressed. Response header: what was done.
COMPRESS_HEADER = "x-spillover-compression"


class CompressOutcome(enum.StrEnum):
    #: Cut to the route's target.
    COMPRESSED = "compressed"
    #: The target needed cutting protected parts (system prompt, question, recent turns, tool
    #: definitions): the compressible part was cut by the route's largest ratio and no further.
    FLOOR = "floor"
    #: Under the route's minimum compressible size, or already within the target: untouched.
    UNTOUCHED = "untouched"
    #: The client opted out (``x-spillover-compression: off``).
    OPT_OUT = "opt_out"
    #: Compression failed; the request went on uncompressed (logged).
    ERROR = "error"


@dataclass(frozen=True)
class Compression:
    outcome: CompressOutcome
    #: Prompt tokens before and after (the chosen model's tokenizer where it is loaded).
    original_tokens: int
    prompt_tokens: int
    #: The route's target as written (``ratio 3`` or ``max 4000``).
    target: str
    #: A concision instruction was added (its effect shows in completion tokens).
    concise: bool = False
    elapsed_ms: float = 0.0

    @property
    def removed_tokens(self) -> int:
        return max(0, self.original_tokens - self.prompt_tokens)

    @property
    def ratio(self) -> float:
        return self.original_tokens / self.prompt_tokens if self.prompt_tokens else 1.0

    def header(self) -> str:
        """The response header's value: ``compressed; ratio=2.98; target=ratio 3; tokens=4120->1382``."""
        return (f"{self.outcome.value}; ratio={self.ratio:.2f}; target={self.target}; tokens={self.original_tokens}->{self.prompt_tokens}"
                + ("; concise" if self.concise else ""))
