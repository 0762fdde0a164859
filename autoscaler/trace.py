"""Request traces in the Azure LLM inference format: arrival time, prompt and output tokens.

Any CSV with the columns ``TIMESTAMP,ContextTokens,GeneratedTokens`` reads the same (the 2023
code and conversation traces are two). The spill-over benchmark replays a window of one live;
the simulator replays whole traces through its model of replicas.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Arrival", "read_trace", "window", "scale_tokens", "compress_time"]


@dataclass(frozen=True)
class Arrival:
    """One request: seconds after the trace's (or window's) start, and its token counts."""

    at_s: float
    prompt_tokens: int
    output_tokens: int
    #: Leading prompt tokens the trace says an earlier prompt shares (a prefix cache can reuse
    #: them). The Azure traces do not say which prompts share prefixes, so they read as 0.
    shared_prefix_tokens: int = 0


def read_trace(path: Path) -> tuple[dt.datetime, list[Arrival]]:
    """The trace's first timestamp and its requests, in arrival order."""
    with path.open(newline="") as handle:
        rows = [(_timestamp(r["TIMESTAMP"]), int(r["ContextTokens"]), int(r["GeneratedTokens"])) for r in csv.DictReader(handle)]
    rows.sort(key=lambda r: r[0])
    start = rows[0][0]
    return start, [Arrival((t - start).total_seconds(), p, o) for t, p, o in rows]


def window(arrivals: list[Arrival], start_s: float, length_s: float) -> list[Arrival]:
    """The requests in ``[start_s, start_s + length_s)``, re-timed from the window's start."""
    return [Arrival(a.at_s - start_s, a.prompt_tokens, a.output_tokens) for a in arrivals if start_s <= a.at_s < start_s + length_s]


def scale_tokens(arrivals: list[Arrival], factor: float, minimum: int) -> list[Arrival]:
    """Token counts times ``factor``, never below ``minimum`` (a small model replays a big one's trace)."""
    return [Arrival(a.at_s, max(minimum, round(a.prompt_tokens * factor)), max(minimum, round(a.output_tokens * factor))) for a in arrivals]


def compress_time(arrivals: list[Arrival], speedup: float) -> list[Arrival]:
    """Arrival times divided by ``speedup``: the same requests offered ``speedup`` times faster."""
    return [Arrival(a.at_s / speedup, a.prompt_tokens, a.output_tokens) for a in arrivals]


def _timestamp(text: str) -> dt.datetime:
    # "2023-11-16 18:17:03.9799600": seven fractional digits, one more than strptime takes.
    head, _, fraction = text.strip().partition(".")
    return dt.datetime.strptime(f"{head}.{(fraction or '0')[:6]}", "%Y-%m-%d %H:%M:%S.%f")
